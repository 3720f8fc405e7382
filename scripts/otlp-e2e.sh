#!/usr/bin/env bash
# OTLP end to end against a real OpenTelemetry Collector build (make otlp-e2e).
#
# Builds a collector from the collector's own modules (test/otelcol: OTLP
# receiver, batch processor, debug exporter) and the sensor, runs the sensor
# as a daemon exporting to the collector over OTLP/gRPC, makes it see a burst
# of execs, stops it (it drains the ring to the collector on the way out),
# and compares the records the sensor says it sent with the records the
# collector says it accepted, each from its own counters. Needs root (eBPF).
# The ports are on loopback; nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "otlp-e2e: needs root (the sensor loads eBPF programs)"; exit 1; }
GO=${GO:-go}
EXECS=${EXECS:-2000}
OTLP_PORT=${OTLP_PORT:-43177}
COL_METRICS=${COL_METRICS:-38888}
SENSOR_METRICS=${SENSOR_METRICS:-21129}

work=$(mktemp -d /tmp/kestrel-otlp-e2e.XXXXXX)
col_pid= sensor_pid=
cleanup() {
	[ -n "$sensor_pid" ] && kill "$sensor_pid" 2>/dev/null && wait "$sensor_pid" 2>/dev/null
	[ -n "$col_pid" ] && kill "$col_pid" 2>/dev/null && wait "$col_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# wait_for CMD...: retry a condition for up to 30 s.
wait_for() {
	for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "otlp-e2e: timed out waiting for: $*"; return 1
}
# counter URL REGEX: the sum of the samples of the series matching REGEX.
counter() {
	curl -sf "$1" | awk -v re="$2" '$0 !~ /^#/ && $1 ~ re { s += $NF } END { printf "%d\n", s }'
}

echo "== build the collector (test/otelcol) and the sensor"
(cd test/otelcol && $GO build -o "$work/otelcol" .)
$GO build -o "$work/sensor" ./cmd/sensor

cat > "$work/collector.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$OTLP_PORT
processors:
  batch: {}
exporters:
  debug:
    verbosity: basic
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: detailed
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: $COL_METRICS
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
YAML
cat > "$work/sensor.yaml" <<YAML
log_format: json
export:
  unix_socket: $work/sensor.sock
  otlp:
    endpoint: 127.0.0.1:$OTLP_PORT
    insecure: true
    body: json
    cluster_name: otlp-e2e
metrics:
  listen: 127.0.0.1:$SENSOR_METRICS
YAML

echo "== start the collector"
"$work/otelcol" --config "file:$work/collector.yaml" >"$work/collector.log" 2>&1 &
col_pid=$!
wait_for curl -sf "http://127.0.0.1:$COL_METRICS/metrics"

echo "== start the sensor"
NODE_NAME=otlp-e2e-node "$work/sensor" --config "$work/sensor.yaml" 2>"$work/sensor.log" &
sensor_pid=$!
wait_for curl -sf "http://127.0.0.1:$SENSOR_METRICS/metrics"

echo "== $EXECS execs under the sensor"
for _ in $(seq "$EXECS"); do /bin/true; done
curl -s "http://127.0.0.1:$SENSOR_METRICS/metrics" | grep -E '^kestrel_(events_total\{kind="exec"\}|events_lost_total\{source="otlp"\}|export_records_total\{exporter="otlp")'

echo "== stop the sensor (it sends the rest of the ring first)"
kill -TERM "$sensor_pid"
wait "$sensor_pid" || true
sensor_pid=
line=$(grep '"msg":"OTLP exporter stopped"' "$work/sensor.log" || true)
[ -n "$line" ] || { echo "otlp-e2e: the sensor did not report its OTLP totals"; cat "$work/sensor.log"; exit 1; }
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$line"; }
sent=$(field sent) failed=$(field failed) lost=$(field lost) skipped=$(field skipped)

accepted_re='^otelcol_receiver_accepted_log_records(_total)?'
wait_for test "$(counter "http://127.0.0.1:$COL_METRICS/metrics" "$accepted_re")" -ge "$sent"
# The batch processor hands on within its timeout (200 ms by default).
exported_re='^otelcol_exporter_sent_log_records(_total)?'
wait_for test "$(counter "http://127.0.0.1:$COL_METRICS/metrics" "$exported_re")" -ge "$sent"
accepted=$(counter "http://127.0.0.1:$COL_METRICS/metrics" "$accepted_re")
refused=$(counter "http://127.0.0.1:$COL_METRICS/metrics" '^otelcol_receiver_refused_log_records(_total)?')
exported=$(counter "http://127.0.0.1:$COL_METRICS/metrics" "$exported_re")

echo "sensor:    sent=$sent failed=$failed lost=$lost skipped=$skipped"
echo "collector: accepted=$accepted refused=$refused exported=$exported"
if [ "$sent" -lt "$EXECS" ] || [ "$accepted" != "$sent" ] || [ "$refused" != 0 ] || [ "$failed" != 0 ] || [ "$lost" != 0 ]; then
	echo "FAIL: the collector accepted $accepted of the $sent records the sensor sent (want all, and at least $EXECS)"
	exit 1
fi
echo "PASS: the collector accepted every one of the $sent records the sensor sent"
