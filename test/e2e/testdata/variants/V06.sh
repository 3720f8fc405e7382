# V06 ESC-004 by nsenter with explicit nsfs paths of another host process (pid 2), not "-t 1"
ctr_run simctr-infer-v06 ctr-infer --mount -- nsenter --mount=/proc/2/ns/mnt --net=/proc/2/ns/net -- sh -c 'echo "on host: $(cat /etc/hostname)"'
