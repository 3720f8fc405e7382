# V48 EXF-001: the weights were opened before the sensor started (before/V48.sh); now they leave
touch "$H/go-v48"
for _ in $(seq 100); do grep -q sent "$H/v48.log" 2>/dev/null && break; sleep 0.1; done
cat "$H/v48.log"; grep ':9000' "$H/sink.log" | tail -1
ip netns del pod-v48 2>/dev/null; true
