# B3 kubelet-style probes against the B1 server: exec probe via the runtime path, httpGet from the node
CP=$(host_pid_of 'fake_infer.py --port 8000 --wait-file')
for i in 1 2 3; do
  "$H/bin/runc" -c 'nsenter -t "$0" -n -m -p -- sh -c "echo \$\$ > $1/simctr-infer-b1/cgroup.procs; exec sh -c \"curl -fsS -m 2 http://127.0.0.1:8000/health > /dev/null\""; true' "$CP" "$CGBASE"
  curl -fsS -m 2 http://10.200.1.2:8000/health > /dev/null && echo "probe $i ok"
  sleep 1
done
