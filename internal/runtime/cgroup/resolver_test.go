package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// The resolver only needs directory inodes, so a plain directory tree
// stands in for the cgroup hierarchy here; TestResolverRealCgroup uses the
// real one.
func TestResolverWalkAndRescan(t *testing.T) {
	root := t.TempDir()
	a := filepath.Join(root, "kubepods.slice", "pod")
	if err := os.MkdirAll(a, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(100, 0)
	r := NewResolver(root, &ResolverOptions{MinRescan: time.Second, Now: func() time.Time { return now }})
	if p, err := r.Path(ino(t, a)); err != nil || p != "/kubepods.slice/pod" {
		t.Fatalf("Path = %q, %v", p, err)
	}
	if p, err := r.Path(ino(t, root)); err != nil || p != "/" {
		t.Fatalf("root: Path = %q, %v", p, err)
	}
	// A cgroup created after the walk is found by the next walk, but not
	// before MinRescan has passed.
	b := filepath.Join(root, "late")
	if err := os.Mkdir(b, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Path(ino(t, b)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("within MinRescan: got %v; want ErrNotFound", err)
	}
	now = now.Add(2 * time.Second)
	if p, err := r.Path(ino(t, b)); err != nil || p != "/late" {
		t.Fatalf("after MinRescan: Path = %q, %v", p, err)
	}
	walks, misses, _ := r.Counters()
	if walks != 2 || misses != 1 {
		t.Errorf("walks %d misses %d; want 2, 1", walks, misses)
	}
}

func TestResolverBounded(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a", "b", "c", "d"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := NewResolver(root, &ResolverOptions{MaxEntries: 2})
	_, _ = r.Path(1)
	if _, _, tr := r.Counters(); tr != 1 {
		t.Errorf("truncated %d; want 1", tr)
	}
	r.Learn(7, "/x")
	r.Learn(8, "/y")
	if _, _, tr := r.Counters(); tr < 2 {
		t.Errorf("Learn beyond MaxEntries not counted")
	}
}

func TestResolverMissingRoot(t *testing.T) {
	r := NewResolver(filepath.Join(t.TempDir(), "none"), nil)
	if _, err := r.Path(1); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("got %v; want a walk error", err)
	}
}

// TestResolverRealCgroup creates a cgroup under the v2 hierarchy and
// resolves the id the kernel gives it.
func TestResolverRealCgroup(t *testing.T) {
	root := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		root = "/sys/fs/cgroup"
		if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
			t.Skip("no cgroup v2 hierarchy")
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a cgroup")
	}
	name := "kestrel-test-resolver-" + filepath.Base(t.TempDir())
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	r := NewResolver(root, nil)
	if p, err := r.Path(ino(t, dir)); err != nil || p != "/"+name {
		t.Fatalf("Path = %q, %v; want /%s", p, err, name)
	}
}
