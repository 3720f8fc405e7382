#!/usr/bin/env bash
# Harness prelude (root). Usage: . ./prelude.sh   — exports H and CGBASE, builds the network, starts the sink.
set -u
export H=${HARNESS_DIR:-$(mktemp -d -t ebpfh.XXXXXX)}
mkdir -p "$H"/{models,bin,logs,hf/hub}
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then export CGBASE=/sys/fs/cgroup
else export CGBASE=/sys/fs/cgroup/unified; fi          # hybrid hosts: use the v2 (unified) hierarchy
[ -d "$CGBASE" ] || { echo "needs a cgroup v2 hierarchy" >&2; return 1; }
mk_ns() {  # NAME HOST_IF NS_IF HOST_IP NS_IP
  ip netns add "$1" 2>/dev/null
  ip link add "$2" type veth peer name "$3" 2>/dev/null && ip link set "$3" netns "$1"
  ip addr replace "$4/24" dev "$2"; ip link set "$2" up
  ip -n "$1" addr replace "$5/24" dev "$3"; ip -n "$1" link set "$3" up; ip -n "$1" link set lo up
  ip -n "$1" route replace default via "$4"
}
mk_ns ctr-infer vh-infer vc-infer 10.200.1.1 10.200.1.2     # "pod network" of the inference containers
mk_ns ctr-nogpu vh-nogpu vc-nogpu 10.200.3.1 10.200.3.2     # a second pod network
mk_ns exfil     vh-exfil vx-exfil 10.200.2.1 10.200.2.2     # attacker / exfil destination
ip -n exfil addr replace 169.254.169.254/32 dev vx-exfil     # fake cloud metadata service
ip route replace 169.254.169.254/32 via 10.200.2.2
sysctl -qw net.ipv4.ip_forward=1
command -v iptables >/dev/null && { iptables -C FORWARD -s 10.200.0.0/16 -j ACCEPT 2>/dev/null || iptables -I FORWARD -s 10.200.0.0/16 -j ACCEPT
iptables -C FORWARD -d 10.200.0.0/16 -j ACCEPT 2>/dev/null || iptables -I FORWARD -d 10.200.0.0/16 -j ACCEPT; }
