# V25 EXE-001 with LD_AUDIT (not LD_PRELOAD) pointing at a library in /dev/shm
ctr_run simctr-infer-v25 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  : > /dev/shm/.audit.so; env LD_AUDIT=/dev/shm/.audit.so /bin/true 2>/dev/null; echo "rc=$?"; rm -f /dev/shm/.audit.so'
