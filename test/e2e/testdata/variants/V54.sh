# V54 EXF-001: the GPU-owning server's descriptor of its weights is passed over a unix socket (SCM_RIGHTS)
# to a process in another pod (through a shared volume), which never opens the file and sends the weights out
# in 1 MiB steps. Each pod has a network namespace of its own.
rm -f "$H/go-v54" "$H/v54.sock"
mk_ns pod-v54a vh-pod54a vc-pod54a 10.200.9.1 10.200.9.2 >/dev/null 2>&1
mk_ns pod-v54b vh-pod54b vc-pod54b 10.200.10.1 10.200.10.2 >/dev/null 2>&1
ctr_run simctr-infer-v54 pod-v54a --mount --pid --fork --mount-proc -- timeout 20 python3 -c '
import os, socket, sys, time
while not os.path.exists(sys.argv[2]):
    time.sleep(0.1)
fd = os.open(sys.argv[1], os.O_RDONLY)
l = socket.socket(socket.AF_UNIX); l.bind(sys.argv[3]); l.listen(1)
c, _ = l.accept(); socket.send_fds(c, [b"w"], [fd]); c.close(); print("fd passed")' \
  "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors" "$H/go-v54" "$H/v54.sock" & J=$!
sleep 1.5; nvml_mock_add "$(host_pid_of 'go-v54')"; sleep 1.2; touch "$H/go-v54"
for _ in $(seq 50); do [ -S "$H/v54.sock" ] && break; sleep 0.1; done
ctr_run simctr-sidecar-v54 pod-v54b --mount --pid --fork --mount-proc -- python3 -c '
import os, socket, sys, time
u = socket.socket(socket.AF_UNIX); u.connect(sys.argv[1])
_, fds, _, _ = socket.recv_fds(u, 1, 1); fd = fds[0]; size = os.fstat(fd).st_size
s = socket.create_connection(("10.200.2.2", 9000)); n = 0
while n < size:
    n += s.send(os.pread(fd, 1 << 20, n)); time.sleep(0.3)
s.close(); print("sent", n)' "$H/v54.sock"
wait "$J"; rm -f "$H/v54.sock"; ip netns del pod-v54a 2>/dev/null; ip netns del pod-v54b 2>/dev/null; true
