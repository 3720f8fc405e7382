# V31 EXE-002: a dropped shebang script executed from /dev/shm (the exec'd image is the interpreter)
ctr_run simctr-infer-v31 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  printf "#!/bin/sh\necho dropped-script\n" > /dev/shm/.v31.sh && chmod +x /dev/shm/.v31.sh && /dev/shm/.v31.sh; rm -f /dev/shm/.v31.sh'
