# V03 ESC-002 on the modprobe knob: dd of= relative to /proc/sys/kernel (writes the current value back)
ctr_run simctr-infer-v03 ctr-infer --mount -- sh -c '
  cd /proc/sys/kernel && cat modprobe | dd of=modprobe status=none && echo "modprobe now $(cat modprobe)"'
