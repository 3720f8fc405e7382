# V24 EXE-002 fileless: python memfd_create + execve of /proc/self/fd/N
ctr_run simctr-infer-v24 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import os
fd = os.memfd_create("x", 0)
os.write(fd, open("/bin/true", "rb").read())
pid = os.fork()
if pid == 0:
    os.execv(f"/proc/self/fd/{fd}", ["kthread"])
print("memfd child exit", os.waitpid(pid, 0)[1])'
