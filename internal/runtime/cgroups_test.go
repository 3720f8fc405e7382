package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/runtime/enrich"
)

func TestDecodeCgroup(t *testing.T) {
	for _, tt := range []struct {
		name string
		b    []byte
		want cgroupRec
		err  string
	}{
		{"mkdir", buildCgroup(testHdr, 9, cgroupOpMkdir, 0, "/kubepods.slice/a.scope"), cgroupRec{id: 9, op: cgroupOpMkdir, path: "/kubepods.slice/a.scope"}, ""},
		{"rmdir", buildCgroup(testHdr, 9, cgroupOpRmdir, 0, ""), cgroupRec{id: 9, op: cgroupOpRmdir}, ""},
		{"task root", buildCgroup(testHdr, 1, cgroupOpTask, 0, "/"), cgroupRec{id: 1, op: cgroupOpTask, path: "/"}, ""},
		{"truncated", buildCgroup(testHdr, 9, cgroupOpAttach, cgroupFTrunc, "/a/b"), cgroupRec{id: 9, op: cgroupOpAttach, trunc: true, path: "/a/b"}, ""},
		{"relative", buildCgroup(testHdr, 9, cgroupOpMkdir, 0, "../x"), cgroupRec{}, "not absolute"},
		{"empty mkdir", buildCgroup(testHdr, 9, cgroupOpMkdir, 0, ""), cgroupRec{}, "not absolute"},
		{"op", buildCgroup(testHdr, 9, 7, 0, "/x"), cgroupRec{}, "op 7"},
		{"id 0", buildCgroup(testHdr, 0, cgroupOpMkdir, 0, "/x"), cgroupRec{}, "id 0"},
		{"short", buildCgroup(testHdr, 9, cgroupOpMkdir, 0, "/x")[:cgroupPath], cgroupRec{}, "at least"},
		{"size", func() []byte { b := buildCgroup(testHdr, 9, cgroupOpMkdir, 0, "/x"); return append(b, 0) }(), cgroupRec{}, "header says"},
		{"path len", func() []byte {
			b := buildCgroup(testHdr, 9, cgroupOpMkdir, 0, "/x")
			le.PutUint16(b[cgroupPathLen:], 5)
			return b
		}(), cgroupRec{}, "does not match"},
		{"no NUL", func() []byte {
			b := buildCgroup(testHdr, 9, cgroupOpMkdir, 0, "/x")
			b[len(b)-1] = 'y'
			return b
		}(), cgroupRec{}, "NUL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeCgroup(tt.b)
			if tt.err != "" {
				if err == nil || !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %+v, %v; want a malformed-record error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// The reader hands cgroup records to the index and emits no event for
// them; a truncated path is counted and not learned; a malformed record is
// a decode error like any other.
func TestHandleCgroupRecords(t *testing.T) {
	idx := newRecIndex()
	s := &Sensor{log: slog.New(slog.DiscardHandler), cg: cgroupState{index: idx}}
	var emitted int
	emit := func(*event.Event) { emitted++ }
	s.handle(buildCgroup(testHdr, 9, cgroupOpMkdir, 0, "/kubepods.slice/a.scope"), emit)
	s.handle(buildCgroup(testHdr, 10, cgroupOpTask, cgroupFTrunc, "/deep/er"), emit)
	s.handle(buildCgroup(testHdr, 9, cgroupOpRmdir, 0, ""), emit)
	s.handle(buildCgroup(testHdr, 11, 9, 0, "/x"), emit)
	idx.full = true
	s.handle(buildCgroup(testHdr, 12, cgroupOpAttach, 0, "/b"), emit)
	if emitted != 0 {
		t.Errorf("%d events emitted for cgroup records", emitted)
	}
	want := []string{"learn 9 /kubepods.slice/a.scope", "forget 9", "learn 12 /b"}
	if fmt.Sprint(idx.ops) != fmt.Sprint(want) {
		t.Errorf("index saw %q; want %q", idx.ops, want)
	}
	c := s.Counters()
	if c["cgroup_records_mkdir"] != 1 || c["cgroup_records_task"] != 1 || c["cgroup_records_rmdir"] != 1 ||
		c["cgroup_records_attach"] != 1 || c["cgroup_paths_truncated"] != 1 || c["decode_errors"] != 1 || c["cgroup_known_resets"] != 1 {
		t.Errorf("counters %v", c)
	}
}

func FuzzDecodeCgroup(f *testing.F) {
	f.Add(buildCgroup(testHdr, 9, cgroupOpMkdir, 0, "/kubepods.slice/a.scope"))
	f.Add(buildCgroup(testHdr, 9, cgroupOpRmdir, 0, ""))
	f.Add(buildCgroup(testHdr, 9, cgroupOpTask, cgroupFTrunc, "/"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeCgroup(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v is not a malformed-record error", err)
			}
			return
		}
		if r.id == 0 || (r.op != cgroupOpRmdir && (r.path == "" || r.path[0] != '/')) {
			t.Fatalf("accepted %+v", r)
		}
	})
}

// recIndex is a CgroupIndex that records what the sensor tells it.
type recIndex struct {
	mu      sync.Mutex
	paths   map[uint64]string
	ops     []string
	full    bool // Learn reports a reset
	changed chan struct{}
}

func newRecIndex() *recIndex {
	return &recIndex{paths: map[uint64]string{}, changed: make(chan struct{}, 1)}
}

func (x *recIndex) Learn(id uint64, path string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.paths[id] = path
	x.ops = append(x.ops, fmt.Sprintf("learn %d %s", id, path))
	x.signal()
	return !x.full
}

func (x *recIndex) Forget(id uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.ops = append(x.ops, fmt.Sprintf("forget %d", id))
	x.signal()
}

func (x *recIndex) Range(fn func(uint64)) {
	x.mu.Lock()
	ids := make([]uint64, 0, len(x.paths))
	for id := range x.paths {
		ids = append(ids, id)
	}
	x.mu.Unlock()
	for _, id := range ids {
		fn(id)
	}
}

func (x *recIndex) signal() {
	select {
	case x.changed <- struct{}{}:
	default:
	}
}

func (x *recIndex) path(id uint64) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p, ok := x.paths[id]
	return p, ok
}

func (x *recIndex) count(op string) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for _, o := range x.ops {
		if strings.HasPrefix(o, op) {
			n++
		}
	}
	return n
}

// saw reports whether any operation mentioned s.
func (x *recIndex) saw(s string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, o := range x.ops {
		if strings.Contains(o, s) {
			return true
		}
	}
	return false
}

// waitFor waits until cond holds, woken by every change to the index.
func (x *recIndex) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for !cond() {
		select {
		case <-x.changed:
		case <-timeout:
			x.mu.Lock()
			defer x.mu.Unlock()
			t.Fatalf("%s: not within 5s; index saw %q", what, x.ops)
		}
	}
}

// v2Root returns the mount point of the cgroup v2 hierarchy's root.
func v2Root(t *testing.T) string {
	t.Helper()
	root, err := cgroupV2Root("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no cgroup v2 hierarchy: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(root, &st); err != nil || st.Ino != 1 {
		t.Skipf("cgroup2 at %s is not the hierarchy's root", root)
	}
	return root
}

func mkCgroup(t *testing.T, dir string) uint64 {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rmCgroup(dir) })
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// rmCgroup removes a cgroup once its processes are gone (they are reaped
// before the cleanup runs, but the kernel empties a cgroup asynchronously).
func rmCgroup(dir string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCgroupPathsFromTheKernel loads the sensor with an index and checks
// every way a cgroup's path reaches it: created (even by a process in its
// own cgroup namespace: the path is still from the hierarchy's root),
// existing before the sensor and first seen at a fork into it
// (clone3 CLONE_INTO_CGROUP) or at an attach, removed; v1 hierarchies
// ignored; and that the path of a cgroup arrives before the first event
// of a process in it.
func TestCgroupPathsFromTheKernel(t *testing.T) {
	requireKernel(t)
	root := v2Root(t)
	base := filepath.Join(root, fmt.Sprintf("kestrel-rt-%d", os.Getpid()))
	// Made before the sensor: only the kernel's task records can name them.
	mkCgroup(t, base)
	early := filepath.Join(base, "early")
	earlyID := mkCgroup(t, early)
	moved := filepath.Join(base, "moved")
	movedID := mkCgroup(t, moved)

	idx := newRecIndex()
	s, err := Load(testConfig(), &Options{Cgroups: idx})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var mu sync.Mutex
	pathAtExec := map[uint32]string{} // pid → what the index held when its exec arrived
	var forks []*event.Event
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(e *event.Event) {
			mu.Lock()
			defer mu.Unlock()
			switch e.Kind {
			case event.KindExec:
				p, _ := idx.path(e.Process.CgroupID)
				pathAtExec[e.Process.PID] = p
			case event.KindFork:
				forks = append(forks, e)
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.Close()
	})

	// A cgroup created by a process inside a cgroup namespace rooted at
	// base: it sees the new cgroup as "/inner", the kernel reports it whole.
	inner := filepath.Join(base, "inner")
	out, err := exec.Command("sh", "-c", `echo $$ > "$0/cgroup.procs" && exec unshare -C mkdir "$1"`, base, inner).CombinedOutput()
	if err != nil {
		t.Fatalf("mkdir in a cgroup namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { rmCgroup(inner) })
	innerID := cgroupIno(t, inner)
	rel := strings.TrimPrefix(inner, root)
	idx.waitFor(t, "mkdir record", func() bool { p, _ := idx.path(innerID); return p == rel })

	// A v1 hierarchy's mkdir is not the v2 hierarchy's business: made
	// before the next v2 mkdir, its record would be in the index first.
	v1 := fmt.Sprintf("/sys/fs/cgroup/pids/kestrel-rt-v1-%d", os.Getpid())
	v1made := os.Mkdir(v1, 0o755) == nil
	if v1made {
		t.Cleanup(func() { os.Remove(v1) })
	}
	second := filepath.Join(base, "second")
	secondID := mkCgroup(t, second)
	idx.waitFor(t, "second mkdir record", func() bool { _, ok := idx.path(secondID); return ok })
	if v1made && idx.saw("kestrel-rt-v1-") {
		t.Error("a cgroup v1 mkdir reached the index")
	}

	// clone3(CLONE_INTO_CGROUP) into a cgroup made before the sensor: the
	// fork's child is in it, its path precedes the fork and the exec.
	fd, err := syscall.Open(early, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Run(); err != nil {
		t.Fatalf("run /bin/true in %s: %v", early, err)
	}
	pid := uint32(cmd.Process.Pid)
	earlyRel := strings.TrimPrefix(early, root)
	idx.waitFor(t, "task record of a cgroup made before the sensor", func() bool { p, _ := idx.path(earlyID); return p == earlyRel })
	waitCond(t, "exec of /bin/true", func() bool { mu.Lock(); defer mu.Unlock(); _, ok := pathAtExec[pid]; return ok })
	mu.Lock()
	if p := pathAtExec[pid]; p != earlyRel {
		t.Errorf("when the exec arrived the index held %q for its cgroup; want %q", p, earlyRel)
	}
	var fork *event.Event
	for _, f := range forks {
		if f.Process.PID == pid {
			fork = f
		}
	}
	mu.Unlock()
	if fork == nil || fork.Process.CgroupID != earlyID {
		t.Errorf("fork into %d: %+v; want the child's cgroup", earlyID, fork)
	}
	// Known now: a second process there costs no record.
	n := idx.count(fmt.Sprintf("learn %d ", earlyID))
	cmd = exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid = uint32(cmd.Process.Pid)
	waitCond(t, "second exec", func() bool { mu.Lock(); defer mu.Unlock(); _, ok := pathAtExec[pid]; return ok })
	if m := idx.count(fmt.Sprintf("learn %d ", earlyID)); m != n {
		t.Errorf("a known cgroup was sent again (%d records, then %d)", n, m)
	}

	// A process moved into a cgroup made before the sensor.
	if out, err := exec.Command("sh", "-c", `echo $$ > "$0/cgroup.procs"`, moved).CombinedOutput(); err != nil {
		t.Fatalf("move into %s: %v: %s", moved, err, out)
	}
	movedRel := strings.TrimPrefix(moved, root)
	idx.waitFor(t, "attach record", func() bool { p, _ := idx.path(movedID); return p == movedRel })

	// Removal.
	rmCgroup(second)
	idx.waitFor(t, "rmdir record", func() bool { return idx.count(fmt.Sprintf("forget %d", secondID)) == 1 })

	c := s.Counters()
	if c["cgroup_records_mkdir"] < 2 || c["cgroup_records_rmdir"] < 1 || c["cgroup_records_task"] < 1 || c["cgroup_records_attach"] < 1 {
		t.Errorf("counters %v", c)
	}
}

func cgroupIno(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// waitCond polls cond for what has no notification of its own.
func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAttributionAtEventTime joins the real pieces: the kernel's records
// feed the enricher's index (and nothing else does), and the exec of each of
// a burst of containers
// created at once (kubepods pod slices, containerd scopes, nothing of them
// existing when the sensor started) is attributed to its container when it
// is enriched, as the pipeline does it, in ring order.
func TestAttributionAtEventTime(t *testing.T) {
	requireKernel(t)
	root := v2Root(t)
	// Under a directory of this test's own: other tests share kubepods.slice.
	base := filepath.Join(root, fmt.Sprintf("kestrel-rt-%d", os.Getpid()))
	mkCgroup(t, base)
	cfg := config.DefaultContext()
	cfg.CRISocket = config.CRIOff
	// The enricher is given a sub-tree as its cgroup mount, as a pod with
	// only its own namespace's cgroup2 view has: no walk, no lookup by
	// id, paths from the kernel's records only.
	en, err := enrich.New(cfg, &enrich.Options{NoNetlink: true, CgroupRoot: base})
	if err != nil {
		t.Fatal(err)
	}
	if err := en.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	s, err := Load(testConfig(), &Options{Cgroups: en.Cgroups()})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	marker := filepath.Join(t.TempDir(), "kestrel-attrib-marker")
	if err := copyExe("/bin/true", marker); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	execs := map[string]*event.Event{} // argv[1] → enriched exec
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(e *event.Event) {
			en.Enrich(e)
			if e.Kind == event.KindExec && e.Process.Exe == marker && len(e.Process.Args) > 1 {
				mu.Lock()
				execs[e.Process.Args[1]] = e
				mu.Unlock()
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.Close()
	})

	const n = 10
	kube := filepath.Join(base, "kubepods.slice")
	mkCgroup(t, kube)
	type ctr struct{ id, uid, cg string }
	ctrs := make([]ctr, n)
	for i := range ctrs {
		b := make([]byte, 48)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		h := hex.EncodeToString(b)
		ctrs[i].id = h[:64]
		ctrs[i].uid = h[64:72] + "-" + h[72:76] + "-" + h[76:80] + "-" + h[80:84] + "-" + h[84:96]
		pod := filepath.Join(kube, "kubepods-besteffort-pod"+strings.ReplaceAll(ctrs[i].uid, "-", "_")+".slice")
		ctrs[i].cg = filepath.Join(pod, "cri-containerd-"+ctrs[i].id+".scope")
		t.Cleanup(func() { rmCgroup(ctrs[i].cg); rmCgroup(pod) })
	}
	var wg sync.WaitGroup
	gate := make(chan struct{})
	errs := make([]error, n)
	for i := range ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			out, err := exec.Command("sh", "-c", `mkdir -p "$0" && echo $$ > "$0/cgroup.procs" && exec "$1" "$2"`,
				ctrs[i].cg, marker, strconv.Itoa(i)).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("container %d: %v: %s", i, err, out)
			}
		}()
	}
	close(gate)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	waitCond(t, "the burst's execs", func() bool { mu.Lock(); defer mu.Unlock(); return len(execs) == n })
	mu.Lock()
	defer mu.Unlock()
	for i, c := range ctrs {
		e := execs[strconv.Itoa(i)]
		if ct := e.Container; ct == nil || ct.ID != c.id || ct.Runtime != "containerd" || ct.PodUID != c.uid {
			t.Errorf("container %d: exec attributed to %+v; want %s… pod %s", i, ct, c.id[:12], c.uid)
		}
	}
}

func copyExe(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}
