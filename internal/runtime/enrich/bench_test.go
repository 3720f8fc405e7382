package enrich

import (
	"testing"

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
