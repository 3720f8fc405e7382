package enrich

import (
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// BenchmarkEnrichKnown measures the event path for a known container
// process: it must not allocate.
func BenchmarkEnrichKnown(b *testing.B) {
	f := newFakeProcB(b)
	cg := f.cgroupID(k8sCg)
	f.add(fproc{pid: 200, ppid: 1, comm: "python3", exe: "/usr/bin/python3", cgroup: k8sCg})
	e, err := New(testConfig(), f.options())
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	in := partial(200, "python3", cg)
	ev := &event.Event{Kind: event.KindOpen}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ev.Process, ev.Container = in, nil
		e.Enrich(ev)
	}
	if ev.Container == nil {
		b.Fatal("no container")
	}
}

func TestEnrichWithoutStart(t *testing.T) {
	e, err := New(testConfig(), &Options{NoNetlink: true})
	if err != nil {
		t.Fatal(err)
	}
	ev := &event.Event{Kind: event.KindOpen, Process: &event.Process{PID: 77, TID: 77, Comm: "x"}}
	e.Enrich(ev)
	if ev.Process == nil || ev.Process.PID != 77 || ev.Container != nil {
		t.Errorf("got %+v %+v", ev.Process, ev.Container)
	}
	for _, k := range []event.Kind{event.KindExit, event.KindFork, event.KindExec, event.KindGPU, event.KindLost} {
		e.Enrich(&event.Event{Kind: k}) // nil payloads must not panic
	}
}

func TestLookupWithoutStart(t *testing.T) {
	f := newFakeProc(t)
	f.add(fproc{pid: 200, ppid: 1, comm: "python3", exe: "/usr/bin/python3", cgroup: k8sCg})
	e, err := New(testConfig(), f.options())
	if err != nil {
		t.Fatal(err)
	}
	p, c := e.Lookup(200)
	if p == nil || p.Exe != "/usr/bin/python3" || c == nil || c.ID != hexID {
		t.Errorf("Lookup without Start: %+v %+v", p, c)
	}
}

// spawn is the events of a known process starting a short-lived child: a
// probe or a shell command, the commonest process lifecycle on a node.
func spawn(parent, pid uint32, cg uint64, t time.Time) []*event.Event {
	return []*event.Event{
		{Kind: event.KindFork, Time: t, Process: &event.Process{PID: pid, TID: pid, PPID: parent, ForkParent: parent, Comm: "python3", CgroupID: cg, StartTime: t}},
		{Kind: event.KindExec, Time: t, Process: &event.Process{PID: pid, TID: pid, PPID: parent, ForkParent: parent, Comm: "curl", CgroupID: cg,
			Exe: "/usr/bin/curl", Args: []string{"curl", "-fsS", "http://127.0.0.1:8000/health"}, StartTime: t}},
		{Kind: event.KindOpen, Time: t, Process: partial(pid, "curl", cg), File: &event.File{Path: "/etc/hosts"}},
		{Kind: event.KindExit, Time: t, Process: &event.Process{PID: pid, TID: pid, Comm: "curl", CgroupID: cg, StartTime: t}, Exit: &event.Exit{}},
	}
}

// BenchmarkEnrichLifecycle measures fork, exec, open and exit of children
// of a known container process; allocs/op are the enricher's own (the
// events are built with the timer stopped).
func BenchmarkEnrichLifecycle(b *testing.B) {
	f := newFakeProcB(b)
	cg := f.cgroupID(k8sCg)
	f.add(fproc{pid: 200, ppid: 1, comm: "python3", exe: "/usr/bin/python3", cgroup: k8sCg})
	e, err := New(testConfig(), f.options())
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	var evs []*event.Event
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(evs) == 0 {
			b.StopTimer()
			for j := range 256 {
				evs = append(evs, spawn(200, 1000+uint32((i+j)%4096), cg, t0)...)
			}
			b.StartTimer()
		}
		e.Enrich(evs[0])
		evs = evs[1:]
	}
	if n := e.Counters()["enrich_unknown_pids"]; n != 0 {
		b.Fatalf("%d unknown pids: the lifecycle did not stay in the table", n)
	}
}

// TestLifecycleAllocations pins what the process lifecycle allocates in the
// enricher: an exec, an open and an exit of a known process nothing (the
// exec's decoded process becomes the snapshot, the lineage is shared), a
// fork its table entry and its container reference.
func TestLifecycleAllocations(t *testing.T) {
	f := newFakeProc(t)
	cg := f.cgroupID(k8sCg)
	f.add(fproc{pid: 200, ppid: 1, comm: "python3", exe: "/usr/bin/python3", cgroup: k8sCg})
	e := newTestEnricher(t, f, testConfig(), nil)
	t0 := time.Now()
	const runs = 100
	pid := uint32(1000)
	// allocs returns the allocations of enriching the first k events of
	// a fresh spawn, a new child each run.
	allocs := func(k int) float64 {
		var sets [][]*event.Event
		for range runs + 1 { // AllocsPerRun runs once more to warm up
			sets = append(sets, spawn(200, pid, cg, t0))
			pid++
		}
		n := 0
		return testing.AllocsPerRun(runs, func() {
			for _, ev := range sets[n][:k] {
				e.Enrich(ev)
			}
			n++
		})
	}
	prev := 0.0
	for i, want := range []float64{2, 0, 0, 0} { // fork, exec, open, exit
		all := allocs(i + 1)
		if got := all - prev; got > want {
			t.Errorf("%s: %.1f allocations; want at most %.0f", spawn(0, 0, 0, t0)[i].Kind, got, want)
		}
		prev = all
	}
}
