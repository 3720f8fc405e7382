# VB1 benign: the GPU-owning server reloads its own weights (hot reload), then serves
rm -f "$H/go-vb1"
ctr_run simctr-infer-vb1 ctr-infer --mount --pid --fork --mount-proc -- timeout 20 python3 -c '
import mmap, os, sys, time
m, go = sys.argv[1], sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.2)
for load in range(3):                      # initial load, then two reloads
    with open(m, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    sum(mm[i] for i in range(0, len(mm), 4096)); mm.close(); time.sleep(0.5)
print("server reloaded its weights", load, "times")' "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors" "$H/go-vb1" & J=$!
sleep 1.5; nvml_mock_add "$(host_pid_of 'go-vb1')"; touch "$H/go-vb1"
wait "$J"
