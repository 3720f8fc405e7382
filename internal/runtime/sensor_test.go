package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// The sensor filters out its own process, so the tests act through child
// processes: the test binary re-executed with KESTREL_TEST_HELPER set.
const helperEnv = "KESTREL_TEST_HELPER"

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(h, os.Args[len(os.Args)-2:]))
	}
	os.Exit(m.Run())
}

// runHelper performs one action in the child and prints the syscall result.
func runHelper(action string, args []string) int {
	switch action {
	case "open": // open(args[1]) relative to the cwd or absolute
		fd, err := unix.Open(args[1], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		fmt.Println(fd, err)
		if fd >= 0 {
			unix.Close(fd)
		}
	case "openat": // openat(open(args[0]), args[1])
		dfd, err := unix.Open(args[0], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fd, err := unix.Openat(dfd, args[1], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		fmt.Println(fd, err)
	case "openat2": // openat2(AT_FDCWD, args[1])
		fd, err := unix.Openat2(unix.AT_FDCWD, args[1], &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC})
		fmt.Println(fd, err)
	case "sys":
		return runSysHelper(args)
	case "ident":
		return runIdentHelper(args)
	case "iou":
		return runIOUringHelper(args)
	case "signal":
		return runSignalHelper(args)
	case "deployed": // stage 1 of TestLoadWithDeployedCapabilities
		return deployedStage1(args[0], args[1])
	case "deployed2":
		return deployedStage2(args[1])
	case "memfdexec": // execve a copy of args[1] from a memfd
		data, err := os.ReadFile(args[1])
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fd, err := unix.MemfdCreate("kestrel-payload", 0)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		if _, err := unix.Write(fd, data); err != nil {
			fmt.Println(err)
			return 1
		}
		err = unix.Exec(fmt.Sprintf("/proc/self/fd/%d", fd), []string{"payload"}, nil)
		fmt.Println(err)
		return 1
	case "creat": // creat(args[1], 0600) via the creat syscall
		p, _ := unix.BytePtrFromString(args[1])
		r, _, e := unix.Syscall(unix.SYS_CREAT, uintptr(unsafe.Pointer(p)), 0o600, 0)
		fmt.Println(int(r), e)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", action)
		return 2
	}
	return 0
}

func requireKernel(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load eBPF programs")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("kernel has no BTF (/sys/kernel/btf/vmlinux): CO-RE programs cannot load")
	}
}

// collector gathers events emitted by Run.
type collector struct {
	mu  sync.Mutex
	evs []*event.Event
}

func (c *collector) emit(e *event.Event) {
	c.mu.Lock()
	c.evs = append(c.evs, e)
	c.mu.Unlock()
}

// wait returns the first event matching pred, or fails after timeout.
func (c *collector) wait(t *testing.T, what string, pred func(*event.Event) bool) *event.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, e := range c.evs {
			if pred(e) {
				c.mu.Unlock()
				return e
			}
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s event within 5s", what)
	return nil
}

// all returns a copy of the events so far.
func (c *collector) all() []*event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.evs)
}

func (c *collector) find(pred func(*event.Event) bool) *event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.evs {
		if pred(e) {
			return e
		}
	}
	return nil
}

// startSensor loads the sensor with cfg and runs it until the test ends.
func startSensor(t *testing.T, cfg config.CaptureConfig) (*Sensor, *collector) {
	t.Helper()
	requireKernel(t)
	s, err := Load(cfg, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c.emit) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, c
}

// testConfig is the default capture config, polled often, reporting every
// open (TestOpenRepeatsCounted tests the repeat window).
func testConfig() config.CaptureConfig {
	cfg := config.Default().Capture
	cfg.PollInterval = config.Duration(10 * time.Millisecond)
	cfg.OpenRepeatWindow = 0
	return cfg
}

// helper runs the test binary as a child performing action; it returns the
// child's pid and output.
func helper(t *testing.T, dir, action string, args ...string) (int, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+action)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %s %v: %v: %s", action, args, err, out)
	}
	return cmd.Process.Pid, strings.TrimSpace(string(out))
}

func openBy(pid int, raw string) func(*event.Event) bool {
	return func(e *event.Event) bool {
		return e.Kind == event.KindOpen && e.Process.PID == uint32(pid) && e.File.RawPath == raw
	}
}

func TestExecSeenWithArgv(t *testing.T) {
	_, c := startSensor(t, testConfig())
	dir := t.TempDir()
	bin := filepath.Join(dir, "kestrel-exec-test")
	data, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--first", "two words", "-x"}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"LD_PRELOAD=/tmp/x.so", "AWS_SECRET_ACCESS_KEY=hunter2", "PLAIN=dropped", "CUDA_VISIBLE_DEVICES=0"}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	e := c.wait(t, "exec", func(e *event.Event) bool { return e.Kind == event.KindExec && e.Process.PID == pid })
	p := e.Process
	if p.Exe != bin {
		t.Errorf("exe = %q; want %q", p.Exe, bin)
	}
	if want := append([]string{bin}, args...); !slices.Equal(p.Args, want) {
		t.Errorf("args = %q; want %q", p.Args, want)
	}
	if p.PPID != uint32(os.Getpid()) || p.ForkParent != p.PPID {
		t.Errorf("ppid = %d, fork parent %d; want %d", p.PPID, p.ForkParent, os.Getpid())
	}
	if p.Cwd != dir {
		t.Errorf("cwd = %q; want %q", p.Cwd, dir)
	}
	if p.Comm != "kestrel-exec-te" {
		t.Errorf("comm = %q", p.Comm)
	}
	if p.NS.Mnt == 0 || p.NS.PID == 0 || p.NS.Net == 0 || p.NS.User == 0 || p.NS.Cgroup == 0 {
		t.Errorf("namespaces not all filled: %+v", p.NS)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/mnt", &st); err == nil && uint64(p.NS.Mnt) != st.Ino {
		t.Errorf("mnt ns = %d; want %d", p.NS.Mnt, st.Ino)
	}
	if p.CapEff == 0 {
		t.Errorf("root child has no effective capabilities")
	}
	if p.ExeMemfd {
		t.Errorf("exe flagged as memfd")
	}
	wantEnv := []event.EnvVar{
		{Name: "LD_PRELOAD", Value: "/tmp/x.so"},
		{Name: "AWS_SECRET_ACCESS_KEY", Value: "sha256:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7"},
		{Name: "CUDA_VISIBLE_DEVICES", Value: "0"},
	}
	if !slices.Equal(p.Env, wantEnv) {
		t.Errorf("env = %v; want %v", p.Env, wantEnv)
	}
	c.wait(t, "fork", func(e *event.Event) bool {
		return e.Kind == event.KindFork && e.Process.PID == pid && e.Process.ForkParent == uint32(os.Getpid())
	})
	ex := c.wait(t, "exit", func(e *event.Event) bool { return e.Kind == event.KindExit && e.Process.PID == pid })
	if ex.Exit.Code != 0 || ex.Exit.Signal != 0 {
		t.Errorf("exit = %+v; want 0", ex.Exit)
	}
}

func TestExecFromMemfdAndExitStatus(t *testing.T) {
	_, c := startSensor(t, testConfig())
	pid, out := helper(t, "/", "memfdexec", "-", "/bin/true")
	e := c.wait(t, "exec", func(e *event.Event) bool {
		return e.Kind == event.KindExec && e.Process.PID == uint32(pid) && len(e.Process.Args) == 1
	})
	if !e.Process.ExeMemfd || !strings.HasPrefix(e.Process.Exe, "memfd:kestrel-payload") {
		t.Errorf("exe %q memfd %v; want memfd:kestrel-payload (child: %s)", e.Process.Exe, e.Process.ExeMemfd, out)
	}
	if e.Process.Args[0] != "payload" {
		t.Errorf("args = %q", e.Process.Args)
	}

	cmd := exec.Command("/bin/sh", "-c", "exit 3")
	if err := cmd.Run(); err == nil {
		t.Fatal("sh -c 'exit 3' succeeded")
	}
	x := c.wait(t, "exit", func(e *event.Event) bool { return e.Kind == event.KindExit && e.Process.PID == uint32(cmd.Process.Pid) })
	if x.Exit.Code != 3 || x.Exit.Signal != 0 {
		t.Errorf("exit = %+v; want code 3", x.Exit)
	}
	cmd = exec.Command("/bin/sh", "-c", "kill -9 $$")
	cmd.Run()
	x = c.wait(t, "exit", func(e *event.Event) bool { return e.Kind == event.KindExit && e.Process.PID == uint32(cmd.Process.Pid) })
	if x.Exit.Signal != 9 {
		t.Errorf("exit = %+v; want signal 9", x.Exit)
	}
}

func TestOpenProcEntries(t *testing.T) {
	_, c := startSensor(t, testConfig())
	tests := []struct {
		path     string
		reported bool
	}{
		{"/proc/self/maps", false},    // a process reading its own maps is routine
		{"/proc/self/environ", false}, // likewise
		{"/proc/1/environ", true},     // another process's environment
		{"/proc/1/maps", true},        // another process's memory layout
		{"/proc/thread-self/ns/uts", true},
		{"/proc/self/task/1/ns/net", true},
		{"/proc/self/root/etc/hostname", true},
		{"/proc/1/status", false},
		{"/proc/self/statm", false},
	}
	var marker int
	pids := map[string]int{}
	for _, tt := range tests {
		pids[tt.path], _ = helper(t, "/", "open", "-", tt.path)
	}
	marker, _ = helper(t, "/", "open", "-", "/proc/self/ns/mnt")
	c.wait(t, "marker", openBy(marker, "/proc/self/ns/mnt"))
	for _, tt := range tests {
		got := c.find(openBy(pids[tt.path], tt.path)) != nil
		if got != tt.reported {
			t.Errorf("%s: reported %v; want %v", tt.path, got, tt.reported)
		}
	}
}

func TestOpenModelFile(t *testing.T) {
	_, c := startSensor(t, testConfig())
	dir := t.TempDir()
	model := filepath.Join(dir, "x.safetensors")
	if err := os.WriteFile(model, []byte("weights"), 0o600); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(model, &st); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		dir    string
		action string
		args   []string
		raw    string
		call   string
	}{
		{"absolute", "/", "open", []string{"-", model}, model, "openat"},
		{"relative to cwd", dir, "open", []string{"-", "x.safetensors"}, "x.safetensors", "openat"},
		{"relative to dirfd", "/", "openat", []string{dir, "x.safetensors"}, "x.safetensors", "openat"},
		{"openat2", dir, "openat2", []string{"-", "./X.SafeTensors"}, "./X.SafeTensors", "openat2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.action == "openat2" {
				// case-insensitive suffix match; the file itself does not exist
				pid, out := helper(t, tt.dir, tt.action, tt.args...)
				e := c.wait(t, "open", openBy(pid, tt.raw))
				if e.File.Result != -int32(unix.ENOENT) || e.File.Path != filepath.Join(dir, "X.SafeTensors") ||
					e.File.Syscall != "openat2" {
					t.Errorf("file = %+v (child said %s)", e.File, out)
				}
				return
			}
			pid, out := helper(t, tt.dir, tt.action, tt.args...)
			e := c.wait(t, "open", openBy(pid, tt.raw))
			f := e.File
			if f.Path != model || f.PathSource != event.PathKernel {
				t.Errorf("path = %q (%v); want %q from the kernel", f.Path, f.PathSource, model)
			}
			if f.Result < 0 || !strings.HasPrefix(out, fmt.Sprint(f.Result)+" ") {
				t.Errorf("result = %d; child said %q", f.Result, out)
			}
			if f.Syscall != tt.call || f.Flags&unix.O_ACCMODE != unix.O_RDONLY {
				t.Errorf("syscall %q flags %#x", f.Syscall, f.Flags)
			}
			if f.Size != 7 || f.Inode != st.Ino || f.Dev != st.Dev {
				t.Errorf("size %d inode %d dev %d; want 7 %d %d", f.Size, f.Inode, f.Dev, st.Ino, st.Dev)
			}
		})
	}
}

func TestOpenFailedWatchedPathReported(t *testing.T) {
	_, c := startSensor(t, testConfig())
	// /proc/1/ns/net is unreadable here (restricted init); on a host where
	// it opens, the result is an fd and the path the nsfs name.
	pid, out := helper(t, "/", "open", "-", "/proc/1/ns/net")
	e := c.wait(t, "open", openBy(pid, "/proc/1/ns/net"))
	if strings.Contains(out, "permission denied") {
		if e.File.Result != -int32(unix.EACCES) {
			t.Errorf("result = %d; want -13", e.File.Result)
		}
		if e.File.Path != "/proc/1/ns/net" || e.File.PathSource != event.PathAsPassed {
			t.Errorf("path = %q (%v)", e.File.Path, e.File.PathSource)
		}
	} else if e.File.Result < 0 || !strings.HasPrefix(e.File.Path, "net:[") {
		t.Errorf("opened: result %d path %q; want an fd and net:[inode]", e.File.Result, e.File.Path)
	}
	// A failed relative open is joined to the cwd.
	pid, _ = helper(t, "/tmp", "open", "-", "missing-dir/y.gguf")
	e = c.wait(t, "open", openBy(pid, "missing-dir/y.gguf"))
	if e.File.Result != -int32(unix.ENOENT) || e.File.Path != "/tmp/missing-dir/y.gguf" || e.File.PathSource != event.PathKernel {
		t.Errorf("file = %+v", e.File)
	}
}

func TestOpenUninterestingNotReported(t *testing.T) {
	_, c := startSensor(t, testConfig())
	dir := t.TempDir()
	plain := filepath.Join(dir, "notes.txt")
	marker := filepath.Join(dir, "marker.gguf")
	for _, p := range []string{plain, marker} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	helper(t, "/", "open", "-", plain)
	// The sensor's own opens are never reported (this test is the sensor).
	self := filepath.Join(dir, "self.safetensors")
	if err := os.WriteFile(self, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pid2, _ := helper(t, "/", "open", "-", marker)
	// The marker was opened after the plain file: once it arrived, any event
	// for the plain file would have arrived too.
	c.wait(t, "marker open", openBy(pid2, marker))
	// Opens of self by others are not this test's: another sensor running
	// on the host (its model hasher reads .safetensors files it saw
	// opened) may open it, and this sensor rightly reports that.
	if e := c.find(func(e *event.Event) bool {
		return e.Kind == event.KindOpen && (e.File.RawPath == plain || e.File.Path == plain ||
			e.Process.PID == uint32(os.Getpid()))
	}); e != nil {
		t.Errorf("uninteresting open reported: %+v by %+v", e.File, e.Process)
	}
}

func TestCreatReported(t *testing.T) {
	_, c := startSensor(t, testConfig())
	dir := t.TempDir()
	p := filepath.Join(dir, "new.pt")
	pid, _ := helper(t, "/", "creat", "-", p)
	e := c.wait(t, "creat", openBy(pid, p))
	if e.File.Syscall != "creat" || !e.File.IsWrite() || e.File.Result < 0 || e.File.Path != p {
		t.Errorf("file = %+v", e.File)
	}
}

// TestCloseLeavesNothing walks the kernel's program and map ids: after Close,
// and after a Load that fails halfway, none of ours remain.
func TestCloseLeavesNothing(t *testing.T) {
	requireKernel(t)
	s, err := Load(testConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	progs, maps := s.ObjectIDs()
	if len(progs) < 10 || len(maps) < 5 {
		t.Fatalf("ids: %d programs, %d maps; want the whole collection", len(progs), len(maps))
	}
	for _, want := range []string{"kestrel_exec", "kestrel_fork", "kestrel_exit", "kestrel_sys_enter", "kestrel_sys_exit"} {
		if !slices.Contains(s.Programs(), want) {
			t.Errorf("program %s not attached; attached: %v", want, s.Programs())
		}
	}
	if mem := s.MapMemory(); mem["events"] < uint64(testConfig().RingBufferBytes) {
		t.Errorf("MapMemory events = %d; want at least the ring buffer's %d bytes (all maps: %v)", mem["events"], testConfig().RingBufferBytes, mem)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// A scrape after Close must not touch the unmapped ring.
	if used, size := s.RingbufUsage(); used != 0 || size != 0 {
		t.Errorf("RingbufUsage after Close = %d, %d; want 0, 0", used, size)
	}
	assertGone(t, progs, maps)

	// A load that fails half-way through attaching leaves nothing either.
	var failedProgs []ebpf.ProgramID
	var failedMaps []ebpf.MapID
	testHookLoaded = func(s *Sensor) error { failedProgs, failedMaps = s.ObjectIDs(); return nil }
	attached := 0
	testHookAttached = func(name string) error {
		if attached++; attached == 5 {
			return errors.New("injected attach failure")
		}
		return nil
	}
	defer func() { testHookLoaded, testHookAttached = nil, nil }()
	if s, err := Load(testConfig(), nil); err == nil {
		s.Close()
		t.Fatal("Load succeeded despite the injected attach failure")
	} else if !strings.Contains(err.Error(), "injected attach failure") {
		t.Fatalf("Load: %v; want the injected failure", err)
	}
	if len(failedProgs) == 0 {
		t.Fatal("test hook saw no programs")
	}
	assertGone(t, failedProgs, failedMaps)

	// A load that fails after the collection is in the kernel, before attaching.
	failedProgs = nil
	testHookAttached = nil
	testHookLoaded = func(s *Sensor) error {
		failedProgs, failedMaps = s.ObjectIDs()
		return errors.New("injected load failure")
	}
	if s, err := Load(testConfig(), nil); err == nil {
		s.Close()
		t.Fatal("Load succeeded despite the injected failure")
	}
	if len(failedProgs) == 0 {
		t.Fatal("test hook saw no programs")
	}
	assertGone(t, failedProgs, failedMaps)

	// A bad filter table is refused before anything reaches the kernel.
	failedProgs = nil
	bad := testConfig()
	bad.WatchPrefixes = []string{"relative/prefix"}
	if s, err := Load(bad, nil); err == nil || !strings.Contains(err.Error(), "relative/prefix") {
		s.Close()
		t.Fatalf("Load with a relative watch prefix: %v; want an error naming it", err)
	}
	if failedProgs != nil {
		t.Error("programs were loaded for a config that cannot work")
	}
}

func assertGone(t *testing.T, progs []ebpf.ProgramID, maps []ebpf.MapID) {
	t.Helper()
	// Programs and maps are freed after an RCU grace period, and a program
	// array's entries by a work item once its last descriptor is closed.
	// The check lists ids instead of opening objects by id: a descriptor
	// opened and closed while that work is pending makes this kernel
	// queue it twice and keep the array (a reference leak of the kernel's
	// prog_array_map_clear, seen on 6.18), so looking would cause a leak.
	deadline := time.Now().Add(3 * time.Second)
	for {
		liveProgs, liveMaps := liveIDs(t)
		var left []string
		for _, id := range progs {
			if liveProgs[id] {
				left = append(left, fmt.Sprint("prog ", id))
			}
		}
		for _, id := range maps {
			if liveMaps[id] {
				left = append(left, fmt.Sprint("map ", id))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left in the kernel after Close: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// liveIDs returns the ids of every program and map in the kernel.
func liveIDs(t *testing.T) (map[ebpf.ProgramID]bool, map[ebpf.MapID]bool) {
	t.Helper()
	progs, maps := map[ebpf.ProgramID]bool{}, map[ebpf.MapID]bool{}
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			t.Fatalf("list programs: %v", err)
		}
		progs[next], id = true, next
	}
	for id := ebpf.MapID(0); ; {
		next, err := ebpf.MapGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			t.Fatalf("list maps: %v", err)
		}
		maps[next], id = true, next
	}
	return progs, maps
}

// TestRingFullCountedAsLost fills a minimal ring buffer while nobody reads
// it: the kernel counts every failed reservation and Run reports them as a
// kernel_ringbuf Lost event and in Counters.
func TestRingFullCountedAsLost(t *testing.T) {
	requireKernel(t)
	cfg := testConfig()
	cfg.RingBufferBytes = 4096 // two open records fill it
	cfg.WakeupBytes = 4096
	s, err := Load(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	if err := os.WriteFile(model, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const opens = 20
	for range opens {
		helper(t, "/", "open", "-", model)
	}
	// Nothing read yet: the metrics see the ring buffer full of records.
	if used, size := s.RingbufUsage(); size != 4096 || used == 0 {
		t.Errorf("RingbufUsage before reading: %d of %d bytes; want some of 4096", used, size)
	}
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c.emit) }()
	lost := c.wait(t, "lost", func(e *event.Event) bool { return e.Kind == event.KindLost })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if lost.Lost.Source != "kernel_ringbuf" || lost.Lost.Count == 0 {
		t.Errorf("lost = %+v", lost.Lost)
	}
	got, lostTotal := 0, uint64(0)
	for _, e := range c.evs {
		switch {
		case e.Kind == event.KindOpen && e.File.RawPath == model:
			got++
		case e.Kind == event.KindLost && e.Lost.Source == "kernel_ringbuf":
			lostTotal += e.Lost.Count
		}
	}
	// Every open was either delivered or counted (other processes may have
	// lost events too, so the count is at least the shortfall).
	if got+int(lostTotal) < opens {
		t.Errorf("%d delivered + %d lost < %d opens", got, lostTotal, opens)
	}
	if n := s.Counters()["drops_kernel_ringbuf"]; n != lostTotal {
		t.Errorf("Counters drops_kernel_ringbuf = %d; Lost events said %d", n, lostTotal)
	}
	if n := s.Losses()["kernel_ringbuf"]; n != lostTotal {
		t.Errorf("Losses kernel_ringbuf = %d; Lost events said %d", n, lostTotal)
	}
}

// TestOpenRelativeUnderWatchedPrefix: a relative path is joined with its base
// directory in the kernel before the prefix lookup.
func TestOpenRelativeUnderWatchedPrefix(t *testing.T) {
	root := t.TempDir()
	cfg := testConfig()
	cfg.WatchPrefixes = append(cfg.WatchPrefixes, root+"/models/")
	_, c := startSensor(t, cfg)
	models := filepath.Join(root, "models", "llama")
	other := filepath.Join(root, "other")
	for _, d := range []string{models, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "config.json"), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cwdPid, _ := helper(t, models, "open", "-", "config.json")
	dirfdPid, _ := helper(t, "/", "openat", models, "config.json")
	parentPid, _ := helper(t, filepath.Join(root, "models"), "open", "-", "llama/config.json")
	otherPid, _ := helper(t, other, "open", "-", "config.json")
	want := filepath.Join(models, "config.json")
	for name, pid := range map[string]int{"cwd": cwdPid, "dirfd": dirfdPid, "subdir": parentPid} {
		raw := "config.json"
		if name == "subdir" {
			raw = "llama/config.json"
		}
		e := c.wait(t, name+" open", openBy(pid, raw))
		if e.File.Path != want || e.File.Result < 0 {
			t.Errorf("%s: path %q result %d; want %q", name, e.File.Path, e.File.Result, want)
		}
	}
	// Opened after the others: had it been reported, it would be there.
	if e := c.find(openBy(otherPid, "config.json")); e != nil {
		t.Errorf("open outside the watched prefix reported: %+v", e.File)
	}
}
