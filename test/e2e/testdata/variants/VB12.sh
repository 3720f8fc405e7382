# VB12 benign: an app in a container serves its own API on a unix socket it named docker.sock (a docker-compatible
# shim, a test double), and a worker of the same container calls it; the node's runtime socket exists elsewhere
python3 "$H/decoy_sock.py" /run/simrt/vb12/containerd.sock > "$H/decoy-vb12.log" 2>&1 &
echo $! > "$H/decoy-vb12.pid"; until [ -S /run/simrt/vb12/containerd.sock ]; do sleep 0.2; done
mkdir -p "$H/vb12"; rm -f "$H/vb12/docker.sock"
ctr_run simctr-infer-vb12 ctr-infer --mount -- sh -c '
python3 "$0/decoy_sock.py" "$0/vb12/docker.sock" & S=$!
until [ -S "$0/vb12/docker.sock" ]; do sleep 0.1; done
curl -s -m 3 --unix-socket "$0/vb12/docker.sock" http://localhost/healthz; echo; kill $S' "$H"
kill "$(cat "$H/decoy-vb12.pid")"
