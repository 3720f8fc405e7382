# V07 ESC-005 with tar: archive host files through /proc/2/root (pid 2 is a host process)
ctr_run simctr-sidecar-v07 ctr-infer --mount --uts --ipc -- sh -c 'tar -C /proc/2/root -cf - etc/hostname etc/passwd | tar -tf -'
