# VK8 ESC-002 core_pattern opened for writing with io_uring (writes the current value back: no change)
ctr_run simctr-infer-vk8 ctr-infer --mount -- "$H/iofile" iou-rewrite /proc/sys/kernel/core_pattern
