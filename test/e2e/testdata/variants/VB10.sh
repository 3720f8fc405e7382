# VB10 benign: a vLLM-style start-up: the API server (python running vllm) reads the model's config and
# tokenizer, starts its workers with multiprocessing (spawn); each worker becomes a GPU owner, maps the
# weights and builds a kernel with gcc (as torch.compile / Triton JIT do)
D="$H/vb10"; rm -rf "$D"; mkdir -p "$D/vllm/entrypoints/openai" "$D/model"
echo '{"architectures": ["LlamaForCausalLM"]}' > "$D/model/config.json"; echo '{"version": "1.0"}' > "$D/model/tokenizer.json"
cat > "$D/vllm/entrypoints/openai/api_server.py" <<'PY'
import multiprocessing as mp, os, subprocess, sys, time
def worker(weights, go):
    open(go + "." + str(os.getpid()), "w").close()          # ready: the harness lists us with NVML
    while not os.path.exists(go):
        time.sleep(0.1)
    import mmap
    with open(weights, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    sum(mm[i] for i in range(0, len(mm), 1 << 16))
    subprocess.run(["gcc", "--version"], capture_output=True)
if __name__ == "__main__":
    model, weights, go = sys.argv[1:4]
    for n in ("config.json", "tokenizer.json"):
        open(os.path.join(model, n)).read()
    ctx = mp.get_context("spawn")
    ws = [ctx.Process(target=worker, args=(weights, go)) for _ in range(2)]
    [w.start() for w in ws]; [w.join(20) for w in ws]
    print("workers done", [w.exitcode for w in ws])
PY
rm -f "$H/go-vb10"*
ctr_run simctr-infer-vb10 ctr-infer --mount --pid --fork --mount-proc -- timeout 30 python3 \
  "$D/vllm/entrypoints/openai/api_server.py" "$D/model" "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors" \
  "$H/go-vb10" & J=$!
for _ in $(seq 100); do [ "$(ls "$H"/go-vb10.* 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.1; done
for p in $(cat "$CGBASE/simctr-infer-vb10/cgroup.procs"); do
  grep -q multiprocessing-fork "/proc/$p/cmdline" 2>/dev/null && nvml_mock_add "$p"
done
sleep 1.2; touch "$H/go-vb10"
wait "$J"; rm -rf "$D" "$H"/go-vb10*; true
