# B4 log rotation: the server's RotatingFileHandler in the container, copytruncate+gzip on the node
ctr_run simctr-infer-b4 ctr-infer --mount --pid --fork --mount-proc -- python3 - "$H/logs/app" <<'P'
import logging, logging.handlers, os, sys
os.makedirs(sys.argv[1], exist_ok=True)
h = logging.handlers.RotatingFileHandler(os.path.join(sys.argv[1], 'server.log'), maxBytes=64 << 10, backupCount=3)
log = logging.getLogger('srv'); log.addHandler(h); log.setLevel(logging.INFO)
for i in range(5000):
    log.info('request %d served in 12ms tokens=128', i)
P
D="$H/logs/pods/infer_server-0_0000/server"; mkdir -p "$D"
for i in $(seq 2000); do echo "{\"log\":\"line $i\",\"stream\":\"stdout\"}"; done > "$D/0.log"
if command -v logrotate > /dev/null; then
  printf '%s {\n  size 1k\n  rotate 3\n  copytruncate\n  compress\n  missingok\n}\n' "$H/logs/pods/*/*/*.log" > "$H/logrotate.conf"
  logrotate -f -s "$H/logrotate.state" "$H/logrotate.conf"
else
  cp "$D/0.log" "$D/0.log.1" && : > "$D/0.log" && gzip -f "$D/0.log.1"     # what copytruncate+compress does
fi
ls "$H/logs/app" "$D"
