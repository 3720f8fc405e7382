# A3 hostPID + privileged container enters the host's namespaces
ctr_run simctr-infer-a3 ctr-infer --mount --uts --ipc -- \
  nsenter -t 1 -m -u -i -n -p -- sh -c 'echo "on host: $(hostname) $(id -u)"; ls /var/lib/kubelet 2>/dev/null | head -3; true'
# same privileged container loads a kernel module (harmless: dummy netdev driver, removed again)
ctr_run simctr-infer-a3 ctr-infer --mount -- sh -c 'modprobe dummy && rmmod dummy; echo "modprobe rc=$?"'
