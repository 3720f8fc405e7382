# VB11 benign: a pod (its own network namespace) whose init step checks the weights with sha256sum, and
# whose log-shipper sidecar ships 300 KB of server logs to an external collector
mk_ns pod-vb11 vh-podb11 vc-podb11 10.200.5.1 10.200.5.2 >/dev/null 2>&1
ctr_run simctr-infer-vb11 pod-vb11 --mount --pid --fork --mount-proc -- \
  sha256sum "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"
ctr_run simctr-sidecar-vb11b pod-vb11 --mount --pid --fork --mount-proc -- python3 -c '
import socket, time
line = b"2026-11-26T12:00:00Z INFO vllm.engine: throughput 812 tok/s, 12 running, 0 waiting\n"
for batch in range(3):
    s = socket.create_connection(("10.200.2.2", 9000))
    s.sendall(line * (100_000 // len(line))); s.close(); time.sleep(0.2)
print("shipped 3 batches")'
ip netns del pod-vb11 2>/dev/null; true
