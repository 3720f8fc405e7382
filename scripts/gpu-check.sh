#!/usr/bin/env bash
# gpu-check.sh: check the sensor on a real GPU host in one short run.
#
# Needs: root (eBPF), an NVIDIA GPU with its driver (nvidia-smi), python3 with
# torch built for CUDA, and either Go (to build bin/sensor, offline: the module
# cache must be warm) or a prebuilt sensor passed with --bin. No network.
#
# What it does:
#   1. builds bin/sensor (or takes --bin), starts `sensor --tail -o json` and
#      waits for the first line {"kind":"status","ready":true,...};
#   2. starts a PyTorch process that writes a few-MiB *.safetensors model file,
#      allocates ~1 GiB on the GPU, then memory-maps the model file and copies
#      its tensor to the GPU;
#   3. asserts that a gpu event names that process's host pid and the GPU's
#      UUID (as nvidia-smi reports it), that the model-file open was seen,
#      that `sensor gpus` lists the process, and that a gpu stop follows the
#      process's exit;
#   4. reports whether every eBPF program attached (the status line's
#      "programs" and any failure fields).
# It prints a PASS/FAIL table and exits non-zero if any check failed.
#
# Usage: sudo scripts/gpu-check.sh [--bin PATH] [--keep] [-- extra sensor args]
#   --bin PATH  use this sensor binary instead of building one
#   --keep      keep the work directory (sensor output, logs) for inspection
# Environment: CHECK_TIMEOUT (seconds per wait, default 45), CUDA_DEVICE (default 0).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
SENSOR_BIN=""
KEEP=0
EXTRA_ARGS=()
while [ $# -gt 0 ]; do
	case "$1" in
	--bin) SENSOR_BIN=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--) shift; EXTRA_ARGS=("$@"); break ;;
	-h|--help) sed -n '2,25p' "$0"; exit 0 ;;
	*) echo "gpu-check: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
done
WAIT=${CHECK_TIMEOUT:-45}
CUDA_DEVICE=${CUDA_DEVICE:-0}

WORK=$(mktemp -d /tmp/kestrel-gpu-check.XXXXXX)
SENSOR_PID=""
PY_PID=""
cleanup() {
	[ -n "$PY_PID" ] && kill "$PY_PID" 2>/dev/null && wait "$PY_PID" 2>/dev/null || true
	[ -n "$SENSOR_PID" ] && kill "$SENSOR_PID" 2>/dev/null && wait "$SENSOR_PID" 2>/dev/null || true
	if [ "$KEEP" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

RESULTS=()
FAILED=0
record() { # record NAME PASS|FAIL|INFO DETAIL
	RESULTS+=("$1"$'\t'"$2"$'\t'"$3")
	[ "$2" = FAIL ] && FAILED=1
	printf '  %-4s %-28s %s\n' "$2" "$1" "$3"
	return 0
}
table() {
	echo
	echo "== gpu-check results =="
	printf '%-30s %-5s %s\n' CHECK RESULT DETAIL
	local r
	for r in "${RESULTS[@]}"; do
		IFS=$'\t' read -r n s d <<<"$r"
		printf '%-30s %-5s %s\n' "$n" "$s" "$d"
	done
	if [ "$FAILED" = 0 ]; then echo "OVERALL: PASS"; else echo "OVERALL: FAIL"; fi
}
die() { # die NAME DETAIL: record a failure, print the table, show logs, exit 1
	record "$1" FAIL "$2"
	if [ -s "$WORK/sensor.err" ]; then echo "--- sensor stderr (tail) ---"; tail -n 20 "$WORK/sensor.err"; fi
	if [ -s "$WORK/py.log" ]; then echo "--- torch process (tail) ---"; tail -n 20 "$WORK/py.log"; fi
	table
	exit 1
}

echo "gpu-check: work directory $WORK"

# --- prerequisites -----------------------------------------------------------
[ "$(id -u)" = 0 ] || die prerequisites "must run as root (eBPF)"
command -v nvidia-smi >/dev/null || die prerequisites "nvidia-smi not found: no NVIDIA driver on this host"
command -v python3 >/dev/null || die prerequisites "python3 not found"
GPU_LIST=$(nvidia-smi --query-gpu=index,uuid,name,driver_version --format=csv,noheader 2>&1) ||
	die prerequisites "nvidia-smi failed: $GPU_LIST"
echo "$GPU_LIST" | sed 's/^/  gpu: /'
GPU_UUIDS=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | tr -d ' ')
DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n1 | tr -d ' ')
TORCH=$(python3 -c 'import torch; assert torch.cuda.is_available(), "CUDA not available to torch"; print(torch.__version__)' 2>&1) ||
	die prerequisites "python3 torch with CUDA: $TORCH"
record prerequisites PASS "root, driver $DRIVER, $(echo "$GPU_UUIDS" | wc -l) GPU(s), torch $TORCH"

# --- build -------------------------------------------------------------------
if [ -z "$SENSOR_BIN" ]; then
	command -v go >/dev/null || die build "go not found: install Go or pass --bin PATH"
	mkdir -p bin
	# Offline: never reach for the module proxy; cgo is needed by go-nvml.
	if ! out=$(GOPROXY=off CGO_ENABLED=1 CGO_CFLAGS="-O2 -Wno-deprecated-declarations" \
		timeout 300 go build -buildvcs=false -o bin/sensor ./cmd/sensor 2>&1); then
		die build "go build ./cmd/sensor failed: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
	fi
	SENSOR_BIN=$REPO/bin/sensor
	record build PASS "bin/sensor built"
else
	[ -x "$SENSOR_BIN" ] || die build "--bin $SENSOR_BIN is not an executable"
	record build PASS "using $SENSOR_BIN"
fi

# --- start the sensor --------------------------------------------------------
"$SENSOR_BIN" --tail -o json "${EXTRA_ARGS[@]}" >"$WORK/sensor.jsonl" 2>"$WORK/sensor.err" &
SENSOR_PID=$!
deadline=$((SECONDS + WAIT))
until head -n1 "$WORK/sensor.jsonl" 2>/dev/null | grep -q '"kind":"status"'; do
	kill -0 "$SENSOR_PID" 2>/dev/null || die "sensor ready" "sensor exited before its status line"
	[ $SECONDS -lt $deadline ] || die "sensor ready" "no status line within ${WAIT}s"
	sleep 0.2
done

# Status line: ready, programs, and any field that says something failed to attach.
python3 - "$WORK/sensor.jsonl" >"$WORK/status.txt" <<'EOF' || true
import json, re, sys
with open(sys.argv[1]) as f:
    st = json.loads(f.readline())
progs = st.get("programs") or []
fields = st.get("fields") or {}
bad = {k: v for k, v in fields.items()
       if re.search(r"fail|missing|not_attached|skipped|error", k) and str(v) not in ("", "0", "none", "[]")}
ok = st.get("ready") is True and len(progs) > 0 and not bad
print("PASS" if ok else "FAIL")
detail = "ready=%s, %d programs attached" % (st.get("ready"), len(progs))
if bad:
    detail += "; not attached: " + ", ".join("%s=%s" % kv for kv in sorted(bad.items()))
gpu = {k: v for k, v in fields.items() if "gpu" in k.lower() or "nvml" in k.lower()}
if gpu:
    detail += "; " + ", ".join("%s=%s" % kv for kv in sorted(gpu.items()))
print(detail)
print(" ".join(progs))
EOF
mapfile -t ST <"$WORK/status.txt"
[ ${#ST[@]} -ge 2 ] || die "sensor ready" "first line is not a parsable status object: $(head -c 300 "$WORK/sensor.jsonl")"
if [ "${ST[0]}" = PASS ]; then record "eBPF programs attached" PASS "${ST[1]}"; else record "eBPF programs attached" FAIL "${ST[1]}"; fi
[ -n "${ST[2]:-}" ] && echo "  programs: ${ST[2]}"

# --- the GPU workload ---------------------------------------------------------
MODEL_DIR=$WORK/models
mkdir -p "$MODEL_DIR"
MODEL=$MODEL_DIR/kestrel-check-$$.safetensors
cat >"$WORK/workload.py" <<'EOF'
import json, mmap, os, struct, sys, time
import torch

model, stop, ready, dev = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
n = 1 << 20  # 1M float32: a 4 MiB tensor
hdr = json.dumps({"__metadata__": {"format": "pt"},
                  "weight": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
hdr += b" " * (-len(hdr) % 8)
with open(model, "wb") as f:
    f.write(struct.pack("<Q", len(hdr)))
    f.write(hdr)
    f.write(os.urandom(4 * n))

torch.cuda.set_device(dev)
big = torch.empty(256 << 20, dtype=torch.float32, device="cuda")  # 1 GiB
big.fill_(1.0)

# Load the weights the way safetensors does: mmap, then copy to the GPU.
with open(model, "rb") as f:
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
hl = struct.unpack("<Q", mm[:8])[0]
meta = json.loads(mm[8:8 + hl])
lo, hi = meta["weight"]["data_offsets"]
w = torch.frombuffer(bytearray(mm[8 + hl + lo:8 + hl + hi]), dtype=torch.float32).to("cuda")
torch.cuda.synchronize()
print("pid", os.getpid(), "gpu", torch.cuda.get_device_name(dev),
      "allocated", torch.cuda.memory_allocated(dev), flush=True)
open(ready, "w").close()

deadline = time.time() + 120
while not os.path.exists(stop) and time.time() < deadline:
    time.sleep(0.1)
del big, w
mm.close()
EOF
python3 "$WORK/workload.py" "$MODEL" "$WORK/stop" "$WORK/ready" "$CUDA_DEVICE" >"$WORK/py.log" 2>&1 &
PY_PID=$!
deadline=$((SECONDS + WAIT))
until [ -e "$WORK/ready" ]; do
	kill -0 "$PY_PID" 2>/dev/null || die "torch workload" "the torch process exited early"
	[ $SECONDS -lt $deadline ] || die "torch workload" "not ready within ${WAIT}s"
	sleep 0.2
done
record "torch workload" PASS "pid $PY_PID: $(head -n1 "$WORK/py.log")"
CHECK_PID=$PY_PID

# nvidia-smi's view of the same process (host PID namespace: same pid).
SMI_UUID=$(nvidia-smi --query-compute-apps=pid,gpu_uuid --format=csv,noheader 2>/dev/null |
	awk -F', *' -v p="$PY_PID" '$1 == p {print $2; exit}')
[ -n "$SMI_UUID" ] && echo "  nvidia-smi: pid $PY_PID on $SMI_UUID"

# --- assertions over the sensor's output ---------------------------------------
# check.py KIND prints "FOUND detail", "MISSING detail" (may still come) or
# "WRONG detail" (seen, and wrong: fail at once).
cat >"$WORK/check.py" <<'EOF'
import json, sys
path, what, pid, model, uuids, smi = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5].split(), sys.argv[6]
lines = []
with open(path) as f:
    for raw in f:
        try:
            lines.append(json.loads(raw))
        except ValueError:
            pass  # a line being written
def proc_pid(e):
    return (e.get("process") or {}).get("pid")
if what in ("gpu-start", "gpu-stop"):
    want = "stop" if what == "gpu-stop" else None
    seen = []
    for e in lines:
        g = e.get("gpu") or {}
        if e.get("kind") != "gpu":
            continue
        seen.append("%s pid=%s uuid=%s" % (g.get("change"), g.get("pid"), g.get("uuid")))
        if g.get("pid") != pid:
            continue
        if want and g.get("change") != want:
            continue
        if not want and g.get("change") == "stop":
            continue
        if g.get("uuid") not in uuids:
            print("WRONG gpu event for pid %d names uuid %s, not one of nvidia-smi's %s" % (pid, g.get("uuid"), uuids))
            sys.exit()
        if smi and g.get("uuid") != smi:
            print("WRONG gpu event for pid %d names %s but nvidia-smi puts it on %s" % (pid, g.get("uuid"), smi))
            sys.exit()
        if not want and not g.get("used_bytes"):
            print("MISSING gpu event for pid %d has no used_bytes" % pid)
            sys.exit()
        exe = (e.get("process") or {}).get("exe")
        print("FOUND %s pid=%d uuid=%s used_bytes=%s%s" % (g.get("change"), pid, g.get("uuid"),
              g.get("used_bytes"), " exe=" + exe if exe else ""))
        sys.exit()
    print("MISSING no gpu %s event for pid %d; gpu events seen: %s" % (want or "start/update", pid, seen[-5:] or "none"))
elif what == "open":
    hits = [e for e in lines if e.get("kind") == "open" and (e.get("file") or {}).get("path") == model]
    reads = [e for e in hits if ((e.get("file") or {}).get("flags", 0) & 3) == 0]
    mine = [e for e in reads if proc_pid(e) in (None, pid)]
    if mine:
        f = mine[0]["file"]
        print("FOUND read open of %s by pid %s (flags %s, result %s); %d open(s) of it in all"
              % (model, proc_pid(mine[0]), f.get("flag_names") or f.get("flags"), f.get("result"), len(hits)))
    elif hits:
        print("MISSING only %d write/other open(s) of %s seen, none for reading by pid %d" % (len(hits), model, pid))
    else:
        n = sum(1 for e in lines if e.get("kind") == "open")
        print("MISSING no open of %s among %d open events" % (model, n))
EOF
wait_for() { # wait_for NAME WHAT
	local deadline=$((SECONDS + WAIT)) out
	while :; do
		out=$(python3 "$WORK/check.py" "$WORK/sensor.jsonl" "$2" "$CHECK_PID" "$MODEL" "$GPU_UUIDS" "$SMI_UUID")
		case "$out" in
		FOUND*) record "$1" PASS "${out#FOUND }"; return 0 ;;
		WRONG*) record "$1" FAIL "${out#WRONG }"; return 1 ;;
		esac
		if ! kill -0 "$SENSOR_PID" 2>/dev/null; then record "$1" FAIL "sensor exited; ${out#MISSING }"; return 1; fi
		if [ $SECONDS -ge $deadline ]; then record "$1" FAIL "after ${WAIT}s: ${out#MISSING }"; return 1; fi
		sleep 0.5
	done
}
wait_for "gpu event: pid + uuid" gpu-start || true
wait_for "model-file open seen" open || true

# `sensor gpus`: the one-shot ownership table must list the workload too.
if table_out=$(timeout 60 "$SENSOR_BIN" gpus "${EXTRA_ARGS[@]}" 2>"$WORK/gpus.err"); then
	row=$(echo "$table_out" | awk -v p="$CHECK_PID" '$3 == p' | head -n1)
	if [ -n "$row" ] && echo "$GPU_UUIDS" | grep -qxF "$(echo "$row" | awk '{print $2}')"; then
		record "sensor gpus table" PASS "$(echo "$row" | tr -s ' ')"
	else
		record "sensor gpus table" FAIL "no row for pid $CHECK_PID with a GPU UUID: $(echo "$table_out" | head -n 4 | tr '\n' '|')"
	fi
else
	record "sensor gpus table" FAIL "sensor gpus failed: $(tail -n 2 "$WORK/gpus.err" | tr '\n' ' ')"
fi

touch "$WORK/stop"
wait "$PY_PID" 2>/dev/null || true
PY_PID=""
wait_for "gpu stop after exit" gpu-stop || true

if ! kill -0 "$SENSOR_PID" 2>/dev/null; then
	record "sensor still running" FAIL "the sensor exited during the check"
else
	record "sensor still running" PASS "$(wc -l <"$WORK/sensor.jsonl") lines of output"
fi
lost=$(grep -c '"kind":"lost"' "$WORK/sensor.jsonl" || true)
record "lost events" INFO "${lost:-0} lost line(s) in the stream"

if [ "$FAILED" != 0 ]; then
	if [ -s "$WORK/sensor.err" ]; then echo "--- sensor stderr (tail) ---"; tail -n 20 "$WORK/sensor.err"; fi
fi
table
exit "$FAILED"
