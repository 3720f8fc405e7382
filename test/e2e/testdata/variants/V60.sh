# V60 ESC-007: a disk filesystem on a host block device with the new mount API only (no mount(2), no mknod,
# no open of the device: the kernel opens it inside fsconfig); refused or failing, the attempt counts
ctr_run simctr-infer-v60 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, nr, *a):
    r = libc.syscall(nr, *a); print(name, r, os.strerror(ctypes.get_errno()) if r < 0 else ""); return r
fd = call("fsopen", 430, b"ext4", 1)                             # FSOPEN_CLOEXEC
call("fsconfig source", 431, fd, 1, b"source", b"/dev/loop7", 0)
call("fsconfig create", 431, fd, 6, None, None, 0)
m = call("fsmount", 432, fd, 0, 0)
call("move_mount", 429, m, b"", -100, b"/mnt", 4)'
