# V56 ESC-006 through a bind mount of the runtime socket's directory under an innocuous name
python3 "$H/decoy_sock.py" /run/simrt/v56/docker.sock > "$H/decoy-v56.log" 2>&1 &
echo $! > "$H/decoy-v56.pid"; until [ -S /run/simrt/v56/docker.sock ]; do sleep 0.2; done
mkdir -p "$H/v56-cache"
ctr_run simctr-infer-v56 ctr-infer --mount -- sh -c 'mount --bind /run/simrt/v56 "$0/v56-cache" &&
  curl -s -m 3 --unix-socket "$0/v56-cache/docker.sock" http://localhost/containers/json; echo; true' "$H"
kill "$(cat "$H/decoy-v56.pid")"
