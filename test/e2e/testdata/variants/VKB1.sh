# VKB1 benign: a server reads its own /proc/self/{environ,mem,ns/net}, the core_pattern value and a hard-linked config
ctr_run simctr-infer-vkb1 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import os
for p in ("/proc/self/environ", "/proc/self/mem", "/proc/self/ns/net", "/proc/sys/kernel/core_pattern"):
    os.close(os.open(p, os.O_RDONLY))
open("/tmp/vkb1.json", "w").write("{}")
os.link("/tmp/vkb1.json", "/tmp/vkb1-copy.json"); open("/tmp/vkb1-copy.json").read()
os.unlink("/tmp/vkb1.json"); os.unlink("/tmp/vkb1-copy.json"); print("benign reads done")'
