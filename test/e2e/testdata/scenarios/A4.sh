# A4 host filesystem through /proc/1/root from a hostPID sidecar
ctr_run simctr-sidecar-a4 ctr-infer --mount --uts --ipc -- sh -c '
  cat /proc/1/root/etc/hostname
  head -c 64 /proc/1/root/etc/shadow > /dev/null
  ls /proc/1/root/var/lib/kubelet/pki /proc/1/root/etc/kubernetes/pki 2>/dev/null; true'
