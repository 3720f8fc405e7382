# V26 GPU-007 power-limit change (-pl) instead of a reset, from an inference container (stub nvidia-smi)
cp /bin/true "$H/bin/nvidia-smi"
ctr_run simctr-infer-v26 ctr-infer --mount --pid --fork --mount-proc -- sh -c '$0/bin/nvidia-smi -i 0 -pl 150; echo "rc=$?"' "$H"
