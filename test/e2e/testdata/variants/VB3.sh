# VB3 benign: an init container extracts a model archive (tar xzf) into its own directory
tar czf "$H/model-vb3.tgz" -C "$H/models" llama-3-8b-instruct/model-00001-of-00001.safetensors
ctr_run simctr-build-vb3 ctr-infer --mount --pid --fork --mount-proc -- sh -c 'mkdir -p $0/unpacked-vb3 && tar xzf $0/model-vb3.tgz -C $0/unpacked-vb3 && ls -R $0/unpacked-vb3 | tail -1' "$H"
