# V04 ESC-001 with a relative path: sh -c 'cat > release_agent' inside the mounted cgroup-v1 dir
ctr_run simctr-infer-v04 ctr-infer --mount --propagation private -- sh -c '
  CG=$0/cg-v04; mkdir -p $CG
  mount -t cgroup -o none,name=ebpfv04 cgroup $CG || echo "no cgroup v1 here"
  cd $CG && echo /bin/true | sh -c "cat > release_agent"; echo "release_agent=$(cat release_agent 2>/dev/null)"
  cd /; umount $CG 2>/dev/null; true' "$H"
