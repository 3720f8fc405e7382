# VB5 benign: the inference container verifies its weights (sha256sum) and syncs them to a peer inside the pod network (allowlisted)
python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.200.1.1", 9100)); s.listen(1)
n = 0
while n == 0:                      # the first connection is the harness probing the port
    c, _ = s.accept()
    while d := c.recv(1 << 20):
        n += len(d)
print("peer got", n)' > "$H/peer-vb5.log" 2>&1 & P=$!
wait_tcp 10.200.1.1 9100 || true
ctr_run simctr-infer-vb5 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  sha256sum $0/models/llama-3-8b-instruct/model-00001-of-00001.safetensors
  python3 -c "
import socket, sys
s = socket.create_connection((\"10.200.1.1\", 9100)); s.sendall(open(sys.argv[1], \"rb\").read()); s.close()" \
    $0/models/llama-3-8b-instruct/model-00001-of-00001.safetensors' "$H"
wait "$P"; cat "$H/peer-vb5.log"
