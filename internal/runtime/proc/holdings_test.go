package proc

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMaps(t *testing.T) {
	var got []Mapping
	if err := ParseMaps(fixture(t, "maps.server"), func(m Mapping) bool { got = append(got, m); return true }); err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{unix.Mkdev(0xfd, 1), 1835219, 0x55e3c1a00000, 0x55e3c1a28000, 0, "r--p", "/usr/bin/python3.11"},
		{unix.Mkdev(0xfd, 1), 1835219, 0x55e3c1a28000, 0x55e3c1c8f000, 0x28000, "r-xp", "/usr/bin/python3.11"},
		{unix.Mkdev(0x103, 2), 4194312, 0x7f3b40000000, 0x7f3b60000000, 0, "r--s", "/models/llama-3-8b-instruct/model-00001-of-00004.safetensors"},
		{unix.Mkdev(0x103, 2), 4194313, 0x7f3b60000000, 0x7f3b70000000, 0, "r--s", "/models/llama 3 (copy)/model.safetensors"},
		{unix.Mkdev(0, 0x1a), 77, 0x7f3b70000000, 0x7f3b70001000, 0, "r--s", "/dev/shm/weights (deleted)"},
		{unix.Mkdev(0xfd, 1), 1837001, 0x7f3b8a2c0000, 0x7f3b8a2e8000, 0, "r--p", "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{unix.Mkdev(0xfd, 1), 1837001, 0x7f3b8a2e8000, 0x7f3b8a47d000, 0x28000, "r-xp", "/usr/lib/x86_64-linux-gnu/libc.so.6"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d mappings; want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: got %+v; want %+v", i, got[i], want[i])
		}
	}
	n := 0
	if err := ParseMaps(fixture(t, "maps.server"), func(Mapping) bool { n++; return n < 2 }); err != nil || n != 2 {
		t.Errorf("stop after 2: %d calls, err %v", n, err)
	}
	for _, bad := range []string{"7f-7f r--p 0 fd:01\n", "7f-7f r--p 0 fd01 12 /x\n", "7f-7f r--p 0 fd:01 x /x\n",
		"7f-7e r--p 0 fd:01 12 /x\n", "7f r--p 0 fd:01 12 /x\n", "7f-80 r--p zz fd:01 12 /x\n"} {
		if err := ParseMaps([]byte(bad), func(Mapping) bool { return true }); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err %v; want ErrMalformed", bad, err)
		}
	}
}

func FuzzParseMaps(f *testing.F) {
	f.Add(fixture(f, "maps.server"))
	f.Add([]byte("0-1 r--p 0 0:0 1 \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ParseMaps(b, func(m Mapping) bool {
			if m.Inode == 0 || m.Path == "" {
				t.Fatalf("reported %+v", m)
			}
			return true
		})
	})
}

func TestHoldingsSelf(t *testing.T) {
	fs, err := NewFS("/proc")
	if err != nil {
		t.Skipf("no procfs: %v", err)
	}
	dir := t.TempDir()
	held := filepath.Join(dir, "held.safetensors")
	mapped := filepath.Join(dir, "mapped.safetensors")
	for _, p := range []string{held, mapped} {
		if err := os.WriteFile(p, make([]byte, 1<<16), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hf, err := os.Open(held)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	// The mapping outlives its descriptor, as safetensors' mmap does.
	mf, err := os.Open(mapped)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(mf.Fd()), 0, 1<<16, unix.PROT_READ, unix.MAP_SHARED)
	mf.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)

	got, err := fs.Holdings(uint32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	find := func(path string) *Held {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		var out *Held
		for i := range got {
			if got[i].Dev == st.Dev && got[i].Inode == st.Ino {
				if out != nil {
					t.Errorf("%s listed twice", path)
				}
				out = &got[i]
			}
		}
		if out == nil {
			t.Fatalf("%s (dev %d ino %d) not among the holdings: %+v", path, st.Dev, st.Ino, got)
		}
		return out
	}
	if h := find(held); h.FD != int32(hf.Fd()) || h.Size != 1<<16 || h.Path != held {
		t.Errorf("descriptor: got %+v; want fd %d, size %d, path %s", *h, hf.Fd(), 1<<16, held)
	}
	if h := find(mapped); h.FD != -1 || h.Size != 1<<16 || h.Path != mapped {
		t.Errorf("mapping: got %+v; want fd -1, size (extent) %d, path %s", *h, 1<<16, mapped)
	}
	if _, err := fs.Holdings(1 << 30); err == nil {
		t.Error("nonexistent pid: no error")
	}
}

func TestNamespacePIDsAndIdentity(t *testing.T) {
	fs, err := NewFS("/proc")
	if err != nil {
		t.Skipf("no procfs: %v", err)
	}
	if root, err := fs.CgroupV2Mount(); err == nil {
		fs.SetCgroupV2Root(root)
	}
	self := uint32(os.Getpid())
	p, err := fs.Process(self)
	if err != nil {
		t.Fatal(err)
	}
	id, err := fs.Identity(self)
	if err != nil || id.NS != p.NS || id.CgroupID != p.CgroupID {
		t.Errorf("identity %+v, %v; want ns %+v cgroup %d", id, err, p.NS, p.CgroupID)
	}
	m, err := fs.NamespacePIDs(p.NS.PID)
	if err != nil {
		t.Fatal(err)
	}
	// The test runs in the namespace of its procfs: its pid maps to itself.
	if m[self] != self {
		t.Errorf("own namespace: pid %d maps to %d", self, m[self])
	}

	t.Run("child pid namespace", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("creating a PID namespace needs CAP_SYS_ADMIN")
		}
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		if err := cmd.Start(); err != nil {
			t.Skipf("clone a PID namespace: %v", err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		child := uint32(cmd.Process.Pid)
		// A clone with CLONE_NEWPID is in its new namespace from birth.
		cid, err := fs.Identity(child)
		if err != nil || cid.NS.PID == 0 || cid.NS.PID == p.NS.PID {
			t.Fatalf("child identity %+v, %v; want a PID namespace of its own", cid, err)
		}
		ns := cid.NS.PID
		m, err := fs.NamespacePIDs(ns)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 1 || m[1] != child {
			t.Errorf("namespace %d: %v; want {1: %d}", ns, m, child)
		}
		if cp, err := fs.Process(child); err != nil || cp.NSPID != 1 {
			t.Errorf("child NSPID: %+v, %v; want 1", cp, err)
		}
	})
}
