# VK4 ESC-007 a disk read through a block device node made with mknod under an innocent name
ctr_run simctr-infer-vk4 ctr-infer --mount -- sh -c '
  for d in /sys/dev/block/*; do [ "$(cat $d/size)" -gt 0 ] && break; done; MM=${d##*/}
  mknod /tmp/vk4.db b ${MM%:*} ${MM#*:} && dd if=/tmp/vk4.db of=/dev/null bs=512 count=1 status=none &&
    echo "read a sector of $MM through /tmp/vk4.db"
  rm -f /tmp/vk4.db'
