# VK10 GPU-004 the owner's maps and memory read through symlinks (no /proc/<pid> path passed)
ctr_run simctr-infer-vk10 ctr-infer --mount --uts --ipc -- timeout 20 python3 "$H/fake_infer.py" --port 8110 & J=$!
sleep 1.5; VP=$(host_pid_of 'fake_infer.py --port 8110'); nvml_mock_add "$VP"; sleep 1.2
ctr_run simctr-sidecar-vk10 ctr-infer --mount --uts --ipc -- sh -c '
  ln -sf /proc/$0/mem /tmp/vk10.dat; ln -sf /proc/$0/maps /tmp/vk10.txt; A=$(head -1 /tmp/vk10.txt | cut -d- -f1)
  dd if=/tmp/vk10.dat of=/dev/null bs=4096 count=1 skip=$((0x$A / 4096)) status=none; echo "dd rc=$?"
  rm -f /tmp/vk10.dat /tmp/vk10.txt' "$VP"
kill "$VP" 2>/dev/null; wait "$J"; true
