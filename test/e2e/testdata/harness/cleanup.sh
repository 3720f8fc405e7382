#!/usr/bin/env bash
# Harness teardown (root). Needs H and CGBASE from prelude.sh.
for f in "$H"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
for c in "$CGBASE"/simctr-*; do                      # stop leftovers, then drop the cgroups
  [ -d "$c" ] || continue
  for p in $(cat "$c/cgroup.procs" 2>/dev/null); do kill "$p" 2>/dev/null; done
  sleep 0.2; rmdir "$c" 2>/dev/null
done
for ns in ctr-infer ctr-nogpu exfil; do ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null; ip netns del "$ns" 2>/dev/null; done
ip route del 169.254.169.254/32 2>/dev/null
command -v iptables >/dev/null && { iptables -D FORWARD -s 10.200.0.0/16 -j ACCEPT 2>/dev/null; iptables -D FORWARD -d 10.200.0.0/16 -j ACCEPT 2>/dev/null; }
rm -rf /run/simrt /dev/shm/.nv-cache
case "$H" in /tmp/*|/var/tmp/*) rm -rf "$H" ;; esac
