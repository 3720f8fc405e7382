# V08 ESC-005 with python through /proc/<pid>/cwd of a host process
ctr_run simctr-sidecar-v08 ctr-infer --mount --uts --ipc -- python3 -c '
print(len(open("/proc/2/cwd/etc/hostname").read()), "bytes of the host hostname")'
