# V53 GPU-004: inside the server's own container (its PID namespace, where the server has a small pid), a
# second process reads /proc/<server>/maps and /proc/<server>/mem and calls process_vm_readv on it; the
# server serves on (timeout ends it)
rm -f "$H/go-v53" "$H/v53.done"
ctr_run simctr-infer-v53 ctr-infer --mount --pid --fork --mount-proc -- timeout 20 sh -c '
  python3 $0/fake_infer.py --port 8053 > /dev/null & S=$!
  while [ ! -e $0/go-v53 ]; do sleep 0.1; done
  python3 -c "
import ctypes, sys
pid = int(sys.argv[1])
lo = int(open(f\"/proc/{pid}/maps\").readline().split(\"-\")[0], 16)
with open(f\"/proc/{pid}/mem\", \"rb\") as m:
    m.seek(lo); print(\"pid\", pid, \"mem bytes\", len(m.read(4096)))
class iov(ctypes.Structure):
    _fields_ = [(\"base\", ctypes.c_void_p), (\"len\", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(4096)
l, r = iov(ctypes.cast(buf, ctypes.c_void_p), 4096), iov(lo, 4096)
print(\"process_vm_readv\", ctypes.CDLL(None).process_vm_readv(pid, ctypes.byref(l), 1, ctypes.byref(r), 1, 0))" $S
  touch $0/v53.done; wait' "$H" > "$H/v53.log" 2>&1 &
sleep 1.5; nvml_mock_add "$(host_pid_of 'fake_infer.py --port 8053')"; sleep 1.2; touch "$H/go-v53"
for _ in $(seq 100); do [ -e "$H/v53.done" ] && break; sleep 0.1; done
cat "$H/v53.log"
