# VB6 benign: an entrypoint renders and runs its start script from /tmp at startup, checks its libraries with
# ldd, and runs a worker whose stdio is a unix socketpair (supervisor style)
ctr_run simctr-infer-vb6 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  printf "#!/bin/sh\necho starting server\n" > /tmp/start-vb6.sh && sh /tmp/start-vb6.sh
  ldd /bin/true > /dev/null && echo "ldd ok"
  python3 -c "
import socket, subprocess
a, b = socket.socketpair()
a.sendall(b\"job\\n\"); a.shutdown(socket.SHUT_WR)
subprocess.call([\"/bin/cat\"], stdin=b, stdout=b, timeout=5); print(\"worker said\", a.recv(64))" < /dev/null
  rm -f /tmp/start-vb6.sh'
