# V37 GPU-005 by truncate(2) on the path (no open for write), from python in a sidecar
python3 "$H/mkmodel.py" "$H/models/v37/model.safetensors" 2
ctr_run simctr-sidecar-v37 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import os, sys; os.truncate(sys.argv[1], 4096); print("truncated to", os.path.getsize(sys.argv[1]))' "$H/models/v37/model.safetensors"
