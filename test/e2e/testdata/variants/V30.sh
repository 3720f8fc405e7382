# V30 EXE-002 evading exec-path checks: the dynamic loader runs a binary dropped in /dev/shm
ctr_run simctr-infer-v30 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  LD=$(ls /lib64/ld-linux-*.so.* /lib/ld-linux-*.so.* 2>/dev/null | head -1)
  cp /bin/true /dev/shm/.v30 && "$LD" /dev/shm/.v30; echo "loader ran it rc=$?"; rm -f /dev/shm/.v30'
