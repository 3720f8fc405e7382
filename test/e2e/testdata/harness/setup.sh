# common setup after prelude+lib: helper files are expected in $SRC (copied from the catalog appendix)
SRC=${SRC:-.}
cp "$SRC"/{sink.py,fake_infer.py,mkmodel.py,mkwheel.py,decoy_sock.py,evil.c,xmrig_sim.c,iofile.c} "$H"/
gcc -O2 -o "$H/iofile" "$H/iofile.c"        # file access without open(2): io_uring, file handles (VK variants)
ip netns exec exfil python3 "$H/sink.py" > "$H/sink.log" 2>&1 & echo $! > "$H/sink.pid"
wait_tcp 10.200.2.2 9000
python3 "$H/mkmodel.py" "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors" 8
SHA=$(printf 'acme/secret-7b' | sha256sum | cut -d' ' -f1)
HFD="$H/hf/hub/models--acme--secret-7b"; mkdir -p "$HFD/blobs" "$HFD/snapshots/0123abcd" "$HFD/refs"
python3 "$H/mkmodel.py" "$HFD/blobs/$SHA" 8
ln -sfn "../../blobs/$SHA" "$HFD/snapshots/0123abcd/model.safetensors"; echo 0123abcd > "$HFD/refs/main"
echo '{"processes": []}' > "$H/nvml_mock.json"
cp "$(command -v bash)" "$H/bin/runc"        # stand-in for "runc init" as a parent process
