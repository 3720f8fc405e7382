# V01 ESC-002 by python, path relative to a cwd in /proc/sys/kernel (writes the current value back: no change)
ctr_run simctr-infer-v01 ctr-infer --mount -- python3 -c '
import os
os.chdir("/proc/sys/kernel")
v = open("core_pattern").read()
with open("core_pattern", "w") as f:
    f.write(v)
print("rewrote core_pattern relative to", os.getcwd())'
