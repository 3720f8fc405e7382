# B5 GPU telemetry by the node agent (host) and by an allowlisted monitoring DaemonSet container
if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
  nvidia-smi --query-gpu=index,uuid,utilization.gpu,memory.used,temperature.gpu --format=csv -l 1 > /dev/null & A=$!
  sleep 5; kill "$A"
  nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv
  ctr_run simctr-agent-b5 ctr-nogpu --mount -- nvidia-smi -q -d UTILIZATION,MEMORY > /dev/null && echo "agent container ok"
else   # CPU host: replay the open() footprint measured for nvidia-smi on an H100 node
  cat > "$H/smi_stub.c" <<'P'
#include <fcntl.h>
#include <unistd.h>
int main(void) {
    const char *d[] = {"/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia-uvm",
                       "/dev/nvidia-caps/nvidia-cap1", "/dev/nvidia-caps/nvidia-cap2"};
    for (int r = 0; r < 5; r++, sleep(1))
        for (int i = 0; i < 5; i++) { int f = open(d[i], O_RDONLY); if (f >= 0) close(f); }
    return 0;
}
P
  mkdir -p "$H/agent"; gcc -o "$H/agent/nvidia-smi" "$H/smi_stub.c" && "$H/agent/nvidia-smi" && echo "stub agent ran"
fi
