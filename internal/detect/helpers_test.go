package detect

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// Synthetic enriched events, shaped like the scenario harness (docs/testing.md).

var (
	t0     = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	hostNS = event.Namespaces{Mnt: 4026531841, PID: 4026531836, Net: 4026531840, User: 4026531837,
		UTS: 4026531838, IPC: 4026531839, Cgroup: 4026531835}
	// ctrNS is a container with its own mount, uts, ipc, pid and net namespaces.
	ctrNS = event.Namespaces{Mnt: 4026532101, PID: 4026532102, Net: 4026532103, User: hostNS.User,
		UTS: 4026532104, IPC: 4026532105, Cgroup: hostNS.Cgroup}
	// hostPIDNS is a hostPID container: own mount/uts/ipc/net, host pid.
	hostPIDNS = event.Namespaces{Mnt: 4026532201, PID: hostNS.PID, Net: 4026532103, User: hostNS.User,
		UTS: 4026532204, IPC: 4026532205, Cgroup: hostNS.Cgroup}
)

const allCaps = 0x1ffffffffff

// harnessConfig is the detect section of the scenario harness (docs/testing.md).
func harnessConfig() config.DetectConfig {
	c := config.Default().Detect
	c.InferenceSelector = config.Selector{CgroupRegex: config.Patterns{"^/simctr-infer-"}}
	c.GPUAgentAllowlist = config.AgentAllowlist{CgroupRegex: config.Patterns{"^/simctr-agent-"},
		HostExe: []string{"nvidia-smi", "nv-hostengine", "dcgm-exporter"}}
	c.RuntimeBinariesExtra = []string{"/tmp/h/bin/runc"}
	c.ModelRoots = []string{"/tmp/h/models", "/tmp/h/hf/hub"}
	c.EgressAllowlist = map[string][]string{"^/simctr-infer-": {"10.200.1.0/24"}, "*": {"127.0.0.0/8"}}
	c.StartupGrace = config.Duration(30 * time.Second)
	// EXF/GPU knobs of the harness (issue 6).
	c.ModelUpdaters = map[string][]string{"^/simctr-build-": {"curl"}, "host": {"python3 */mkmodel.py"}}
	c.EgressAllowlist["^/simctr-build-"] = []string{"10.200.1.1/32:8080"}
	c.ExfilWindow = config.Duration(120 * time.Second)
	c.PromoteGrace = config.Duration(60 * time.Second)
	c.ExfilBytesThreshold = 4 << 20
	return c
}

func newTestEngine(t testing.TB, mod func(*config.DetectConfig)) *Engine {
	t.Helper()
	c := harnessConfig()
	if mod != nil {
		mod(&c)
	}
	e, err := New(c, &Options{HostNS: hostNS, Self: testSelf})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func ctr(name string) *event.Container {
	return &event.Container{ID: name, Runtime: event.Unknown, CgroupPath: "/" + name, Pod: event.Unknown,
		Namespace: event.Unknown, Image: event.Unknown}
}

// pb builds a process.
type pb struct{ p *event.Process }

func proc(pid uint32, exe string, args ...string) pb {
	if len(args) == 0 {
		args = []string{exe}
	}
	return pb{&event.Process{PID: pid, TID: pid, PPID: 1, Exe: exe, Args: args, Comm: baseName(exe),
		NS: ctrNS, CapEff: allCaps, CapPrm: allCaps}}
}

func (b pb) ns(n event.Namespaces) pb { b.p.NS = n; return b }
func (b pb) caps(c uint64) pb         { b.p.CapEff, b.p.CapPrm = c, c; return b }
func (b pb) uid(u uint32) pb          { b.p.UID, b.p.EUID = u, u; return b }
func (b pb) tty() pb                  { b.p.TTY = true; return b }
func (b pb) owner() pb                { b.p.GPUOwner = true; return b }
func (b pb) cwd(c string) pb          { b.p.Cwd = c; return b }
func (b pb) memfd() pb                { b.p.ExeMemfd = true; return b }
func (b pb) env(name, value string) pb {
	b.p.Env = append(b.p.Env, event.EnvVar{Name: name, Value: value})
	return b
}
func (b pb) anc(a ...event.Ancestor) pb { // nearest first; the first is the fork parent
	b.p.Ancestors = a
	if len(a) > 0 {
		b.p.ForkParent, b.p.PPID = a[0].PID, a[0].PID
	}
	return b
}

func an(pid uint32, exe string) event.Ancestor { return event.Ancestor{PID: pid, Exe: exe} }

func execEv(b pb, c *event.Container) *event.Event {
	return &event.Event{Kind: event.KindExec, Process: b.p, Container: c}
}

func openEv(b pb, c *event.Container, path, raw string, flags uint32, res int32) *event.Event {
	if raw == "" {
		raw = path
	}
	return &event.Event{Kind: event.KindOpen, Process: b.p, Container: c,
		File: &event.File{Path: path, RawPath: raw, Flags: flags, Result: res, Size: -1}}
}

func connEv(b pb, c *event.Container, addr string, port uint16, class string) *event.Event {
	return &event.Event{Kind: event.KindConnect, Process: b.p, Container: c,
		Net: &event.Net{Protocol: "tcp", DAddr: netip.MustParseAddr(addr), DPort: port, Class: class, Fd: 3}}
}

func unixEv(b pb, c *event.Container, path string) *event.Event {
	return &event.Event{Kind: event.KindConnect, Process: b.p, Container: c,
		Net: &event.Net{Protocol: "unix", UnixPath: path, Class: event.ClassUnix, Fd: 3}}
}

func sysEv(b pb, c *event.Container, s event.Syscall) *event.Event {
	return &event.Event{Kind: event.KindSyscall, Process: b.p, Container: c, Sys: &s}
}

func gpuEv(pid uint32, c *event.Container) *event.Event {
	return &event.Event{Kind: event.KindGPU, Process: &event.Process{PID: pid, TID: pid}, Container: c,
		GPU: &event.GPU{Change: event.GPUStart, PID: pid, UUID: "GPU-0", UsedBytes: 1 << 30}}
}

const (
	wr  = event.OWronly | event.OCreat | event.OTrunc
	rd  = event.ORdonly
	rdw = event.ORdwr
)

// run feeds evs (timestamps 100ms apart unless set) and returns the
// findings, flushed at the end.
func run(e *Engine, evs ...*event.Event) []*event.Event {
	var out []*event.Event
	sink := func(f *event.Event) { out = append(out, f) }
	last := t0
	for i, ev := range evs {
		if ev.Time.IsZero() {
			ev.Time = t0.Add(time.Duration(i) * 100 * time.Millisecond)
		}
		last = ev.Time
		e.Process(ev, sink)
	}
	e.Flush(last.Add(time.Hour), sink)
	return out
}

func rulesFired(fs []*event.Event) map[string]*event.Finding {
	m := map[string]*event.Finding{}
	for _, f := range fs {
		if prev, ok := m[f.Finding.Rule]; !ok || f.Finding.Severity > prev.Severity {
			m[f.Finding.Rule] = f.Finding
		}
	}
	return m
}

func firedList(fs []*event.Event) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.Finding.Rule+"("+f.Finding.Severity.String()+"): "+f.Finding.Explanation)
	}
	return strings.Join(s, "\n")
}
