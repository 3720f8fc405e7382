# harness helpers — source after prelude.sh has exported H and CGBASE
ctr_run() {  # ctr_run CGROUP NETNS [unshare flags...] -- CMD...   run CMD as a simulated container process
  local cg=$1 ns=$2; shift 2
  local uflags=(); while [ "$1" != "--" ]; do uflags+=("$1"); shift; done; shift
  mkdir -p "$CGBASE/$cg"                 # a new cgroup name = a new "container" (start time = first process)
  bash -c 'echo $$ > "'"$CGBASE/$cg"'/cgroup.procs"; exec "$@"' ctr \
    nsenter --net=/run/netns/"$ns" -- unshare "${uflags[@]}" -- "$@"
}
nvml_mock_add() {  # nvml_mock_add HOST_PID [GPU] : what NVML would report for a CUDA context
  python3 - "$H/nvml_mock.json" "$1" "${2:-0}" <<'PY'
import json, os, sys
p, pid, gpu = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = json.load(open(p)) if os.path.exists(p) else {'processes': []}
d['processes'] = [x for x in d['processes'] if x['pid'] != pid] + [{'gpu': gpu, 'pid': pid, 'used_bytes': 1 << 30}]
tmp = p + '.tmp'; json.dump(d, open(tmp, 'w')); os.replace(tmp, p)
PY
}
nvml_mock_clear() { echo '{"processes": []}' > "$H/nvml_mock.json"; }
host_pid_of() { pgrep -n -f -- "$1"; }     # newest host PID whose cmdline matches
wait_tcp() { for _ in $(seq 50); do (exec 3<>/dev/tcp/"$1"/"$2") 2>/dev/null && return 0; sleep 0.2; done; return 1; }
