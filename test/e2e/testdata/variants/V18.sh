# V18 EXF-002 pull-based: python -m http.server serving the model directory from the inference container
ctr_run simctr-infer-v18 ctr-infer --mount --pid --fork --mount-proc -- timeout 4 python3 -m http.server 8090 --directory "$H/models" > /dev/null 2>&1 & J=$!
wait_tcp 10.200.1.2 8090 && echo "model dir served on 10.200.1.2:8090"
wait "$J"; true
