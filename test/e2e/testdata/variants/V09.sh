# V09 ESC-006 with python http.client over AF_UNIX to a docker.sock at another path
python3 "$H/decoy_sock.py" /run/simrt/alt/var/run/docker.sock > "$H/decoy-v09.log" 2>&1 &
echo $! > "$H/decoy-v09.pid"; until [ -S /run/simrt/alt/var/run/docker.sock ]; do sleep 0.2; done
ctr_run simctr-infer-v09 ctr-infer --mount -- python3 -c '
import http.client, socket
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect("/run/simrt/alt/var/run/docker.sock")
c = C("localhost"); c.request("GET", "/v1.41/containers/json"); print("docker api", c.getresponse().status)'
kill "$(cat "$H/decoy-v09.pid")"; cat "$H/decoy-v09.log"
