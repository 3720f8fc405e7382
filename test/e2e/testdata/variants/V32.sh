# V32 ESC-006 through a symlink with an innocuous name pointing at a docker.sock
python3 "$H/decoy_sock.py" /run/simrt/v32/docker.sock > "$H/decoy-v32.log" 2>&1 &
echo $! > "$H/decoy-v32.pid"; until [ -S /run/simrt/v32/docker.sock ]; do sleep 0.2; done
ln -sfn /run/simrt/v32/docker.sock "$H/api-v32"
ctr_run simctr-infer-v32 ctr-infer --mount -- sh -c 'curl -s -m 3 --unix-socket "$0/api-v32" http://localhost/containers/json; echo; true' "$H"
kill "$(cat "$H/decoy-v32.pid")"
