# V50 ESC-011: from a hostPID container, open /proc/<host pid>/mem for writing (dd conv=notrunc, no
# python, no ptrace)
sleep 30 & T=$!
ctr_run simctr-sidecar-v50 ctr-infer --mount --uts --ipc -- sh -c '
  A=$(head -1 /proc/$0/maps | cut -d- -f1)
  dd if=/proc/$0/mem of=/proc/$0/mem bs=8 count=1 skip=$((0x$A / 8)) seek=$((0x$A / 8)) conv=notrunc status=none
  echo "dd rc=$?"' "$T"
kill "$T" 2>/dev/null; wait "$T" 2>/dev/null; true
