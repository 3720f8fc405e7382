# V41 GPU-001: the GPU-owning server runs a perl one-liner through subprocess (no shell in between)
rm -f "$H/go-v41"
ctr_run simctr-infer-v41 ctr-infer --mount --pid --fork --mount-proc -- timeout 20 python3 -c '
import os, subprocess, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.2)
subprocess.run(["perl", "-e", "print qq(id=), scalar getpwuid($<), qq(\n)"])' "$H/go-v41" & J=$!
sleep 1.5; nvml_mock_add "$(host_pid_of 'go-v41')"; sleep 1; touch "$H/go-v41"
wait "$J"; true
