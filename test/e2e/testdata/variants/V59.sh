# V59 ESC-007: mknod a block device (loop, 7:201) under an innocuous name, then mount it with the new mount API
# (fsopen, fsconfig source, fsmount, move_mount; no mount(2)); the mount fails (no image behind it), the attempt counts
ctr_run simctr-infer-v59 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import ctypes, os, stat
p = "/tmp/v59-cache.img"
os.mknod(p, 0o600 | stat.S_IFBLK, os.makedev(7, 201))
libc = ctypes.CDLL(None, use_errno=True)
def call(name, nr, *a):
    r = libc.syscall(nr, *a); print(name, r, os.strerror(ctypes.get_errno()) if r < 0 else ""); return r
fd = call("fsopen", 430, b"squashfs", 0)
call("fsconfig source", 431, fd, 1, b"source", p.encode(), 0)   # FSCONFIG_SET_STRING
call("fsconfig create", 431, fd, 6, None, None, 0)              # FSCONFIG_CMD_CREATE
m = call("fsmount", 432, fd, 0, 0)
call("move_mount", 429, m, b"", -100, b"/mnt", 4)                # MOVE_MOUNT_F_EMPTY_PATH
os.unlink(p)'
