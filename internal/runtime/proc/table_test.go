package proc

import (
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

func snap(pid, ppid uint32, exe string) *event.Process {
	return &event.Process{PID: pid, TID: pid, PPID: ppid, ForkParent: ppid, Exe: exe}
}

func TestTableLRUEviction(t *testing.T) {
	tb := NewTable(&TableOptions{MaxEntries: 3})
	for pid := uint32(1); pid <= 3; pid++ {
		tb.Put(snap(pid, 0, "/bin/x"))
	}
	tb.Get(1) // 2 is now the least recently used
	tb.Put(snap(4, 1, "/bin/y"))
	if tb.Len() != 3 {
		t.Fatalf("len %d; want 3", tb.Len())
	}
	if tb.Peek(2) != nil {
		t.Error("pid 2 survived; want it evicted as least recently used")
	}
	for _, pid := range []uint32{1, 3, 4} {
		if tb.Peek(pid) == nil {
			t.Errorf("pid %d evicted", pid)
		}
	}
	if tb.Evicted() != 1 {
		t.Errorf("evicted %d; want 1", tb.Evicted())
	}
	// Replacing a pid is not an eviction.
	tb.Put(snap(4, 1, "/bin/z"))
	if tb.Evicted() != 1 || tb.Len() != 3 || tb.Peek(4).Snap.Exe != "/bin/z" {
		t.Errorf("replace: evicted %d len %d", tb.Evicted(), tb.Len())
	}
}

func TestTableRetentionAndLineage(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tb := NewTable(&TableOptions{MaxEntries: 100, Retention: 5 * time.Minute})
	tb.Put(&event.Process{PID: 1, TID: 1, Comm: "init"})
	p := snap(100, 1, "/usr/bin/python3")
	p.Ancestors = tb.Lineage(1)
	tb.Put(p)
	c := snap(200, 100, "/bin/sh")
	c.Ancestors = tb.Lineage(100)
	tb.Put(c)
	want := []event.Ancestor{{PID: 100, Exe: "/usr/bin/python3"}, {PID: 1, Comm: "init"}}
	if !reflect.DeepEqual(c.Ancestors, want) {
		t.Fatalf("lineage %+v; want %+v", c.Ancestors, want)
	}
	// The parent exits; the child is re-parented but its fork-time
	// lineage is still there, and the parent stays until retention ends.
	tb.Exit(100, t0)
	tb.Expire(t0.Add(4 * time.Minute))
	if e := tb.Peek(100); e == nil || !e.Exited() {
		t.Fatal("exited parent dropped before retention")
	}
	g := snap(300, 200, "/usr/bin/curl")
	g.Ancestors = tb.Lineage(200)
	if len(g.Ancestors) != 3 || g.Ancestors[1].Exe != "/usr/bin/python3" {
		t.Errorf("grandchild lineage %+v", g.Ancestors)
	}
	tb.Expire(t0.Add(5 * time.Minute))
	if tb.Peek(100) != nil {
		t.Error("exited parent kept after retention")
	}
	if tb.Expired() != 1 {
		t.Errorf("expired %d; want 1", tb.Expired())
	}
	// An unknown parent ends the lineage with its pid.
	if got := tb.Lineage(999); !reflect.DeepEqual(got, []event.Ancestor{{PID: 999}}) {
		t.Errorf("unknown parent: %+v", got)
	}
	if got := tb.Lineage(0); got != nil {
		t.Errorf("pid 0: %+v", got)
	}
}

func TestTableLineageBounded(t *testing.T) {
	tb := NewTable(nil)
	for pid := uint32(1); pid <= 100; pid++ {
		s := snap(pid, pid-1, "/bin/sh")
		s.Ancestors = tb.Lineage(pid - 1)
		tb.Put(s)
	}
	if n := len(tb.Peek(100).Snap.Ancestors); n != MaxLineage {
		t.Errorf("lineage length %d; want %d", n, MaxLineage)
	}
}

func TestTableSeedOrder(t *testing.T) {
	// Children listed before parents still get the full lineage.
	procs := []*Proc{
		{PID: 30, PPID: 20, Exe: "/bin/c"},
		{PID: 20, PPID: 10, Exe: "/bin/b"},
		{PID: 10, PPID: 1, Exe: "/bin/a"},
		{PID: 1, PPID: 0, Comm: "init"},
		{PID: 40, PPID: 41}, // a cycle from a racy read must not hang
		{PID: 41, PPID: 40},
	}
	tb := NewTable(nil)
	es := tb.Seed(procs)
	got := es[0].Snap.Ancestors
	want := []event.Ancestor{{PID: 20, Exe: "/bin/b"}, {PID: 10, Exe: "/bin/a"}, {PID: 1, Comm: "init"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("seeded lineage %+v; want %+v", got, want)
	}
	if es[3].Snap.Ancestors != nil {
		t.Errorf("init lineage %+v; want none", es[3].Snap.Ancestors)
	}
}

func TestExpireBoundsStaleRecords(t *testing.T) {
	tb := NewTable(&TableOptions{MaxEntries: 4, Retention: time.Hour})
	now := time.Unix(0, 0)
	for i := uint32(1); i < 100; i++ {
		tb.Put(snap(i, 0, "x"))
		tb.Exit(i, now)
		tb.Expire(now)
	}
	if len(tb.exits) > 8 {
		t.Errorf("exit FIFO holds %d records; want <= 2*MaxEntries", len(tb.exits))
	}
}

func TestFSReadsSelf(t *testing.T) {
	fs, err := NewFS("/proc")
	if err != nil {
		t.Skipf("no procfs: %v", err)
	}
	root, err := fs.CgroupV2Mount()
	if err != nil {
		t.Skipf("no cgroup v2 hierarchy: %v", err)
	}
	fs.SetCgroupV2Root(root)
	pid := uint32(os.Getpid())
	p, err := fs.Process(pid)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	if p.PID != pid || p.PPID != uint32(os.Getppid()) || p.Exe != exe || len(p.Args) == 0 || p.UID != uint32(os.Getuid()) {
		t.Errorf("self: %+v", p)
	}
	if d := time.Since(p.StartTime); d < 0 || d > 10*time.Minute {
		t.Errorf("start time %s is %s ago", p.StartTime, d)
	}
	if p.NSPID != pid || p.Snapshot().NSPID != pid { // the test runs in the namespace of its procfs
		t.Errorf("NSPID %d, snapshot %d; want %d", p.NSPID, p.Snapshot().NSPID, pid)
	}
	if p.CgroupID == 0 || p.NS.Mnt == 0 || p.NS.PID == 0 {
		t.Errorf("cgroup id %d, ns %+v", p.CgroupID, p.NS)
	}
	k, err := fs.Process(2)
	if err != nil {
		t.Skipf("kthreadd unreadable: %v", err)
	}
	if !k.Kthread || k.Exe != "" || k.Comm != "kthreadd" {
		t.Errorf("kthreadd: %+v", k)
	}
	if _, err := fs.Process(1 << 30); err == nil {
		t.Error("nonexistent pid: no error")
	}
}
