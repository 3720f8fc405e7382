package enrich

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/runtime/cgroup"
	"github.com/kestrel-sec/kestrel/internal/runtime/cri/critest"
)

const (
	hexID  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	podUID = "0e6c4ba8-5b31-4a3e-9f55-2c8b1b8e2f11"
	k8sCg  = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0e6c4ba8_5b31_4a3e_9f55_2c8b1b8e2f11.slice/cri-containerd-" + hexID + ".scope"
)

// Host namespace inodes in the fake /proc (pid 2 carries them).
var hostNS = map[string]uint32{"mnt": 4026531832, "pid": 4026531836, "net": 4026531833, "user": 4026531837, "uts": 4026531838, "ipc": 4026531839, "cgroup": 4026531835}

// fakeProc is a procfs stand-in: a directory of pid directories with the
// files the enricher reads, and a cgroup tree whose directory inodes are
// the cgroup ids. The enricher reads it as from the initial cgroup
// namespace (self has the host's namespaces).
type fakeProc struct {
	t      testing.TB
	proc   string
	cgroot string
}

type fproc struct {
	pid, ppid uint32
	comm, exe string
	args      []string
	uid       uint32
	cgroup    string
	ns        map[string]uint32 // nil: the host's
	kthread   bool
}

func newFakeProc(t *testing.T) *fakeProc { return newFakeProcB(t) }

func newFakeProcB(t testing.TB) *fakeProc {
	f := &fakeProc{t: t, proc: t.TempDir(), cgroot: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(f.proc, "self", "ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, ino := range hostNS {
		if err := os.Symlink(fmt.Sprintf("%s:[%d]", name, ino), filepath.Join(f.proc, "self", "ns", name)); err != nil {
			t.Fatal(err)
		}
	}
	f.add(fproc{pid: 1, comm: "init", cgroup: "/"})
	f.add(fproc{pid: 2, comm: "kthreadd", cgroup: "/", kthread: true})
	return f
}

// options are the Enricher's options for this stand-in: its cgroup tree's
// root directory stands for the hierarchy's root.
func (f *fakeProc) options() *Options {
	return &Options{ProcRoot: f.proc, CgroupRoot: f.cgroot, NoNetlink: true,
		CgroupResolver: &cgroup.ResolverOptions{RootID: f.cgroupID("/")}}
}

func (f *fakeProc) cgroupID(path string) uint64 {
	f.t.Helper()
	dir := filepath.Join(f.cgroot, path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		f.t.Fatal(err)
	}
	return st.Ino
}

func (f *fakeProc) add(p fproc) {
	f.t.Helper()
	dir := filepath.Join(f.proc, fmt.Sprint(p.pid))
	_ = os.RemoveAll(dir)
	must := func(err error) {
		if err != nil {
			f.t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "ns"), 0o755))
	flags := 4194560
	if p.kthread {
		flags = 2129984
	}
	stat := fmt.Sprintf("%d (%s) S %d %d %d 0 -1 %d 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0\n", p.pid, p.comm, p.ppid, p.pid, p.pid, flags, 100+p.pid)
	must(os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644))
	status := fmt.Sprintf("Name:\t%s\nTgid:\t%d\nPPid:\t%d\nUid:\t%d\t%d\t%d\t%d\nCapEff:\t0000000000000000\n", p.comm, p.pid, p.ppid, p.uid, p.uid, p.uid, p.uid)
	must(os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644))
	must(os.WriteFile(filepath.Join(dir, "cmdline"), []byte(strings.Join(p.args, "\x00")), 0o644))
	must(os.WriteFile(filepath.Join(dir, "cgroup"), []byte("0::"+p.cgroup+"\n"), 0o644))
	if p.exe != "" {
		must(os.Symlink(p.exe, filepath.Join(dir, "exe")))
	}
	if p.cgroup != "" {
		f.cgroupID(p.cgroup)
	}
	ns := p.ns
	if ns == nil {
		ns = hostNS
	}
	for name, ino := range hostNS {
		v := ino
		if x, ok := ns[name]; ok {
			v = x
		}
		must(os.Symlink(fmt.Sprintf("%s:[%d]", name, v), filepath.Join(dir, "ns", name)))
	}
}

func testConfig() config.ContextConfig {
	c := config.DefaultContext()
	c.CRISocket = config.CRIOff
	c.ContainerCgroupRegex = []string{"^/simctr-"}
	c.NodeIPs = []string{"10.200.1.1"}
	return c
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestEnricher(t *testing.T, f *fakeProc, cfg config.ContextConfig, clk *clock) *Enricher {
	t.Helper()
	opts := f.options()
	if clk != nil {
		opts.Now = clk.now
	}
	e, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return e
}

// partial is what the decoder hands over for a non-exec event.
func partial(pid uint32, comm string, cg uint64) *event.Process {
	return &event.Process{PID: pid, TID: pid, Comm: comm, CgroupID: cg}
}

func TestSeededLineageAndContainer(t *testing.T) {
	f := newFakeProc(t)
	cg := f.cgroupID(k8sCg)
	f.add(fproc{pid: 100, ppid: 1, comm: "containerd-shim", exe: "/usr/bin/containerd-shim-runc-v2", cgroup: "/system.slice/containerd.service"})
	f.add(fproc{pid: 200, ppid: 100, comm: "python3", exe: "/usr/bin/python3.11", args: []string{"python3", "-m", "vllm"}, cgroup: k8sCg,
		ns: map[string]uint32{"mnt": 4026532001, "pid": 4026532002}})
	f.add(fproc{pid: 300, ppid: 1, comm: "sshd", exe: "/usr/sbin/sshd", cgroup: "/system.slice/sshd.service"})
	e := newTestEnricher(t, f, testConfig(), nil)

	ev := &event.Event{Kind: event.KindOpen, Process: partial(200, "python3", cg), File: &event.File{Path: "/models/llama.safetensors"}}
	e.Enrich(ev)
	p := ev.Process
	if p.Exe != "/usr/bin/python3.11" || !reflect.DeepEqual(p.Args, []string{"python3", "-m", "vllm"}) || p.PPID != 100 {
		t.Errorf("process %+v", p)
	}
	wantAnc := []event.Ancestor{{PID: 100, Exe: "/usr/bin/containerd-shim-runc-v2", Comm: "containerd-shim"}, {PID: 1, Comm: "init"}}
	if !reflect.DeepEqual(p.Ancestors, wantAnc) {
		t.Errorf("ancestors %+v; want %+v", p.Ancestors, wantAnc)
	}
	c := ev.Container
	if c == nil || c.ID != hexID || c.Runtime != "containerd" || c.PodUID != podUID || c.CgroupPath != k8sCg || c.StartTime.IsZero() {
		t.Fatalf("container %+v", c)
	}
	host := &event.Event{Kind: event.KindOpen, Process: partial(300, "sshd", f.cgroupID("/system.slice/sshd.service"))}
	e.Enrich(host)
	if host.Container != nil {
		t.Errorf("host process: container %+v; want nil", host.Container)
	}
	if host.Process.Exe != "/usr/sbin/sshd" {
		t.Errorf("host process %+v", host.Process)
	}
	// Known process: the same snapshot, no allocation.
	in := partial(200, "python3", cg)
	ev2 := &event.Event{Kind: event.KindOpen}
	allocs := testing.AllocsPerRun(200, func() {
		ev2.Process, ev2.Container = in, nil
		e.Enrich(ev2)
	})
	if allocs != 0 {
		t.Errorf("Enrich of a known process allocates %v times", allocs)
	}
	if ev2.Process != p || ev2.Container != c {
		t.Error("known process: a new snapshot was made")
	}
	// Lookup serves the same snapshots.
	lp, lc := e.Lookup(200)
	if lp != p || lc != c {
		t.Errorf("Lookup = %p %p; want %p %p", lp, lc, p, c)
	}
}

func TestForkExecExitLineage(t *testing.T) {
	f := newFakeProc(t)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	f.add(fproc{pid: 100, ppid: 1, comm: "python3", exe: "/usr/bin/python3", cgroup: "/"})
	cfg := testConfig()
	cfg.ProcessRetention = config.Duration(5 * time.Minute)
	e := newTestEnricher(t, f, cfg, clk)

	// python3 forks a shell, which forks curl; the shell exits and curl
	// is re-parented to 1 before it connects.
	e.Enrich(&event.Event{Kind: event.KindFork, Time: clk.t, Process: &event.Process{PID: 200, TID: 200, PPID: 100, ForkParent: 100, Comm: "python3"}})
	sh := &event.Event{Kind: event.KindExec, Time: clk.t, Process: &event.Process{PID: 200, TID: 200, PPID: 100, Comm: "sh", Exe: "/bin/sh", Args: []string{"sh", "-c", "curl"}}}
	e.Enrich(sh)
	if sh.Process.Exe != "/bin/sh" || sh.Process.ForkParent != 100 || len(sh.Process.Ancestors) != 2 || sh.Process.Ancestors[0].Exe != "/usr/bin/python3" {
		t.Fatalf("sh %+v", sh.Process)
	}
	e.Enrich(&event.Event{Kind: event.KindFork, Time: clk.t, Process: &event.Process{PID: 300, TID: 300, PPID: 200, ForkParent: 200, Comm: "sh"}})
	e.Enrich(&event.Event{Kind: event.KindExec, Time: clk.t, Process: &event.Process{PID: 300, TID: 300, PPID: 200, Comm: "curl", Exe: "/usr/bin/curl"}})
	exit := &event.Event{Kind: event.KindExit, Time: clk.t, Process: &event.Process{PID: 200, TID: 200}}
	e.Enrich(exit)
	if exit.Process.Exe != "/bin/sh" {
		t.Errorf("exit event process %+v", exit.Process)
	}
	clk.t = clk.t.Add(time.Minute)
	conn := &event.Event{Kind: event.KindConnect, Process: &event.Process{PID: 300, TID: 300, PPID: 1, Comm: "curl"},
		Net: &event.Net{Protocol: "tcp", DAddr: netip.MustParseAddr("10.200.2.2"), DPort: 443}}
	e.Enrich(conn)
	want := []event.Ancestor{{PID: 200, Exe: "/bin/sh", Comm: "sh"}, {PID: 100, Exe: "/usr/bin/python3", Comm: "python3"}, {PID: 1, Comm: "init"}}
	if !reflect.DeepEqual(conn.Process.Ancestors, want) {
		t.Errorf("re-parented child ancestors %+v; want %+v", conn.Process.Ancestors, want)
	}
	if conn.Net.Class != event.ClassExternal {
		t.Errorf("class %s", conn.Net.Class)
	}
	// Within retention a new child of the exited shell's pid lineage is
	// still known; after it, the exited shell is dropped.
	if _, ok := e.Counters()["proc_table_expired"]; !ok {
		t.Fatal("no proc_table_expired counter")
	}
	clk.t = clk.t.Add(5 * time.Minute)
	// Expiry runs on lifecycle events (and every 256th event).
	e.Enrich(&event.Event{Kind: event.KindOpen, Process: partial(300, "curl", 0)})
	e.Enrich(&event.Event{Kind: event.KindExit, Process: &event.Process{PID: 9998, TID: 9998}})
	if got := e.Counters()["proc_table_expired"]; got != 1 {
		t.Errorf("expired %d; want 1", got)
	}
	// curl's own snapshot keeps its fork-time lineage.
	p, _ := e.Lookup(300)
	if !reflect.DeepEqual(p.Ancestors, want) {
		t.Errorf("after expiry: ancestors %+v", p.Ancestors)
	}
}

func TestGPUOwnerThreadsAndUnknown(t *testing.T) {
	f := newFakeProc(t)
	f.add(fproc{pid: 100, ppid: 1, comm: "python3", exe: "/usr/bin/python3", cgroup: "/"})
	e := newTestEnricher(t, f, testConfig(), nil)

	g := &event.Event{Kind: event.KindGPU, GPU: &event.GPU{PID: 100, UUID: "GPU-1"}}
	e.Enrich(g)
	if g.Process == nil || !g.Process.GPUOwner || g.Process.Exe != "/usr/bin/python3" {
		t.Fatalf("gpu event process %+v", g.Process)
	}
	o := &event.Event{Kind: event.KindOpen, Process: partial(100, "python3", 0)}
	e.Enrich(o)
	if !o.Process.GPUOwner {
		t.Error("GPUOwner not sticky")
	}
	// A worker thread gets its own cached variant.
	th := &event.Event{Kind: event.KindOpen, Process: &event.Process{PID: 100, TID: 101, Comm: "pt_worker"}}
	e.Enrich(th)
	if th.Process.TID != 101 || th.Process.Comm != "pt_worker" || th.Process.Exe != "/usr/bin/python3" || !th.Process.GPUOwner {
		t.Errorf("thread snapshot %+v", th.Process)
	}
	th2 := &event.Event{Kind: event.KindOpen, Process: &event.Process{PID: 100, TID: 101, Comm: "pt_worker"}}
	e.Enrich(th2)
	if th2.Process != th.Process {
		t.Error("thread variant not reused")
	}
	// A forked child does not inherit GPU ownership.
	fk := &event.Event{Kind: event.KindFork, Process: &event.Process{PID: 150, TID: 150, PPID: 100, ForkParent: 100}}
	e.Enrich(fk)
	if fk.Process.GPUOwner || fk.Process.Exe != "/usr/bin/python3" {
		t.Errorf("fork child %+v", fk.Process)
	}
	// A pid gone from /proc keeps the event's partial data, once.
	u := &event.Event{Kind: event.KindOpen, Process: &event.Process{PID: 9999, TID: 9999, Comm: "ghost", UID: 1000, EUID: 1000}}
	e.Enrich(u)
	if u.Process.Comm != "ghost" || u.Process.PID != 9999 || u.Container != nil {
		t.Errorf("unknown pid %+v", u.Process)
	}
	first := u.Process
	u2 := &event.Event{Kind: event.KindOpen, Process: &event.Process{PID: 9999, TID: 9999, Comm: "ghost", UID: 1000, EUID: 1000}}
	e.Enrich(u2)
	if u2.Process != first {
		t.Error("unknown pid: /proc read again or new snapshot")
	}
	c := e.Counters()
	if c["enrich_unknown_pids"] != 1 || c["enrich_proc_read_failures"] == 0 || c["enrich_gpu_owners"] != 1 {
		t.Errorf("counters %v", c)
	}
}

func TestCgroupChangeAndLayouts(t *testing.T) {
	f := newFakeProc(t)
	f.add(fproc{pid: 100, ppid: 1, comm: "probe", exe: "/usr/bin/probe", cgroup: "/"})
	// Namespace-only container: no layout, but mnt and pid namespaces
	// differ from kthreadd's.
	f.add(fproc{pid: 110, ppid: 1, comm: "app", exe: "/app", cgroup: "/", ns: map[string]uint32{"mnt": 4026532100, "pid": 4026532101}})
	// Mount namespace alone (systemd PrivateTmp) is the host.
	f.add(fproc{pid: 120, ppid: 1, comm: "svc", exe: "/svc", cgroup: "/system.slice/svc.service", ns: map[string]uint32{"mnt": 4026532200}})
	f.add(fproc{pid: 130, ppid: 1, comm: "sleep", exe: "/bin/sleep", cgroup: "/simctr-infer-a1"})
	e := newTestEnricher(t, f, testConfig(), nil)

	ev := &event.Event{Kind: event.KindOpen, Process: partial(100, "probe", f.cgroupID("/"))}
	e.Enrich(ev)
	if ev.Container != nil {
		t.Fatalf("probe before setns: container %+v", ev.Container)
	}
	// The probe joins the container's cgroup: the event's cgroup id
	// differs from the snapshot's and the container is re-resolved from
	// the path the kernel reported for that cgroup (/proc still shows the
	// old cgroup).
	cg := f.cgroupID(k8sCg)
	e.Cgroups().Learn(cg, k8sCg)
	ev = &event.Event{Kind: event.KindOpen, Process: partial(100, "probe", cg)}
	e.Enrich(ev)
	if ev.Container == nil || ev.Container.ID != hexID || ev.Process.CgroupID != cg {
		t.Fatalf("probe after joining: container %+v process %+v", ev.Container, ev.Process)
	}
	if e.Counters()["enrich_cgroup_changes"] != 1 {
		t.Errorf("cgroup changes %d", e.Counters()["enrich_cgroup_changes"])
	}
	for _, tt := range []struct {
		pid     uint32
		id, rt  string
		wantNil bool
	}{
		{110, event.Unknown, event.Unknown, false},
		{120, "", "", true},
		{130, "simctr-infer-a1", event.Unknown, false},
	} {
		ev := &event.Event{Kind: event.KindOpen, Process: partial(tt.pid, "", 0)}
		e.Enrich(ev)
		switch {
		case tt.wantNil && ev.Container != nil:
			t.Errorf("pid %d: container %+v; want host", tt.pid, ev.Container)
		case !tt.wantNil && (ev.Container == nil || ev.Container.ID != tt.id || ev.Container.Runtime != tt.rt):
			t.Errorf("pid %d: container %+v; want id %s runtime %s", tt.pid, ev.Container, tt.id, tt.rt)
		}
	}
}

func TestTableBoundAndClasses(t *testing.T) {
	f := newFakeProc(t)
	cfg := testConfig()
	cfg.ProcessTableSize = 64
	e := newTestEnricher(t, f, cfg, nil)
	for pid := uint32(1000); pid < 1100; pid++ {
		e.Enrich(&event.Event{Kind: event.KindOpen, Process: partial(pid, "x", 0)})
	}
	c := e.Counters()
	if c["proc_table_size"] != 64 || c["proc_table_evicted"] < 36 {
		t.Errorf("size %d evicted %d; want 64 and >= 36", c["proc_table_size"], c["proc_table_evicted"])
	}
	for _, tt := range []struct {
		n    event.Net
		want string
	}{
		{event.Net{Protocol: "unix", UnixPath: "/run/containerd/containerd.sock"}, event.ClassUnix},
		{event.Net{Protocol: "tcp", DAddr: netip.MustParseAddr("127.0.0.1")}, event.ClassLoopback},
		{event.Net{Protocol: "tcp", DAddr: netip.MustParseAddr("10.200.1.1")}, event.ClassNode},
		{event.Net{Protocol: "udp", DAddr: netip.MustParseAddr("169.254.169.254")}, event.ClassMetadata},
		{event.Net{Protocol: "tcp", DAddr: netip.MustParseAddr("203.0.113.9")}, event.ClassExternal},
	} {
		n := tt.n
		e.Enrich(&event.Event{Kind: event.KindConnect, Process: partial(1, "init", 0), Net: &n})
		if n.Class != tt.want {
			t.Errorf("%s %s: class %s; want %s", n.Protocol, n.DAddr, n.Class, tt.want)
		}
	}
}

type fakeGPUs map[string][]string

func (g fakeGPUs) GPUsFor(c *event.Container) []string { return g[c.PodUID+"/"+c.Name] }

func TestStartErrorsAndGPUAssigner(t *testing.T) {
	if _, err := New(config.ContextConfig{ContainerCgroupRegex: []string{"(("}}, nil); err == nil {
		t.Error("bad regex: no error")
	}
	e, err := New(testConfig(), &Options{ProcRoot: filepath.Join(t.TempDir(), "none"), NoNetlink: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err == nil {
		t.Error("Start without procfs: no error")
	}
	f := newFakeProc(t)
	f.add(fproc{pid: 200, ppid: 1, comm: "python3", exe: "/usr/bin/python3", cgroup: k8sCg})
	opts := f.options()
	opts.GPUAssignments = fakeGPUs{podUID + "/": {"GPU-aaaa"}}
	e, err = New(testConfig(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err == nil {
		t.Error("second Start: no error")
	}
	_, c := e.Lookup(200)
	if c == nil || !reflect.DeepEqual(c.GPUs, []string{"GPU-aaaa"}) {
		t.Errorf("container %+v; want GPUs [GPU-aaaa]", c)
	}
	if p, c := e.Lookup(4242); p != nil || c != nil {
		t.Errorf("Lookup of a missing pid: %+v %+v", p, c)
	}
}

// TestCRIFillsCgroupfsRuntime: with the cgroupfs driver the path does not
// name the runtime; the CRI runtime's Version answer does.
func TestCRIFillsCgroupfsRuntime(t *testing.T) {
	f := newFakeProc(t)
	path := "/kubepods/burstable/pod" + podUID + "/" + hexID
	f.add(fproc{pid: 200, ppid: 1, comm: "python3", exe: "/usr/bin/python3", cgroup: path})
	sock := filepath.Join(t.TempDir(), "crio.sock")
	rt := critest.New(sock, "cri-o")
	rt.AddPod(critest.Pod{ID: "sb1", Name: "llm-1", Namespace: "ml", UID: podUID})
	rt.AddContainer(critest.Container{ID: hexID, PodID: "sb1", Name: "main", Image: "quay.io/llm:1", ImageID: "sha256:1"})
	if err := rt.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Stop)
	cfg := testConfig()
	cfg.CRISocket = sock
	e := newTestEnricher(t, f, cfg, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, c := e.Lookup(200)
		if c == nil {
			t.Fatal("no container")
		}
		if c.Pod != "" {
			if c.Runtime != "cri-o" || c.Pod != "llm-1" || c.Namespace != "ml" || c.Image != "quay.io/llm:1" || c.Name != "main" {
				t.Errorf("container %+v", c)
			}
			break
		}
		if c.Runtime != event.Unknown {
			t.Fatalf("runtime before CRI answered: %q; want unknown", c.Runtime)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CRI metadata: %+v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPIDReuseAndStartSlack(t *testing.T) {
	f := newFakeProc(t)
	f.add(fproc{pid: 100, ppid: 1, comm: "bash", exe: "/bin/bash", cgroup: "/"})
	f.add(fproc{pid: 101, ppid: 1, comm: "cron", exe: "/usr/sbin/cron", cgroup: "/"})
	e := newTestEnricher(t, f, testConfig(), nil)
	seeded, _ := e.Lookup(100)

	// An exec whose kernel start time differs from /proc's by clock
	// granularity is the same process: fork parent and lineage stay.
	ex := &event.Event{Kind: event.KindExec, Process: &event.Process{PID: 100, TID: 100, PPID: 1, Comm: "python3", Exe: "/usr/bin/python3",
		StartTime: seeded.StartTime.Add(7 * time.Millisecond)}}
	e.Enrich(ex)
	if ex.Process.Exe != "/usr/bin/python3" || !reflect.DeepEqual(ex.Process.Ancestors, seeded.Ancestors) ||
		!ex.Process.StartTime.Equal(seeded.StartTime.Add(7*time.Millisecond)) {
		t.Errorf("exec of a seeded process: %+v", ex.Process)
	}
	// The pid exits and is reused by a child of cron: a new process with
	// cron's lineage, not bash's.
	e.Enrich(&event.Event{Kind: event.KindExit, Process: &event.Process{PID: 100, TID: 100}})
	fk := &event.Event{Kind: event.KindFork, Process: &event.Process{PID: 100, TID: 100, PPID: 101, ForkParent: 101,
		StartTime: seeded.StartTime.Add(time.Hour)}}
	e.Enrich(fk)
	if fk.Process.Exe != "/usr/sbin/cron" || fk.Process.ForkParent != 101 || len(fk.Process.Ancestors) == 0 || fk.Process.Ancestors[0].PID != 101 {
		t.Errorf("reused pid: %+v", fk.Process)
	}
}

// TestCRINotFoundStopsAsking: a container the runtime does not know (one of
// another runtime) is not asked about on every event; when a later listing
// finds it, its metadata still arrives.
func TestCRINotFoundStopsAsking(t *testing.T) {
	f := newFakeProc(t)
	path := "/kubepods/burstable/pod" + podUID + "/" + hexID
	f.add(fproc{pid: 200, ppid: 1, comm: "python3", exe: "/usr/bin/python3", cgroup: path})
	sock := filepath.Join(t.TempDir(), "crio.sock")
	rt := critest.New(sock, "cri-o")
	if err := rt.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Stop)
	cfg := testConfig()
	cfg.CRISocket = sock
	cfg.CRICacheTTL = config.Duration(200 * time.Millisecond)
	e := newTestEnricher(t, f, cfg, nil)
	complete := func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		ref := e.byID[hexID]
		return ref != nil && ref.complete
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.Lookup(200); !complete(); e.Lookup(200) {
		if time.Now().After(deadline) {
			t.Fatalf("a container the runtime does not know is still asked about: %v", e.Counters())
		}
		time.Sleep(10 * time.Millisecond)
	}
	rt.AddPod(critest.Pod{ID: "sb1", Name: "llm-1", Namespace: "ml", UID: podUID})
	rt.AddContainer(critest.Container{ID: hexID, PodID: "sb1", Name: "main", Image: "quay.io/llm:1", ImageID: "sha256:1"})
	for {
		if _, c := e.Lookup(200); c != nil && c.Pod == "llm-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CRI metadata after the container appeared: %v", e.Counters())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
