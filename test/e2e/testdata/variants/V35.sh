# V35 ESC-007 / ESC-008 by raw syscalls from python: mount(2) of sysfs in a private namespace, bpf(2) prog load
ctr_run simctr-infer-v35 ctr-infer --mount --propagation private -- python3 -c '
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
print("mount sysfs", libc.mount(b"sysfs", b"/mnt", b"sysfs", 0, None), ctypes.get_errno())
insns = struct.pack("<BBhi", 0xb7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)   # r0 = 0; exit
ib = ctypes.create_string_buffer(insns); lic = ctypes.create_string_buffer(b"GPL")
attr = struct.pack("<IIQQ", 1, 2, ctypes.addressof(ib), ctypes.addressof(lic)) + bytes(112)
ab = ctypes.create_string_buffer(attr, len(attr))
print("bpf prog load", libc.syscall(321, 5, ab, len(attr)), ctypes.get_errno())
libc.umount2(b"/mnt", 2)'
