# V49 ESC-011: from a hostPID container, ptrace ATTACH a host process and POKEDATA a word (the same
# value back) with python ctypes
sleep 30 & T=$!
ctr_run simctr-sidecar-v49 ctr-infer --mount --uts --ipc -- python3 -c '
import ctypes, os, sys
pid = int(sys.argv[1]); libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
print("attach", libc.ptrace(16, pid, None, None)); os.waitpid(pid, 0)
addr = int(open(f"/proc/{pid}/maps").readline().split("-")[0], 16)
word = libc.ptrace(2, pid, ctypes.c_void_p(addr), None)     # PEEKDATA
print("poke", libc.ptrace(5, pid, ctypes.c_void_p(addr), ctypes.c_void_p(word & (1 << 64) - 1)))
print("detach", libc.ptrace(17, pid, None, None))' "$T"
kill "$T" 2>/dev/null; wait "$T" 2>/dev/null; true
