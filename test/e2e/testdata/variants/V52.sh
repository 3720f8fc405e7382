# V52 ESC-007: mknod a block device (loop, 7:200) under an innocuous name, then mount(2) it as squashfs
# (the mount fails: no image behind it; the attempt is what counts)
ctr_run simctr-infer-v52 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import ctypes, os, stat
p = "/tmp/v52-cache.img"
os.mknod(p, 0o600 | stat.S_IFBLK, os.makedev(7, 200))
libc = ctypes.CDLL(None, use_errno=True)
r = libc.mount(p.encode(), b"/mnt", b"squashfs", 1, None)   # MS_RDONLY
print("mount", r, os.strerror(ctypes.get_errno())); os.unlink(p)'
