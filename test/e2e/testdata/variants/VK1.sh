# VK1 ESC-002 through a symlink named like a log file (writes the current value back: no change)
ctr_run simctr-infer-vk1 ctr-infer --mount -- python3 -c '
import os
os.symlink("/proc/sys/kernel/core_pattern", "/tmp/vk1-app.log")
try:
    v = open("/tmp/vk1-app.log").read()
    with open("/tmp/vk1-app.log", "w") as f:
        f.write(v)
    print("rewrote core_pattern through /tmp/vk1-app.log")
finally:
    os.unlink("/tmp/vk1-app.log")'
