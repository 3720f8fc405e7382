# VK3 ESC-001 release_agent written through a symlink (a private named cgroup v1 hierarchy: harmless)
ctr_run simctr-infer-vk3 ctr-infer --mount --propagation private -- sh -c '
  CG=$0/vk3cg; mkdir -p $CG && mount -t cgroup -o none,name=kestrelvk3 cgroup $CG || exit 1
  ln -sf $CG/release_agent /tmp/vk3.txt && echo /bin/true > /tmp/vk3.txt && echo "release_agent set through /tmp/vk3.txt"
  rm -f /tmp/vk3.txt; umount $CG; rmdir $CG' "$H"
