# VB9 benign: the entrypoint checks its weights with sha256sum, then makes a 50-byte API call outside
ctr_run simctr-infer-vb9 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  sha256sum $0/models/llama-3-8b-instruct/model-00001-of-00001.safetensors
  curl -s -m 5 -o /dev/null -w "api %{http_code}\n" -H "Content-Type: application/json" \
    -d "{\"ready\":true,\"replica\":\"vb9\",\"shards\":1}" http://10.200.2.2:80/v1/ready' "$H"
