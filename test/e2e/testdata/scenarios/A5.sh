# A5 container drives the runtime: docker/containerd sockets, client CLIs, kubelet port
python3 "$H/decoy_sock.py" /run/simrt/docker.sock /run/simrt/containerd/containerd.sock > "$H/decoy.log" 2>&1 &
echo $! > "$H/decoy.pid"; until [ -S /run/simrt/docker.sock ] && [ -S /run/simrt/containerd/containerd.sock ]; do sleep 0.2; done
for t in crictl ctr kubectl; do cp "$(type -P true)" "$H/bin/$t"; done
ctr_run simctr-infer-a5 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  curl -s -m 3 --unix-socket /run/simrt/docker.sock http://localhost/containers/json; echo
  python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.connect(\"/run/simrt/containerd/containerd.sock\"); s.send(b\"PRI * HTTP/2.0\r\n\r\n\")"
  $0/bin/crictl --runtime-endpoint unix:///run/simrt/containerd/containerd.sock ps
  $0/bin/kubectl get pods -A
  curl -sk -m 2 https://10.200.1.1:10250/pods > /dev/null
  ( : > /proc/self/exe ) 2>/dev/null   # CVE-2019-5736 precursor: write-open of the running binary (ETXTBSY)
  true' "$H"
sleep 1; cat "$H/decoy.log"
