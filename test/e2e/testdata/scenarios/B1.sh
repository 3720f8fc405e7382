# B1 model download by an init container, then the server maps its own weights and serves clients
mkdir -p "$H/registry/llama-3-8b-instruct"
cp "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors" "$H/registry/llama-3-8b-instruct/"
(cd "$H/registry" && exec python3 -m http.server 8080 --bind 10.200.1.1) > /dev/null 2>&1 & echo $! > "$H/registry.pid"
wait_tcp 10.200.1.1 8080
ctr_run simctr-build-b1 ctr-infer --mount --pid --fork --mount-proc -- \
  curl -s -o "$H/models/llama-3-8b-instruct/model-00002-of-00002.safetensors" \
  http://10.200.1.1:8080/llama-3-8b-instruct/model-00001-of-00001.safetensors
rm -f "$H/go-b1"
ctr_run simctr-infer-b1 ctr-infer --mount --pid --fork --mount-proc -- timeout 60 python3 "$H/fake_infer.py" --port 8000 \
  --wait-file "$H/go-b1" \
  --model "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors" \
  --model "$H/models/llama-3-8b-instruct/model-00002-of-00002.safetensors" \
  --model "$H/hf/hub/models--acme--secret-7b/snapshots/0123abcd/model.safetensors" &
sleep 2; nvml_mock_add "$(host_pid_of 'fake_infer.py --port 8000 --wait-file')"; touch "$H/go-b1"   # GPU host: --cuda
wait_tcp 10.200.1.2 8000
for i in $(seq 20); do curl -s -m 2 -X POST -d '{"prompt":"hi","max_tokens":64}' http://10.200.1.2:8000/v1/completions > /dev/null; done
echo "served 20 completions"
