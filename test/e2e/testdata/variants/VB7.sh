# VB7 benign: a GPU-owning server in a workload with no egress allowlist configured (beyond loopback)
# posts a 200-byte event to an external webhook
rm -f "$H/go-vb7"
ctr_run simctr-gpu-vb7 ctr-infer --mount --pid --fork --mount-proc -- timeout 20 python3 -c '
import os, socket, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.1)
body = b"{\"event\":\"model_loaded\",\"model\":\"llama-3-8b-instruct\",\"ms\":1234}".ljust(200)
s = socket.create_connection(("10.200.2.2", 443))
s.sendall(b"POST /hook HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
print("webhook:", s.recv(64).split(b"\r\n")[0].decode()); s.close()' "$H/go-vb7" & J=$!
sleep 1.5; nvml_mock_add "$(host_pid_of 'go-vb7')"; sleep 1.2; touch "$H/go-vb7"
wait "$J"; true
