# V61 ESC-005: a bind mount of the host root with the new mount API: open_tree(OPEN_TREE_CLONE|AT_RECURSIVE) of
# /proc/2/root (pid 2 is a host process), then move_mount; the kernel may refuse a tree of another mount
# namespace, the attempt counts
ctr_run simctr-sidecar-v61 ctr-infer --mount --uts --ipc -- python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, nr, *a):
    r = libc.syscall(nr, *a); print(name, r, os.strerror(ctypes.get_errno()) if r < 0 else ""); return r
t = call("open_tree", 428, -100, b"/proc/2/root", 0x1 | 0x8000 | 0x80000)  # CLONE, AT_RECURSIVE, CLOEXEC
if t >= 0:
    call("move_mount", 429, t, b"", -100, b"/mnt", 4)  # in the private mount namespace of unshare --mount'
