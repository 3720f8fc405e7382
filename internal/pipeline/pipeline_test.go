package pipeline

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

type tagEnricher struct{}

func (tagEnricher) Enrich(ev *event.Event) {
	if ev.Process == nil {
		ev.Process = &event.Process{Comm: "enriched"}
	}
}

// openDetector turns every open into a finding.
type openDetector struct{ flushed int }

func (d *openDetector) Process(ev *event.Event, emit func(*event.Event)) {
	if ev.Kind == event.KindOpen {
		emit(&event.Event{Kind: event.KindFinding, Time: ev.Time, Process: ev.Process,
			Finding: &event.Finding{Rule: "T-1", Evidence: []*event.Event{ev}}})
	}
}
func (d *openDetector) Flush(time.Time, func(*event.Event)) { d.flushed++ }

type collector struct {
	mu  sync.Mutex
	evs []*event.Event
}

func (c *collector) sink(ev *event.Event) {
	c.mu.Lock()
	c.evs = append(c.evs, ev)
	c.mu.Unlock()
}

func (c *collector) kinds() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.evs {
		out = append(out, e.Kind.String())
	}
	return out
}

func TestPipelineOrderEnrichAndFindings(t *testing.T) {
	src := SourceFunc(func(ctx context.Context, emit func(*event.Event)) error {
		emit(&event.Event{Kind: event.KindExec})
		emit(&event.Event{Kind: event.KindOpen, File: &event.File{Path: "/m.safetensors"}})
		<-ctx.Done()
		return ctx.Err()
	})
	var c collector
	det := &openDetector{}
	p := New([]Source{src}, tagEnricher{}, det, []Sink{c.sink}, &Options{FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, func() bool { return len(c.kinds()) >= 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := c.kinds()
	want := []string{"exec", "open", "finding"}
	if len(got) != len(want) {
		t.Fatalf("got %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v; want %v", got, want)
		}
	}
	if c.evs[0].Process == nil || c.evs[0].Process.Comm != "enriched" {
		t.Fatalf("event was not enriched before the sink saw it")
	}
	if det.flushed == 0 {
		t.Fatalf("detector was not flushed on stop")
	}
}

func TestPipelineCountsAndReportsDrops(t *testing.T) {
	var c collector
	p := New(nil, nil, nil, []Sink{c.sink}, &Options{QueueSize: 4, FlushInterval: time.Hour})
	// Nothing drains the queue yet: 4 fit, 6 are dropped.
	for i := 0; i < 10; i++ {
		p.Emit(&event.Event{Kind: event.KindOpen})
	}
	if got := p.Counters()["lost_queue"]; got != 6 {
		t.Fatalf("lost_queue = %d; want 6", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var lost *event.Lost
	opens := 0
	for _, e := range c.evs {
		switch e.Kind {
		case event.KindLost:
			lost = e.Lost
		case event.KindOpen:
			opens++
		}
	}
	if opens != 4 {
		t.Fatalf("delivered %d queued events; want 4", opens)
	}
	if lost == nil || lost.Count != 6 || lost.Source != "queue" {
		t.Fatalf("lost report = %+v; want 6 from queue", lost)
	}
}

// Issue 14: a Lost record dropped from a full queue counted as one event,
// and its count vanished. It is folded into a later report of its source.
func TestPipelineFoldsLostRecordsThatDoNotFit(t *testing.T) {
	var c collector
	// Lost records take the priority queue first, then the ordinary one.
	p := New(nil, nil, nil, []Sink{c.sink}, &Options{QueueSize: 1, PriorityQueueSize: 1, FlushInterval: time.Hour})
	lost := func(src string, n uint64) *event.Event {
		return &event.Event{Kind: event.KindLost, Lost: &event.Lost{Source: src, Count: n}}
	}
	p.Emit(&event.Event{Kind: event.KindOpen}) // fits
	p.Emit(lost("kernel_ringbuf", 500))        // fits, in the priority queue
	p.Emit(&event.Event{Kind: event.KindOpen}) // dropped: 1 event
	p.Emit(lost("kernel_ringbuf", 7))          // folded
	p.Emit(lost("decoder", 3))                 // folded
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := map[string]uint64{}
	events := 0
	for _, e := range c.evs {
		if e.Kind == event.KindLost {
			got[e.Lost.Source] += e.Lost.Count
		} else {
			events++
		}
	}
	want := map[string]uint64{"queue": 1, "kernel_ringbuf": 507, "decoder": 3}
	if events != 1 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %d events and losses %v; want 1 and %v", events, got, want)
	}
	if n := p.Counters()["lost_records_folded"]; n != 2 {
		t.Errorf("lost_records_folded = %d; want 2", n)
	}
}

func TestPipelineReturnsSourceError(t *testing.T) {
	boom := SourceFunc(func(context.Context, func(*event.Event)) error { return errTest })
	p := New([]Source{boom}, nil, nil, nil, nil)
	if err := p.Run(context.Background()); err != errTest {
		t.Fatalf("Run = %v; want %v", err, errTest)
	}
}

type testErr struct{}

func (testErr) Error() string { return "boom" }

var errTest error = testErr{}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The metrics read kinds and findings from these counts; they must add up to
// what the pipeline handled.
func TestPipelineCountsByKindAndRule(t *testing.T) {
	src := SourceFunc(func(ctx context.Context, emit func(*event.Event)) error {
		emit(&event.Event{Kind: event.KindExec})
		emit(&event.Event{Kind: event.KindOpen})
		emit(&event.Event{Kind: event.KindOpen})
		emit(&event.Event{Kind: event.KindLost, Lost: &event.Lost{Source: "kernel_ringbuf", Count: 3}})
		<-ctx.Done()
		return ctx.Err()
	})
	sevDetector := detectorFunc(func(ev *event.Event, emit func(*event.Event)) {
		if ev.Kind == event.KindOpen {
			emit(&event.Event{Kind: event.KindFinding, Finding: &event.Finding{Rule: "T-1", Severity: event.SevHigh}})
		}
		if ev.Kind == event.KindExec {
			emit(&event.Event{Kind: event.KindFinding, Finding: &event.Finding{Rule: "T-2", Severity: event.SevLow}})
		}
	})
	var c collector
	p := New([]Source{src}, nil, sevDetector, []Sink{c.sink}, &Options{FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, func() bool { return len(c.kinds()) >= 7 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	kinds := p.KindCounts()
	for k, want := range map[event.Kind]uint64{event.KindExec: 1, event.KindOpen: 2, event.KindLost: 1, event.KindFinding: 3} {
		if kinds[k] != want {
			t.Errorf("KindCounts[%s]: got %d; want %d", k, kinds[k], want)
		}
	}
	if got := p.Counters()["pipeline_processed"]; got != 4 {
		t.Errorf("pipeline_processed: got %d; want 4 (the sum of the kinds, findings apart)", got)
	}
	rules := p.FindingCounts()
	if len(rules) != 2 || rules[FindingKey{"T-1", event.SevHigh}] != 2 || rules[FindingKey{"T-2", event.SevLow}] != 1 {
		t.Errorf("FindingCounts: got %v; want T-1/high 2, T-2/low 1", rules)
	}
}

type detectorFunc func(ev *event.Event, emit func(*event.Event))

func (f detectorFunc) Process(ev *event.Event, emit func(*event.Event)) { f(ev, emit) }
func (detectorFunc) Flush(time.Time, func(*event.Event))                {}

// cgroupEnricher names a container after the cgroup id, as the real
// enricher resolves it.
type cgroupEnricher struct{}

func (cgroupEnricher) Enrich(ev *event.Event) {
	if ev.Process != nil && ev.Process.CgroupID != 0 {
		ev.Container = &event.Container{ID: fmt.Sprintf("ctr-%d", ev.Process.CgroupID)}
	}
}

// A flooder fills the ordinary queue; priority events made during the
// flood, behind it, are all delivered, in the order they were emitted. The drops
// are reported in the flooder's name, enriched with its container, and
// the rules see them.
func TestPipelinePriorityAndAttributedDrops(t *testing.T) {
	var c collector
	var lostSeen int
	det := detectorFunc(func(ev *event.Event, emit func(*event.Event)) {
		if ev.Kind == event.KindLost {
			lostSeen++
		}
	})
	p := New(nil, cgroupEnricher{}, det, []Sink{c.sink}, &Options{QueueSize: 8, PriorityQueueSize: 4, FlushInterval: time.Hour})
	flood := func(i int) *event.Event {
		return &event.Event{Kind: event.KindOpen, Process: &event.Process{PID: uint32(100 + i%2), Comm: "flooder", CgroupID: 7}}
	}
	for i := range 100 {
		p.Emit(flood(i))
		if i == 20 || i == 50 || i == 90 {
			p.Emit(&event.Event{Kind: event.KindOpen, Priority: true, Process: &event.Process{PID: 9, CgroupID: 8}})
		}
	}
	p.Emit(&event.Event{Kind: event.KindExec, Process: &event.Process{PID: 10, Comm: "other", CgroupID: 9}}) // dropped too
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	var prio, bulk int
	lost := map[string]*event.Event{}
	for i, e := range c.evs {
		switch {
		case e.Priority:
			// The 8 queued flood events were emitted before the first.
			if i != 8+prio {
				t.Errorf("priority event %d delivered at %d; want %d, after the 8 ordinary events emitted before it", prio, i, 8+prio)
			}
			prio++
		case e.Kind == event.KindOpen:
			bulk++
		case e.Kind == event.KindLost:
			lost[e.Container.ID] = e
		}
	}
	if prio != 3 || bulk != 8 {
		t.Errorf("delivered %d priority and %d ordinary events; want 3 and 8 (the queue)", prio, bulk)
	}
	fl, other := lost["ctr-7"], lost["ctr-9"]
	if fl == nil || fl.Lost.Count != 92 || fl.Lost.Source != event.LostQueue || fl.Process.PID != 101 || fl.Process.Comm != "flooder" {
		t.Errorf("flooder's loss: %+v %+v; want 92 from queue, last pid 101", fl.Lost, fl.Process)
	}
	if other == nil || other.Lost.Count != 1 {
		t.Errorf("the other container's loss: %+v; want 1", other)
	}
	if lostSeen != 2 {
		t.Errorf("the rules saw %d lost events; want 2", lostSeen)
	}
	if n := p.Counters()["lost_queue"]; n != 93 {
		t.Errorf("lost_queue = %d; want 93", n)
	}
}

// When both queues are full, a priority event is dropped and reported
// under queue_priority.
func TestPipelinePriorityDropCounted(t *testing.T) {
	var c collector
	p := New(nil, nil, nil, []Sink{c.sink}, &Options{QueueSize: 1, PriorityQueueSize: 1, FlushInterval: time.Hour})
	for range 4 {
		p.Emit(&event.Event{Kind: event.KindSyscall, Priority: true, Process: &event.Process{PID: 5, CgroupID: 3}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	var got uint64
	for _, e := range c.evs {
		if e.Kind == event.KindLost && e.Lost.Source == event.LostQueuePriority && e.Process.CgroupID == 3 {
			got += e.Lost.Count
		}
	}
	if got != 2 || p.Counters()["lost_queue_priority"] != 2 {
		t.Errorf("priority events lost: %d reported, %d counted; want 2", got, p.Counters()["lost_queue_priority"])
	}
}

// Events are handled in the order they were emitted, whichever queue they
// took: a process's exec (ordinary) must be in the process table before
// its next call (priority) is enriched.
func TestPipelineHandlesBothQueuesInEmissionOrder(t *testing.T) {
	var c collector
	const n = 20000
	p := New(nil, nil, nil, []Sink{c.sink}, &Options{QueueSize: n, PriorityQueueSize: n, FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }() // handling while events are emitted
	for i := range n {
		p.Emit(&event.Event{Kind: event.KindExec, Seq: uint64(i), Priority: i%3 == 1, Process: &event.Process{PID: uint32(i)}})
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, e := range c.evs {
		if e.Kind == event.KindExec {
			got = append(got, e.Seq)
		}
	}
	if len(got) != n {
		t.Fatalf("handled %d events; want %d", len(got), n)
	}
	for i, s := range got {
		if s != uint64(i) {
			t.Fatalf("event %d handled at %d: not in emission order", s, i)
		}
	}
}

type quietDetector struct{ n int }

func (d *quietDetector) Process(ev *event.Event, emit func(*event.Event)) { d.n++ }
func (d *quietDetector) Flush(time.Time, func(*event.Event))              {}

// The pipeline's own work on an event that makes no finding allocates
// nothing.
func TestHandleAllocatesNothing(t *testing.T) {
	d := &quietDetector{}
	p := New(nil, nil, d, []Sink{func(*event.Event) {}}, nil)
	ev := &event.Event{Kind: event.KindOpen, Process: &event.Process{PID: 1}}
	if n := testing.AllocsPerRun(100, func() { p.handle(ev) }); n != 0 {
		t.Errorf("handle allocates %.0f times per event", n)
	}
	if d.n == 0 {
		t.Fatal("the detector saw nothing")
	}
}
