package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// Paths the kernel reports are found at once; a miss is not remembered; a
// removed cgroup stays resolvable for Grace, for events still queued.
func TestResolverLearnForget(t *testing.T) {
	clk := &fakeClock{time.Unix(100, 0)}
	r := NewResolver("", &ResolverOptions{Grace: 10 * time.Second, Now: clk.now})
	if err := r.CheckRoot(); err == nil {
		t.Error("CheckRoot without a mount: got nil")
	}
	if _, err := r.Path(42); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: got %v; want ErrNotFound", err)
	}
	if !r.Learn(42, "/kubepods.slice/x.scope") {
		t.Fatal("Learn reported a reset")
	}
	if p, err := r.Path(42); err != nil || p != "/kubepods.slice/x.scope" {
		t.Fatalf("after Learn: %q, %v", p, err)
	}
	r.Forget(42)
	clk.t = clk.t.Add(9 * time.Second)
	r.Learn(43, "/b")
	if _, err := r.Path(42); err != nil {
		t.Fatalf("within Grace: %v", err)
	}
	clk.t = clk.t.Add(2 * time.Second)
	r.Learn(44, "/c")
	if _, err := r.Path(42); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Grace: got %v; want ErrNotFound", err)
	}
	c := r.Counters()
	if c.Learned != 3 || c.Forgotten != 1 || c.Misses != 2 || c.Entries != 2 || c.Walks != 0 {
		t.Errorf("counters %+v", c)
	}
	r.Forget(99) // unknown: nothing to expire later
	var ids []uint64
	r.Range(func(id uint64) { ids = append(ids, id) })
	if len(ids) != 2 {
		t.Errorf("Range gave %v; want 43 and 44", ids)
	}
}

// A full index starts over rather than refusing new cgroups: only cgroups
// whose removal was lost stay forever, and they must not crowd out new ones.
func TestResolverBounded(t *testing.T) {
	r := NewResolver("", &ResolverOptions{MaxEntries: 2})
	r.Learn(7, "/x")
	if !r.Learn(8, "/y") {
		t.Fatal("Learn within the bound reported a reset")
	}
	if !r.Learn(8, "/y") {
		t.Fatal("Learning a known cgroup again reported a reset")
	}
	if r.Learn(9, "/z") {
		t.Fatal("Learn beyond MaxEntries did not report the reset")
	}
	if p, err := r.Path(9); err != nil || p != "/z" {
		t.Errorf("the id learned at the reset: %q, %v", p, err)
	}
	if c := r.Counters(); c.Resets != 1 || c.Entries != 1 {
		t.Errorf("counters %+v; want 1 reset, 1 entry", c)
	}
}

// A plain directory tree stands in for the hierarchy (RootID is its root's
// inode): without kernfs there are no lookups by handle, so a miss walks,
// at most once per MinRescan.
func TestResolverWalkStandIn(t *testing.T) {
	root := t.TempDir()
	a := filepath.Join(root, "kubepods.slice", "pod")
	if err := os.MkdirAll(a, 0o755); err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{time.Unix(100, 0)}
	r := NewResolver(root, &ResolverOptions{MinRescan: time.Second, RootID: ino(t, root), Now: clk.now})
	if err := r.Walk(); err != nil {
		t.Fatal(err)
	}
	if p, err := r.Path(ino(t, a)); err != nil || p != "/kubepods.slice/pod" {
		t.Fatalf("Path = %q, %v", p, err)
	}
	if p, err := r.Path(ino(t, root)); err != nil || p != "/" {
		t.Fatalf("root: Path = %q, %v", p, err)
	}
	b := filepath.Join(root, "late")
	if err := os.Mkdir(b, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Path(ino(t, b)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("within MinRescan: got %v; want ErrNotFound", err)
	}
	clk.t = clk.t.Add(2 * time.Second)
	if p, err := r.Path(ino(t, b)); err != nil || p != "/late" {
		t.Fatalf("after MinRescan: Path = %q, %v", p, err)
	}
	if c := r.Counters(); c.Walks != 2 || c.Misses != 1 || c.Handles != 0 {
		t.Errorf("counters %+v; want 2 walks, 1 miss, no handle lookups", c)
	}
	if err := r.HandleErr(); err == nil || !strings.Contains(err.Error(), "not a cgroup2 mount") {
		t.Errorf("HandleErr = %v; want not a cgroup2 mount", err)
	}
}

func TestResolverSubtreeIsNotUsed(t *testing.T) {
	root := t.TempDir()
	r := NewResolver(root, nil)
	if err := r.CheckRoot(); err == nil || !strings.Contains(err.Error(), "sub-tree") {
		t.Errorf("CheckRoot = %v; want a sub-tree error", err)
	}
	if err := r.Walk(); err == nil {
		t.Error("Walk of a sub-tree: got nil")
	}
	if _, err := r.Path(ino(t, root)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Path under a sub-tree mount: got %v; want ErrNotFound", err)
	}
	r = NewResolver(filepath.Join(root, "none"), nil)
	if err := r.CheckRoot(); err == nil {
		t.Error("CheckRoot of a missing mount: got nil")
	}
}

// v2Root returns the mount point of the real cgroup v2 hierarchy's root.
func v2Root(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
	for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err == nil && ino(t, root) == 1 {
			return root
		}
	}
	t.Skip("no cgroup v2 hierarchy root mounted at /sys/fs/cgroup{,/unified}")
	return ""
}

// On the real hierarchy one walk finds what exists, and a cgroup made
// later is found by asking the kernel for its id, without a walk; a
// removed one is not found.
func TestResolverRealCgroup(t *testing.T) {
	root := v2Root(t)
	name := fmt.Sprintf("kestrel-test-resolver-%d", os.Getpid())
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.Remove(filepath.Join(dir, "late"))
		_ = os.Remove(filepath.Join(dir, "gone"))
		_ = os.Remove(dir)
	})
	r := NewResolver(root, nil)
	if err := r.CheckRoot(); err != nil {
		t.Fatal(err)
	}
	if err := r.Walk(); err != nil {
		t.Fatal(err)
	}
	if p, err := r.Path(ino(t, dir)); err != nil || p != "/"+name {
		t.Fatalf("Path = %q, %v; want /%s", p, err, name)
	}
	late := filepath.Join(dir, "late")
	if err := os.Mkdir(late, 0o755); err != nil {
		t.Fatal(err)
	}
	lateID := ino(t, late)
	if p, err := r.Path(lateID); err != nil || p != "/"+name+"/late" {
		t.Fatalf("made after the walk: Path = %q, %v", p, err)
	}
	gone := filepath.Join(dir, "gone")
	if err := os.Mkdir(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	goneID := ino(t, gone)
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(late); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Path(goneID); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed cgroup: got %v; want ErrNotFound", err)
	}
	// Three lookups by handle: the root's, to see that the kernel allows
	// them, and the two misses.
	if c := r.Counters(); c.Walks != 1 || c.Handles != 3 {
		t.Errorf("counters %+v; want 1 walk and 3 lookups by handle", c)
	}
	if err := r.HandleErr(); err != nil {
		t.Errorf("HandleErr = %v", err)
	}
}

// Without CAP_DAC_READ_SEARCH the kernel refuses lookups by handle: the
// refusal is said at CheckRoot time and a miss walks the hierarchy instead.
func TestResolverHandleRefused(t *testing.T) {
	root := v2Root(t)
	dir := filepath.Join(root, fmt.Sprintf("kestrel-test-refused-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	// Capabilities are per thread: drop the effective one on this thread
	// only, and raise it again from the permitted set before unlocking.
	runtime.LockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	saved := data
	data[0].Effective &^= 1 << unix.CAP_DAC_READ_SEARCH
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(root, nil)
	herr := r.HandleErr()
	p, perr := r.Path(ino(t, dir))
	if err := unix.Capset(&hdr, &saved[0]); err == nil {
		runtime.UnlockOSThread()
	}
	if herr == nil || !errors.Is(herr, unix.EPERM) {
		t.Errorf("HandleErr without CAP_DAC_READ_SEARCH = %v; want EPERM", herr)
	}
	if perr != nil || p != "/"+filepath.Base(dir) {
		t.Errorf("Path = %q, %v; want the walk to find it", p, perr)
	}
	if c := r.Counters(); c.Walks != 1 {
		t.Errorf("counters %+v; want 1 walk", c)
	}
}
