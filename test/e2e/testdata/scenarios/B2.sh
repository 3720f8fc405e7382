# B2 pip install at container start from the allowlisted package index
mkdir -p "$H/index/simple/ebpfh-demo"; python3 "$H/mkwheel.py" "$H/index/simple/ebpfh-demo"
(cd "$H/index" && exec python3 -m http.server 8081 --bind 10.200.1.1) > /dev/null 2>&1 & echo $! > "$H/index.pid"
wait_tcp 10.200.1.1 8081
ctr_run simctr-infer-b2 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  python3 -m pip install -q --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
      --index-url http://10.200.1.1:8081/simple --trusted-host 10.200.1.1 --target $0/site ebpfh-demo &&
  PYTHONPATH=$0/site python3 -c "import ebpfh_demo; print(\"installed\", ebpfh_demo.VALUE)"' "$H"
