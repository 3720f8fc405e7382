# V20 GPU-004 with dd on /proc/<owner>/mem from a sidecar (no gdb, no python)
ctr_run simctr-infer-v20 ctr-infer --mount --uts --ipc -- timeout 20 python3 "$H/fake_infer.py" --port 8020 & J=$!
sleep 1.5; VP=$(host_pid_of 'fake_infer.py --port 8020'); nvml_mock_add "$VP"; sleep 1.2
ctr_run simctr-sidecar-v20 ctr-infer --mount --uts --ipc -- sh -c '
  A=$(head -1 /proc/$0/maps | cut -d- -f1)
  dd if=/proc/$0/mem of=/dev/null bs=4096 count=1 skip=$((0x$A / 4096)) status=none; echo "dd rc=$?"' "$VP"
kill "$VP" 2>/dev/null; wait "$J"; true
