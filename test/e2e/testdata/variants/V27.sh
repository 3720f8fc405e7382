# V27 EXF-005 "kubectl cp" with GNU long options (tar --create --file=-) through the runtime exec path
ctr_run simctr-infer-v27 ctr-infer --mount --pid --fork --mount-proc -- sleep 15 & J=$!
sleep 1; CP=$(host_pid_of '^sleep 15$')
"$H/bin/runc" -c 'nsenter -t "$0" -m -p -- sh -c "echo \$\$ > $1/simctr-infer-v27/cgroup.procs; exec tar --create --file=- --directory=$2/models llama-3-8b-instruct"; true' "$CP" "$CGBASE" "$H" > "$H/kcp-v27.tar"
ls -l "$H/kcp-v27.tar"; kill "$CP"; wait "$J"; true
