# V57 ESC-006 through the socket file bind-mounted onto an innocuous name (a hostPath file mount)
python3 "$H/decoy_sock.py" /run/simrt/v57/containerd.sock > "$H/decoy-v57.log" 2>&1 &
echo $! > "$H/decoy-v57.pid"; until [ -S /run/simrt/v57/containerd.sock ]; do sleep 0.2; done
: > "$H/v57-metrics"
ctr_run simctr-sidecar-v57 ctr-infer --mount -- python3 -c '
import socket, subprocess, sys
subprocess.run(["mount", "--bind", "/run/simrt/v57/containerd.sock", sys.argv[1]], check=True)
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"GET /version HTTP/1.0\r\n\r\n")
print(s.recv(200)); s.close()' "$H/v57-metrics"
kill "$(cat "$H/decoy-v57.pid")"
