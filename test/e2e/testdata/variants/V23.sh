# V23 EXE-002: a copied binary executed from /dev/shm
ctr_run simctr-infer-v23 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  cp /bin/true /dev/shm/.kworker && /dev/shm/.kworker; echo "ran from /dev/shm rc=$?"; rm -f /dev/shm/.kworker'
