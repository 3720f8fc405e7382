# V46 EXF-001: a child of the GPU-owning server sends the weights through a descriptor it inherited
# (pass_fds): the child never opens the file. A pod (network namespace) of its own, so that no other
# variant's pod taint answers for it.
rm -f "$H/go-v46"
mk_ns pod-v46 vh-pod46 vc-pod46 10.200.7.1 10.200.7.2 >/dev/null 2>&1
ctr_run simctr-infer-v46 pod-v46 --mount --pid --fork --mount-proc -- timeout 20 python3 -c '
import os, subprocess, sys, time
while not os.path.exists(sys.argv[2]):
    time.sleep(0.1)
fd = os.open(sys.argv[1], os.O_RDONLY)                       # the server holds its weights open
subprocess.run([sys.executable, "-c", """
import os, socket, sys
fd = int(sys.argv[1]); size = os.fstat(fd).st_size
s = socket.create_connection(("10.200.2.2", 9000)); n = 0
while n < size:
    n += s.send(os.pread(fd, 1 << 20, n))
s.close(); print("child sent", n)""", str(fd)], pass_fds=[fd])
' "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors" "$H/go-v46" & J=$!
sleep 1.5; nvml_mock_add "$(host_pid_of 'go-v46')"; sleep 1.2; touch "$H/go-v46"
wait "$J"; grep ':9000' "$H/sink.log" | tail -1
ip netns del pod-v46 2>/dev/null; true
