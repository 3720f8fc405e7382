package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// runIdentHelper opens a file by another name than its own in the helper
// child and prints the result. args[0] names the way in, args[1] is the
// file (or a directory to work in).
func runIdentHelper(args []string) int {
	what, arg := args[0], args[1]
	var err error
	show := func(fd int, e error) {
		fmt.Println(fd, e)
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	switch what {
	case "read": // open(arg) read-only, as given
		show(unix.Open(arg, unix.O_RDONLY|unix.O_CLOEXEC, 0))
		return 0
	case "read-times": // "N:ms:path": open and close path N times, wait ms, open it once more
		n, rest, _ := strings.Cut(arg, ":")
		ms, p, _ := strings.Cut(rest, ":")
		times, _ := strconv.Atoi(n)
		pause, _ := strconv.Atoi(ms)
		for i := 0; i <= times; i++ {
			if i == times {
				time.Sleep(time.Duration(pause) * time.Millisecond) // outlive the repeat window
			}
			fd, e := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if e != nil {
				fmt.Println(e)
				return 1
			}
			unix.Close(fd)
		}
		fmt.Println("ok")
		return 0
	case "bind": // bind-mount arg onto a new file in a private mount namespace and open that
		runtime.LockOSThread()
		if err = unix.Unshare(unix.CLONE_NEWNS); err == nil {
			err = unix.Mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
		}
		target := filepath.Join(os.TempDir(), fmt.Sprintf("kestrel-bind-%d", os.Getpid()))
		if err == nil {
			err = os.WriteFile(target, nil, 0o600)
		}
		if err == nil {
			defer os.Remove(target)
			err = unix.Mount(arg, target, "", unix.MS_BIND, "")
		}
		if err != nil {
			fmt.Println(-1, err)
			return 0
		}
		show(unix.Open(target, unix.O_RDONLY|unix.O_CLOEXEC, 0))
		unix.Unmount(target, unix.MNT_DETACH)
		return 0
	case "foreign-ns": // open arg (a link to another's uts ns) after leaving that uts namespace
		runtime.LockOSThread()
		if err = unix.Unshare(unix.CLONE_NEWUTS); err != nil {
			fmt.Println(-1, err)
			return 0
		}
		show(unix.Open(arg, unix.O_RDONLY|unix.O_CLOEXEC, 0))
		return 0
	case "chroot": // chroot(arg), then open /etc/shadow (absent there)
		runtime.LockOSThread()
		if err = unix.Chroot(arg); err != nil {
			fmt.Println(-1, err)
			return 0
		}
		show(unix.Open("/etc/shadow", unix.O_RDONLY|unix.O_CLOEXEC, 0))
		return 0
	case "handle": // name_to_handle_at(arg), then open_by_handle_at
		h, mountID, err := unix.NameToHandleAt(unix.AT_FDCWD, arg, 0)
		if err != nil {
			fmt.Println(-1, err)
			return 0
		}
		_ = mountID
		mfd, err := unix.Open(filepath.Dir(arg), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			fmt.Println(-1, err)
			return 0
		}
		show(unix.OpenByHandleAt(mfd, h, unix.O_RDONLY|unix.O_CLOEXEC))
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown identity helper", what)
	return 2
}

// statID returns the FileID of p.
func statID(t *testing.T, p string) FileID {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return FileID{Dev: st.Dev, Inode: st.Ino}
}

// openOf matches the open events of pid.
func openOf(pid int) func(*event.Event) bool {
	return func(e *event.Event) bool { return e.Kind == event.KindOpen && e.Process.PID == uint32(pid) }
}

// TestOpenByIdentity: a successful open is reported by what it opened,
// whatever name reached it, with the raw name kept as evidence.
func TestOpenByIdentity(t *testing.T) {
	s, c := startSensor(t, testConfig())
	dir := t.TempDir()

	t.Run("hard link to a model file", func(t *testing.T) {
		weights := filepath.Join(dir, "blob")
		if err := os.WriteFile(weights, []byte("weights"), 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, "notes.txt")
		if err := os.Link(weights, link); err != nil {
			t.Fatal(err)
		}
		// Not a model yet: nothing about "notes.txt" is watched.
		pid, out := helper(t, "/", "ident", "read", link)
		marker, _ := helper(t, "/", "open", "-", "/etc/shadow")
		c.wait(t, "marker", openOf(marker))
		if e := c.find(openOf(pid)); e != nil {
			t.Fatalf("unknown file reported: %+v (%s)", e.File, out)
		}
		id := statID(t, weights)
		if err := s.SetModelFiles([]FileID{id}, nil); err != nil {
			t.Fatal(err)
		}
		pid, _ = helper(t, "/", "ident", "read", link)
		f := c.wait(t, "model open", openOf(pid)).File
		if f.Match != event.MatchModel || f.RawPath != link || f.Path != link || f.Inode != id.Inode || f.Dev != id.Dev ||
			f.Type != event.FileTypeRegular {
			t.Errorf("got %+v; want a model match on inode %d", f, id.Inode)
		}
		if got := s.Counters()["model_identity_files"]; got != 1 {
			t.Errorf("model_identity_files = %d", got)
		}
		// Removed from the set: no longer reported.
		if err := s.SetModelFiles(nil, []FileID{id}); err != nil {
			t.Fatal(err)
		}
		pid, _ = helper(t, "/", "ident", "read", link)
		marker, _ = helper(t, "/", "open", "-", "/etc/shadow")
		c.wait(t, "marker", openOf(marker))
		if e := c.find(openOf(pid)); e != nil {
			t.Errorf("removed model file still reported: %+v", e.File)
		}
	})

	t.Run("symlink to a kernel knob", func(t *testing.T) {
		link := filepath.Join(dir, "cp")
		if err := os.Symlink("/proc/sys/kernel/core_pattern", link); err != nil {
			t.Fatal(err)
		}
		pid, _ := helper(t, "/", "ident", "read", link)
		f := c.wait(t, "knob open", openOf(pid)).File
		if f.Match != event.MatchKnob || f.Knob != event.KnobCorePattern || f.RawPath != link ||
			f.Path != "/proc/sys/kernel/core_pattern" {
			t.Errorf("got %+v; want core_pattern by identity", f)
		}
	})

	t.Run("dot-dot and double slashes to a knob", func(t *testing.T) {
		raw := "/proc//sys/./kernel/../kernel/core_pipe_limit"
		pid, _ := helper(t, "/", "ident", "read", raw)
		f := c.wait(t, "knob open", openOf(pid)).File
		if f.Knob != event.KnobCorePipeLimit || f.Path != "/proc/sys/kernel/core_pipe_limit" {
			t.Errorf("got %+v", f)
		}
	})

	t.Run("knob bind-mounted onto another path", func(t *testing.T) {
		pid, out := helper(t, "/", "ident", "bind", "/proc/sys/kernel/core_pattern")
		if strings.HasPrefix(out, "-1") {
			t.Fatalf("helper: %s", out)
		}
		f := c.wait(t, "knob open", openOf(pid)).File
		if f.Match != event.MatchKnob || f.Knob != event.KnobCorePattern || !strings.Contains(f.RawPath, "kestrel-bind-") {
			t.Errorf("got %+v; want core_pattern by identity under its bind mount", f)
		}
	})

	t.Run("another process's mem through a symlink", func(t *testing.T) {
		link := filepath.Join(dir, "m")
		if err := os.Symlink(fmt.Sprintf("/proc/%d/mem", os.Getpid()), link); err != nil {
			t.Fatal(err)
		}
		pid, _ := helper(t, "/", "ident", "read", link)
		f := c.wait(t, "proc mem open", openOf(pid)).File
		if f.Match != event.MatchKnob || f.Knob != event.KnobProcMem || f.Result < 0 || f.TargetPID != uint32(os.Getpid()) {
			t.Errorf("got %+v; want proc_pid_mem of %d by identity", f, os.Getpid())
		}
		// Its own mem is routine: not reported.
		self := filepath.Join(dir, "selfmem")
		if err := os.Symlink("/proc/self/mem", self); err != nil {
			t.Fatal(err)
		}
		pid, _ = helper(t, "/", "ident", "read", self)
		marker, _ := helper(t, "/", "open", "-", "/etc/shadow")
		c.wait(t, "marker", openOf(marker))
		if e := c.find(openOf(pid)); e != nil {
			t.Errorf("own /proc/self/mem reported: %+v", e.File)
		}
	})

	t.Run("namespace file of a namespace the caller left", func(t *testing.T) {
		link := filepath.Join(dir, "uts")
		if err := os.Symlink("/proc/2/ns/uts", link); err != nil {
			t.Fatal(err)
		}
		pid, out := helper(t, "/", "ident", "foreign-ns", link)
		if strings.HasPrefix(out, "-1") {
			t.Fatalf("helper: %s", out)
		}
		f := c.wait(t, "nsfs open", openOf(pid)).File
		if f.Match != event.MatchNamespace || !strings.HasPrefix(f.Path, "uts:[") {
			t.Errorf("got %+v; want a foreign uts namespace", f)
		}
	})

	t.Run("block device node made under another name", func(t *testing.T) {
		var st unix.Stat_t
		var rdev uint64
		devs, _ := filepath.Glob("/dev/*")
		for _, d := range devs {
			if unix.Stat(d, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
				rdev = st.Rdev
				break
			}
		}
		if rdev == 0 {
			t.Skip("no block device node in /dev to copy")
		}
		node := filepath.Join(dir, "cache.db")
		if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(rdev)); err != nil {
			t.Fatal(err)
		}
		pid, _ := helper(t, "/", "ident", "read", node)
		f := c.wait(t, "device open", openOf(pid)).File
		if f.Match != event.MatchDevice || f.Type != event.FileTypeBlock || f.Rdev != rdev || f.Path != node {
			t.Errorf("got %+v; want block device %#x", f, rdev)
		}
	})

	t.Run("path deeper than the walk is marked", func(t *testing.T) {
		deep := dir
		for i := 0; i < 40; i++ {
			deep = filepath.Join(deep, "d")
		}
		if err := os.MkdirAll(deep, 0o700); err != nil {
			t.Fatal(err)
		}
		model := filepath.Join(deep, "w.safetensors")
		if err := os.WriteFile(model, []byte("w"), 0o600); err != nil {
			t.Fatal(err)
		}
		pid, _ := helper(t, deep, "ident", "read", "w.safetensors")
		f := c.wait(t, "deep open", openOf(pid)).File
		if f.Truncated&event.TruncPath == 0 || !strings.HasPrefix(f.Path, ".../") || !strings.HasSuffix(f.Path, "/d/d/w.safetensors") {
			t.Errorf("got path %q truncated %v; want a marked tail of %s", f.Path, f.Truncated.Names(), model)
		}
	})

	t.Run("failed absolute open in a chroot joins the root", func(t *testing.T) {
		root := filepath.Join(dir, "jail")
		if err := os.MkdirAll(root, 0o700); err != nil {
			t.Fatal(err)
		}
		pid, out := helper(t, "/", "ident", "chroot", root)
		if !strings.Contains(out, "no such file") {
			t.Fatalf("helper: %s", out)
		}
		f := c.wait(t, "chroot open", openOf(pid)).File
		if f.Path != root+"/etc/shadow" || f.RawPath != "/etc/shadow" || f.PathSource != event.PathKernel {
			t.Errorf("got %+v; want %s/etc/shadow", f, root)
		}
	})

	t.Run("open_by_handle_at", func(t *testing.T) {
		secret := filepath.Join(dir, "secret")
		if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
			t.Fatal(err)
		}
		pid, out := helper(t, "/", "ident", "handle", secret)
		if strings.HasPrefix(out, "-1") {
			t.Fatalf("helper: %s", out)
		}
		f := c.wait(t, "open_by_handle_at", openOf(pid)).File
		if f.Syscall != "open_by_handle_at" || !f.Match.Has(event.MatchCall) || f.Path != secret || f.RawPath != "" || f.Result < 0 {
			t.Errorf("got %+v; want open_by_handle_at of %s", f, secret)
		}
		sys := c.wait(t, "name_to_handle_at", func(e *event.Event) bool {
			return e.Kind == event.KindSyscall && e.Process.PID == uint32(pid) && e.Sys.Name == "name_to_handle_at"
		}).Sys
		if sys.Path != secret || sys.Ret != 0 {
			t.Errorf("name_to_handle_at = %+v", sys)
		}
	})
}

// TestOpenRepeatsCounted: repeats of a reported open by the same process
// image are counted in the kernel, and the next report after the window
// says how many it stands for.
func TestOpenRepeatsCounted(t *testing.T) {
	cfg := testConfig()
	cfg.OpenRepeatWindow = config.Duration(300 * time.Millisecond)
	s, c := startSensor(t, cfg)
	model := filepath.Join(t.TempDir(), "w.safetensors")
	if err := os.WriteFile(model, []byte("w"), 0o600); err != nil {
		t.Fatal(err)
	}
	drops0 := s.Counters()["drops_open_repeats"]
	pid, out := helper(t, "/", "ident", "read-times", "50:400:"+model)
	if out != "ok" {
		t.Fatalf("helper: %s", out)
	}
	c.wait(t, "exit", func(e *event.Event) bool { return e.Kind == event.KindExit && e.Process.PID == uint32(pid) })
	var reports []*event.File
	for _, e := range c.all() {
		if openOf(pid)(e) {
			reports = append(reports, e.File)
		}
	}
	// 51 opens: the first is reported; the 49 after it within the window
	// are counted; the last, after the window, is reported with the count.
	// (A machine slow enough to stretch 50 opens past the window reports
	// one more in between; the counts still add up.)
	total := uint32(0)
	for _, f := range reports {
		total += 1 + f.Repeats
	}
	if len(reports) < 2 || len(reports) > 3 || reports[0].Repeats != 0 || total != 51 {
		for _, f := range reports {
			t.Logf("report: repeats %d", f.Repeats)
		}
		t.Fatalf("%d reports standing for %d opens; want 2 standing for 51", len(reports), total)
	}
	deadline := time.Now().Add(5 * time.Second)
	want := uint64(51 - len(reports))
	for s.Counters()["drops_open_repeats"]-drops0 < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // the counters are read on the poll tick
	}
	// At least: the counter is the host's, and other processes repeat too.
	if got := s.Counters()["drops_open_repeats"] - drops0; got < want {
		t.Errorf("drops_open_repeats grew by %d; want %d or more", got, want)
	}
}

// TestModelBitAndDev: device numbers survive the round trip to the
// kernel's encoding, and neighbouring inodes do not share a bit.
func TestModelBitAndDev(t *testing.T) {
	if modelBit(12345) == modelBit(12346) {
		t.Errorf("modelBit(12345) = modelBit(12346) = %d", modelBit(12345))
	}
	for _, d := range []uint64{0x801, unix.Mkdev(254, 0), unix.Mkdev(259, 1<<19)} {
		k, ok := userDevToKernel(d)
		if !ok || kernelDevToUser(k) != d {
			t.Errorf("dev %#x -> kernel %#x (ok %v) -> %#x", d, k, ok, kernelDevToUser(k))
		}
	}
	if _, ok := userDevToKernel(unix.Mkdev(1<<13, 0)); ok {
		t.Error("a 13-bit major fits a 12-bit field")
	}
}
