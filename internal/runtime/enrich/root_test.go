package enrich

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/runtime/cri/critest"
	"github.com/kestrel-sec/kestrel/internal/runtime/proc"
)

// These tests need root and the real kernel: they build a simulated
// container (unshare + a cgroup v2 directory shaped like a containerd pod
// container), a network namespace with a veth, and a fake CRI runtime, and
// check what the Enricher makes of the real processes.

func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func randUID(t *testing.T) string {
	h := randHex(t, 16)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

// simContainer is a process running a marker binary in its own mount,
// pid, uts, ipc and net namespaces, inside a cgroup v2 directory laid out
// as containerd with the systemd driver lays out a BestEffort pod.
type simContainer struct {
	id, podUID, cgPath string
	cgroupID           uint64
	marker             string
	pid                uint32 // host pid of the marker
	unsharePID         uint32
}

func cgroupV2Root(t *testing.T) string {
	fs, err := proc.NewFS("/proc")
	if err != nil {
		t.Skip(err)
	}
	root, err := fs.CgroupV2Mount()
	if err != nil {
		t.Skipf("no cgroup v2 hierarchy: %v", err)
	}
	return root
}

func startSimContainer(t *testing.T) *simContainer {
	t.Helper()
	needRoot(t, "unshare")
	root := cgroupV2Root(t)
	c := &simContainer{id: randHex(t, 32), podUID: randUID(t)}
	c.cgPath = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" +
		strings.ReplaceAll(c.podUID, "-", "_") + ".slice/cri-containerd-" + c.id + ".scope"
	// Create the directories one by one, remembering which this test made,
	// so cleanup removes only those (other tests may share the parents).
	var made []string
	dir := root
	for _, seg := range strings.Split(strings.Trim(c.cgPath, "/"), "/") {
		dir = filepath.Join(dir, seg)
		if err := os.Mkdir(dir, 0o755); err == nil {
			made = append(made, dir)
		} else if !os.IsExist(err) {
			t.Fatalf("create cgroup: %v", err)
		}
	}
	leaf := dir
	t.Cleanup(func() {
		_ = os.WriteFile(filepath.Join(leaf, "cgroup.kill"), []byte("1"), 0)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			b, _ := os.ReadFile(filepath.Join(leaf, "cgroup.procs"))
			if len(strings.TrimSpace(string(b))) == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for i := len(made) - 1; i >= 0; i-- {
			if err := os.Remove(made[i]); err != nil && !os.IsNotExist(err) {
				t.Logf("remove cgroup %s: %v", made[i], err)
			}
		}
	})
	fi, err := os.Stat(leaf)
	if err != nil {
		t.Fatal(err)
	}
	c.cgroupID = sysIno(fi)

	// The marker is a copy of sleep under a name no other process has.
	c.marker = filepath.Join(t.TempDir(), "kestrel-marker-"+randHex(t, 4))
	src, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("needs sleep")
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.marker, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && exec unshare --mount --pid --uts --ipc --net --kill-child -- "$2" 300`,
		"sh", leaf, c.marker)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c.unsharePID = uint32(cmd.Process.Pid)
	deadline := time.Now().Add(5 * time.Second)
	for c.pid == 0 {
		if time.Now().After(deadline) {
			t.Fatal("marker did not start in the container cgroup")
		}
		b, _ := os.ReadFile(filepath.Join(leaf, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if exe, _ := os.Readlink("/proc/" + f + "/exe"); exe == c.marker {
				n, _ := strconv.ParseUint(f, 10, 32)
				c.pid = uint32(n)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

// execEvent is what the decoder reports for an exec: built here from /proc
// as the kernel would fill it.
func execEvent(t *testing.T, pid uint32) *event.Event {
	t.Helper()
	fs, _ := proc.NewFS("/proc")
	fs.SetCgroupV2Root(cgroupV2Root(t))
	p, err := fs.Process(pid)
	if err != nil {
		t.Fatal(err)
	}
	return &event.Event{Kind: event.KindExec, Time: time.Now(), Process: &event.Process{
		PID: pid, TID: pid, PPID: p.PPID, UID: p.UID, EUID: p.EUID, Comm: p.Comm, Exe: p.Exe, Args: p.Args,
		CgroupID: p.CgroupID, NS: p.NS, StartTime: p.StartTime,
	}}
}

func selfExe(t *testing.T) string {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func checkContainerProcess(t *testing.T, c *simContainer, ev *event.Event) {
	t.Helper()
	p := ev.Process
	if p.PID != c.pid || p.Exe != c.marker || p.CgroupID != c.cgroupID {
		t.Errorf("process pid %d exe %q cgroup %d; want %d %q %d", p.PID, p.Exe, p.CgroupID, c.pid, c.marker, c.cgroupID)
	}
	if len(p.Args) != 2 || p.Args[1] != "300" {
		t.Errorf("args %q", p.Args)
	}
	// Lineage: the marker was forked by unshare, which the test process
	// started (sh exec'd into unshare).
	if len(p.Ancestors) < 2 || p.Ancestors[0].PID != c.unsharePID || filepath.Base(p.Ancestors[0].Exe) != "unshare" ||
		p.Ancestors[1].PID != uint32(os.Getpid()) || p.Ancestors[1].Exe != selfExe(t) {
		t.Errorf("ancestors %+v; want unshare (%d) then this test (%d)", p.Ancestors, c.unsharePID, os.Getpid())
	}
	ct := ev.Container
	if ct == nil {
		t.Fatal("container is nil")
	}
	if ct.ID != c.id || ct.Runtime != "containerd" || ct.PodUID != c.podUID || ct.CgroupPath != c.cgPath {
		t.Errorf("container %+v; want id %s runtime containerd pod %s", ct, c.id, c.podUID)
	}
}

// TestSimulatedContainer is must-show 1 and 2: a process exec'd in a
// simulated containerd container, after the enricher started, gets the
// container id, runtime, pod UID and lineage; a host process in the same
// run gets no container; and the fake CRI runtime's pod name, namespace and
// image arrive on later events.
func TestSimulatedContainer(t *testing.T) {
	needRoot(t, "unshare")
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	rt := critest.New(sock, "containerd")
	if err := rt.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Stop)

	cfg := config.DefaultContext()
	cfg.CRISocket = sock
	cfg.CRITimeout = config.Duration(time.Second)
	e, err := New(cfg, &Options{NoNetlink: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}

	c := startSimContainer(t)
	rt.AddPod(critest.Pod{ID: "sandbox-" + c.id[:12], Name: "vllm-0", Namespace: "inference", UID: c.podUID, Labels: map[string]string{"app": "vllm"}})
	rt.AddContainer(critest.Container{ID: c.id, PodID: "sandbox-" + c.id[:12], Name: "server",
		Image: "docker.io/vllm/vllm-openai:v0.6.0", ImageID: "sha256:" + randHex(t, 32)})

	ex := execEvent(t, c.pid)
	// The kernel reports the container's own namespaces.
	if ex.Process.NS.Mnt == 0 || ex.Process.NS.PID == 0 {
		t.Fatalf("no namespaces for the marker: %+v", ex.Process.NS)
	}
	e.Enrich(ex)
	checkContainerProcess(t, c, ex)

	open := &event.Event{Kind: event.KindOpen, Process: partial(c.pid, ex.Process.Comm, c.cgroupID),
		File: &event.File{Path: "/models/llama.safetensors"}}
	e.Enrich(open)
	checkContainerProcess(t, c, open)

	host := &event.Event{Kind: event.KindOpen, Process: partial(uint32(os.Getpid()), "enrich.test", 0)}
	e.Enrich(host)
	if host.Container != nil {
		t.Errorf("host process: container %+v; want nil", host.Container)
	}
	if host.Process.Exe != selfExe(t) {
		t.Errorf("host process exe %q", host.Process.Exe)
	}

	// Pod metadata arrives asynchronously; later events carry it.
	deadline := time.Now().Add(10 * time.Second)
	var ct *event.Container
	for {
		ev := &event.Event{Kind: event.KindOpen, Process: partial(c.pid, ex.Process.Comm, c.cgroupID)}
		e.Enrich(ev)
		ct = ev.Container
		if ct != nil && ct.Pod != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pod metadata within 10s: %+v, counters %v", ct, e.Counters())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ct.Pod != "vllm-0" || ct.Namespace != "inference" || ct.Image != "docker.io/vllm/vllm-openai:v0.6.0" ||
		ct.Name != "server" || ct.Labels["app"] != "vllm" || ct.ID != c.id || ct.PodUID != c.podUID || ct.Runtime != "containerd" {
		t.Errorf("container with CRI metadata %+v", ct)
	}
	// The JSON contract shows it.
	js, err := (&event.Event{Kind: event.KindOpen, Time: time.Now(), Process: open.Process, Container: ct}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"pod":"vllm-0"`, `"namespace":"inference"`, `"runtime":"containerd"`, `"id":"` + c.id + `"`, `"ancestors":[{"pid":`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %s: %s", want, js)
		}
	}
}

// TestSeededBeforeStart is must-show 3: a process that started before the
// enricher is attributed from /proc when it later opens a model file.
func TestSeededBeforeStart(t *testing.T) {
	c := startSimContainer(t)
	e, err := New(func() config.ContextConfig { c := config.DefaultContext(); c.CRISocket = config.CRIOff; return c }(), &Options{NoNetlink: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e.Counters()["proc_table_size"] < 3 {
		t.Fatalf("table not seeded: %v", e.Counters())
	}
	// Only what the decoder has for an open: pid, tid, comm, cgroup id.
	open := &event.Event{Kind: event.KindOpen, Process: partial(c.pid, filepath.Base(c.marker), c.cgroupID),
		File: &event.File{Path: "/models/llama-3-8b/model-00001-of-00004.safetensors"}}
	e.Enrich(open)
	checkContainerProcess(t, c, open)
	if open.Process.StartTime.IsZero() || time.Since(open.Process.StartTime) > time.Minute {
		t.Errorf("start time %s", open.Process.StartTime)
	}
	if e.Counters()["enrich_unknown_pids"] != 0 {
		t.Errorf("the marker was not seeded: counters %v", e.Counters())
	}
}

// testNetns creates a network namespace with a veth to the host: host side
// hostIP/24, namespace side peerIP/24. Names are unique per test process.
func testNetns(t *testing.T, hostIP, peerIP netip.Addr) string {
	t.Helper()
	needRoot(t, "ip")
	id := os.Getpid() % 100000
	ns := fmt.Sprintf("kst-en-%d", id)
	hv, pv := fmt.Sprintf("kveh%d", id), fmt.Sprintf("kvep%d", id)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", hv).Run()
		_ = exec.Command("ip", "netns", "del", ns).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"link", "add", hv, "type", "veth", "peer", "name", pv},
		{"link", "set", pv, "netns", ns},
		{"addr", "add", hostIP.String() + "/24", "dev", hv},
		{"link", "set", hv, "up"},
		{"-n", ns, "addr", "add", peerIP.String() + "/24", "dev", pv},
		{"-n", ns, "link", "set", pv, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return ns
}

// listenIn opens a TCP listener inside network namespace name.
func listenIn(t *testing.T, name, addr string) net.Listener {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := netns.Set(orig); err != nil {
		// This thread is in the wrong namespace: let it die with the test.
		t.Fatalf("return to the host netns: %v", err)
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	return ln
}

func serve(t *testing.T, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// TestConnectClasses is must-show 4: real connects to 127.0.0.1, to a node
// address (the host end of a test veth) and to an address in a test network
// namespace reached through that veth classify as loopback, node and
// external, with netlink finding the node address.
func TestConnectClasses(t *testing.T) {
	needRoot(t, "ip")
	third := 100 + os.Getpid()%100
	hostIP := netip.MustParseAddr(fmt.Sprintf("10.211.%d.1", third))
	peerIP := netip.MustParseAddr(fmt.Sprintf("10.211.%d.2", third))
	ns := testNetns(t, hostIP, peerIP)

	cfg := config.DefaultContext()
	cfg.CRISocket = config.CRIOff
	e, err := New(cfg, nil) // netlink on
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}

	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, lo)
	node, err := net.Listen("tcp", net.JoinHostPort(hostIP.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, node)
	ext := listenIn(t, ns, net.JoinHostPort(peerIP.String(), "0"))
	serve(t, ext)

	self := uint32(os.Getpid())
	for _, tt := range []struct {
		name string
		addr string
		want string
	}{
		{"loopback", lo.Addr().String(), event.ClassLoopback},
		{"node", node.Addr().String(), event.ClassNode},
		{"netns via veth", ext.Addr().String(), event.ClassExternal},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", tt.addr, 2*time.Second)
			if err != nil {
				t.Fatalf("connect %s: %v", tt.addr, err)
			}
			defer conn.Close()
			la := conn.LocalAddr().(*net.TCPAddr).AddrPort()
			ra := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
			ev := &event.Event{Kind: event.KindConnect, Time: time.Now(), Process: partial(self, "enrich.test", 0),
				Net: &event.Net{Protocol: "tcp", SAddr: la.Addr(), SPort: la.Port(), DAddr: ra.Addr(), DPort: ra.Port(), Fd: -1}}
			e.Enrich(ev)
			if ev.Net.Class != tt.want {
				t.Errorf("connect to %s: class %s; want %s", tt.addr, ev.Net.Class, tt.want)
			}
			if ev.Process.Exe != selfExe(t) {
				t.Errorf("process exe %q", ev.Process.Exe)
			}
		})
	}
	// AF_UNIX connects are "unix".
	ev := &event.Event{Kind: event.KindConnect, Process: partial(self, "enrich.test", 0),
		Net: &event.Net{Protocol: "unix", UnixPath: "/run/containerd/containerd.sock"}}
	e.Enrich(ev)
	if ev.Net.Class != event.ClassUnix {
		t.Errorf("unix connect: class %s", ev.Net.Class)
	}
	// The node address came from netlink, not from configuration.
	if len(cfg.NodeIPs) != 0 || e.Counters()["netclass_refreshes"] == 0 {
		t.Errorf("node_ips %v, refreshes %d", cfg.NodeIPs, e.Counters()["netclass_refreshes"])
	}
}
