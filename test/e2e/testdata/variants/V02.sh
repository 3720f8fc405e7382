# V02 ESC-002 by tee through /proc/self/root (writes the current value back: no change)
ctr_run simctr-infer-v02 ctr-infer --mount -- sh -c '
  cat /proc/sys/kernel/core_pattern | tee /proc/self/root/proc/sys/kernel/core_pattern > /dev/null && echo "tee ok"'
