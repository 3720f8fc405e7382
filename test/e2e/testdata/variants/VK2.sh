# VK2 ESC-002 through a bind mount of core_pattern onto a config file (writes the current value back)
ctr_run simctr-infer-vk2 ctr-infer --mount --propagation private -- sh -c '
  touch /tmp/vk2.conf && mount --bind /proc/sys/kernel/core_pattern /tmp/vk2.conf &&
    cat /tmp/vk2.conf > /tmp/vk2.val && cat /tmp/vk2.val > /tmp/vk2.conf && echo "rewrote core_pattern through a bind mount"
  umount /tmp/vk2.conf; rm -f /tmp/vk2.conf /tmp/vk2.val'
