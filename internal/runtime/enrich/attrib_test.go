package enrich

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// A container's first process, exec'd in a cgroup made after the start-up
// walk: the kernel's cgroup record arrives before the exec (ring order), so
// the exec itself is attributed, and the walk is never needed.
func TestExecInANewCgroupAttributedFromTheKernelRecord(t *testing.T) {
	f := newFakeProc(t)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	e := newTestEnricher(t, f, testConfig(), clk)
	cg := f.cgroupID(k8sCg) // after Start: the walk did not see it
	e.Cgroups().Learn(cg, k8sCg)
	ex := &event.Event{Kind: event.KindExec, Time: clk.t, Process: &event.Process{PID: 500, TID: 500, PPID: 1,
		Comm: "sh", Exe: "/bin/sh", CgroupID: cg, StartTime: clk.t}}
	e.Enrich(ex)
	if c := ex.Container; c == nil || c.ID != hexID || c.Runtime != "containerd" || c.PodUID != podUID {
		t.Fatalf("exec in a new container: %+v", ex.Container)
	}
	if w := e.Counters()["cgroup_walks"]; w != 1 {
		t.Errorf("%d walks; want only the one at start", w)
	}
}

// Never cache a miss: a process whose cgroup path is not known yet gets
// what its namespaces say for now, and its container as soon as the path
// is known, on its next event.
func TestUnknownCgroupIsNotPinnedToTheHost(t *testing.T) {
	f := newFakeProc(t)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	e := newTestEnricher(t, f, testConfig(), clk)
	cg := f.cgroupID(k8sCg)
	ex := &event.Event{Kind: event.KindExec, Time: clk.t, Process: &event.Process{PID: 500, TID: 500, PPID: 1,
		Comm: "sh", Exe: "/bin/sh", CgroupID: cg, StartTime: clk.t}}
	e.Enrich(ex)
	if ex.Container != nil {
		t.Fatalf("before the path is known: container %+v; want the host's answer (host namespaces)", ex.Container)
	}
	open := &event.Event{Kind: event.KindOpen, Process: partial(500, "sh", cg), File: &event.File{Path: "/proc/sys/kernel/core_pattern"}}
	e.Enrich(open)
	if open.Container != nil {
		t.Fatalf("still unknown: container %+v", open.Container)
	}
	e.Cgroups().Learn(cg, k8sCg)
	open = &event.Event{Kind: event.KindOpen, Process: partial(500, "sh", cg), File: &event.File{Path: "/proc/sys/kernel/core_pattern"}}
	e.Enrich(open)
	if c := open.Container; c == nil || c.ID != hexID || c.PodUID != podUID {
		t.Fatalf("after the path is known: container %+v", open.Container)
	}
	// A child forked meanwhile inherits the answer, and the pending state.
	fk := &event.Event{Kind: event.KindFork, Process: &event.Process{PID: 501, TID: 501, PPID: 500, ForkParent: 500, CgroupID: cg, StartTime: clk.t}}
	e.Enrich(fk)
	if fk.Container == nil || fk.Container.ID != hexID {
		t.Errorf("child: container %+v", fk.Container)
	}
	if n := e.Counters()["enrich_cgroups_pending"]; n == 0 {
		t.Error("enrich_cgroups_pending not counted")
	}
}

// A process of an unknown runtime's container (own mount and pid
// namespaces) whose path is unknown is a container for now, and the
// container its path names once known.
func TestPendingNamespaceContainerUpgrades(t *testing.T) {
	f := newFakeProc(t)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	e := newTestEnricher(t, f, testConfig(), clk)
	cg := f.cgroupID(k8sCg)
	ns := event.Namespaces{Mnt: 4026532300, PID: 4026532301}
	ex := &event.Event{Kind: event.KindExec, Time: clk.t, Process: &event.Process{PID: 600, TID: 600, PPID: 1,
		Comm: "sh", Exe: "/bin/sh", CgroupID: cg, NS: ns, StartTime: clk.t}}
	e.Enrich(ex)
	if c := ex.Container; c == nil || c.ID != event.Unknown {
		t.Fatalf("by namespaces: container %+v; want id unknown", c)
	}
	e.Cgroups().Learn(cg, k8sCg)
	ev := &event.Event{Kind: event.KindOpen, Process: partial(600, "sh", cg)}
	e.Enrich(ev)
	if c := ev.Container; c == nil || c.ID != hexID {
		t.Fatalf("once the path is known: container %+v", c)
	}
}

// Inside a pod the sensor has its own cgroup namespace: /proc/<pid>/cgroup
// paths are relative to it ("/../../…") and are not used; a seeded
// process's cgroup id comes with its first event and resolves through the
// hierarchy's root mount.
func TestSensorInItsOwnCgroupNamespace(t *testing.T) {
	f := newFakeProc(t)
	cg := f.cgroupID(k8sCg)
	f.add(fproc{pid: 200, ppid: 1, comm: "python3", exe: "/usr/bin/python3", cgroup: k8sCg})
	rel := "0::/../../kubepods-besteffort-pod0e6c4ba8_5b31_4a3e_9f55_2c8b1b8e2f11.slice/cri-containerd-" + hexID + ".scope\n"
	if err := os.WriteFile(filepath.Join(f.proc, "200", "cgroup"), []byte(rel), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(f.proc, "self", "ns", "cgroup")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("cgroup:[4026532999]", link); err != nil {
		t.Fatal(err)
	}
	e := newTestEnricher(t, f, testConfig(), nil)
	if p, _ := e.Lookup(200); p == nil || p.CgroupID != 0 {
		t.Fatalf("seeded from a relative path: %+v; want no cgroup id yet", p)
	}
	ev := &event.Event{Kind: event.KindOpen, Process: partial(200, "python3", cg)}
	e.Enrich(ev)
	if c := ev.Container; c == nil || c.ID != hexID || c.PodUID != podUID || c.CgroupPath != k8sCg {
		t.Fatalf("first event: container %+v; want %s with pod %s at %s", c, hexID, podUID, k8sCg)
	}
	if n := e.Counters()["enrich_cgroup_changes"]; n != 0 {
		t.Errorf("a first cgroup id counted as %d cgroup changes", n)
	}
}
