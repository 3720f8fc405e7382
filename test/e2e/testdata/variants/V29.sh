# V29 GPU-004 with process_vm_readv (python ctypes), no /proc/<pid>/mem open
ctr_run simctr-infer-v29 ctr-infer --mount --uts --ipc -- timeout 20 python3 "$H/fake_infer.py" --port 8029 & J=$!
sleep 1.5; VP=$(host_pid_of 'fake_infer.py --port 8029'); nvml_mock_add "$VP"; sleep 1.2
ctr_run simctr-sidecar-v29 ctr-infer --mount --uts --ipc -- python3 -c '
import ctypes, sys
pid = int(sys.argv[1])
lo = int(open(f"/proc/{pid}/maps").readline().split("-")[0], 16)
class iov(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(4096)
l, r = iov(ctypes.cast(buf, ctypes.c_void_p), 4096), iov(lo, 4096)
libc = ctypes.CDLL(None, use_errno=True)
print("process_vm_readv", libc.process_vm_readv(pid, ctypes.byref(l), 1, ctypes.byref(r), 1, 0))' "$VP"
kill "$VP" 2>/dev/null; wait "$J"; true
