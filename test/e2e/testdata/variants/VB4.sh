# VB4 benign: nvidia-smi --query-gpu from the monitoring agent container (CPU host: a stub with the same opens,
# bind-mounted over /mnt in the agent's mount namespace: agent images ship it outside /tmp, where $H lives)
cat > "$H/smi_vb4.c" <<'P'
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
    const char *d[] = {"/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia-uvm"};
    for (int i = 0; i < 3; i++) { int f = open(d[i], O_RDONLY); if (f >= 0) close(f); }
    puts("0, GPU-00000000, 3 %, 1024 MiB");
    return 0;
}
P
mkdir -p "$H/agent-vb4"; gcc -o "$H/agent-vb4/nvidia-smi" "$H/smi_vb4.c"
ctr_run simctr-agent-vb4 ctr-nogpu --mount --propagation private -- sh -c '
  mount --bind "$0" /mnt && exec /mnt/nvidia-smi --query-gpu=index,uuid,utilization.gpu,memory.used --format=csv,noheader' "$H/agent-vb4"
