# V36 GPU-005 by rename: a sidecar stages a poisoned file next to the weights and mv's it over them
python3 "$H/mkmodel.py" "$H/models/v36/model.safetensors" 2
ctr_run simctr-sidecar-v36 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  head -c 2097152 /dev/zero > $0/models/v36/.model.tmp && mv $0/models/v36/.model.tmp $0/models/v36/model.safetensors
  ls -l $0/models/v36' "$H"
