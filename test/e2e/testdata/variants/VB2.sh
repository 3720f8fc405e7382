# VB2 benign: pip download of a wheel into a cache dir at container start, from the allowlisted index
mkdir -p "$H/index-vb2/simple/ebpfh-demo"; python3 "$H/mkwheel.py" "$H/index-vb2/simple/ebpfh-demo"
(cd "$H/index-vb2" && exec python3 -m http.server 8082 --bind 10.200.1.1) > /dev/null 2>&1 & echo $! > "$H/index-vb2.pid"
wait_tcp 10.200.1.1 8082
ctr_run simctr-infer-vb2 ctr-infer --mount --pid --fork --mount-proc -- python3 -m pip download -q --no-deps \
  --disable-pip-version-check --no-cache-dir --index-url http://10.200.1.1:8082/simple --trusted-host 10.200.1.1 \
  -d "$H/pipcache" ebpfh-demo
ls "$H/pipcache"; kill "$(cat "$H/index-vb2.pid")"
