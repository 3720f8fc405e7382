# A11 GPU cryptojacking from a container that was given no GPU
gcc -O1 -o "$H/xmrig-build" "$H/xmrig_sim.c" -ldl
cp "$(type -P true)" "$H/bin/nvidia-smi"          # stub: never run a real reset in a test
ctr_run simctr-nogpu-a11 ctr-nogpu --mount --pid --fork --mount-proc --propagation private -- sh -c '
  XB=$0 HH=$1
  if [ ! -e /dev/nvidiactl ]; then            # CPU-only host: fake GPU nodes (major:minor of /dev/null)
    mount -t tmpfs -o mode=755 tmpfs /dev
    for n in "null 1 3" "zero 1 5" "urandom 1 9" "nvidiactl 1 3" "nvidia0 1 3" "nvidia-uvm 1 3"; do
      set -- $n; mknod -m 666 /dev/$1 c $2 $3; done
  fi
  $HH/bin/nvidia-smi --gpu-reset -i 0                           # GPU-007 (stub binary)
  cp "$XB" /tmp/xmrig && /tmp/xmrig 10.200.2.2 hold --url stratum+tcp://10.200.2.2:3333 --donate-level 1' "$H/xmrig-build" "$H" & J=$!
sleep 2; nvml_mock_add "$(host_pid_of '^/tmp/xmrig 10.200.2.2')"   # GPU host: libcuda gives a real context; skip
wait "$J"; grep ':3333' "$H/sink.log" | tail -1
