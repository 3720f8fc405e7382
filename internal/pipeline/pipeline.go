// Package pipeline connects the sensor's stages: sources (the kernel reader,
// the GPU sampler) feed one bounded queue; a single goroutine enriches each
// event, hands it to the sinks, runs the rules over it and hands their
// findings to the sinks too.
//
// The queue is the one place where back-pressure meets the kernel: a source
// never blocks on it. An event that does not fit is dropped and counted, and
// the count is reported in-band as a "lost" event, in the name of the cgroup
// (and the last process) whose events were dropped. A lost record that does
// not fit is not an event lost but a count to keep: it is folded into the
// next report of its source (and cgroup), so no loss is ever lost itself.
//
// Floods don't choose what is lost: events the kernel sent as priority
// records (event.Event.Priority: escape primitives, knob writes, attempts on
// the sensor), lost and status events go to a second, smaller queue, so a
// backlog of ordinary events does not drop them. Only when that queue is
// full too do they fall back to the ordinary one. Both queues are handled
// in the order the events were emitted, never priority first: a process's
// exec must reach the process table before its next call is enriched and
// judged (with priority first, a container's mount(2) overtook the exec of
// the unshare that made it and was judged as the shell's: a false ESC-007).
// A priority event waits at most for the ordinary backlog ahead of it.
package pipeline

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Source produces events until ctx is done. Run must call emit from a single
// goroutine at a time; emit never blocks.
type Source interface {
	Run(ctx context.Context, emit func(*event.Event)) error
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, emit func(*event.Event)) error

// Run calls f.
func (f SourceFunc) Run(ctx context.Context, emit func(*event.Event)) error { return f(ctx, emit) }

// Enricher joins process, container and network context onto an event.
type Enricher interface {
	Enrich(ev *event.Event)
}

// Detector runs rules over enriched events.
type Detector interface {
	Process(ev *event.Event, emit func(*event.Event))
	Flush(now time.Time, emit func(*event.Event))
}

// Sink receives every enriched event and every finding, in order, from the
// pipeline goroutine. It must not block for long: the export ring and the
// tail printer are sinks.
type Sink func(ev *event.Event)

// Options configure a Pipeline. Zero values get defaults.
type Options struct {
	// QueueSize bounds the queue between sources and the pipeline goroutine.
	QueueSize int
	// PriorityQueueSize bounds the queue of priority events; 0 is
	// QueueSize/8 (at least 1024).
	PriorityQueueSize int
	// FlushInterval is how often the detector's windows are flushed and lost
	// counts reported.
	FlushInterval time.Duration
	Logger        *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Pipeline is the running graph. Create it with New and start it with Run.
type Pipeline struct {
	sources  []Source
	enricher Enricher
	detector Detector
	sinks    []Sink
	opts     Options
	queue    chan queued
	prio     chan queued
	// seq numbers emitted events, so that Run handles both queues in
	// emission order.
	seq atomic.Uint64
	// emitFinding is p.finding, made once: a method value made at each
	// call would allocate per event.
	emitFinding func(*event.Event)

	queued     atomic.Uint64
	queuedPrio atomic.Uint64
	dropped    atomic.Uint64
	// droppedPrio counts priority events dropped (both queues full).
	droppedPrio atomic.Uint64
	nFold       atomic.Uint64 // lost records folded, for Counters
	// lossMu guards losses: events dropped and lost records folded, by
	// cgroup and source, until flush reports them. Bounded by
	// maxLossCgroups; past it they are reported without a cgroup.
	lossMu sync.Mutex
	losses map[lossKey]*loss
	// byKind counts processed events by kind: the one add per event that a
	// total would cost anyway, so metrics read kinds for free.
	byKind   [kindSlots]atomic.Uint64
	findings atomic.Uint64
	// byRule counts findings by rule and severity; findings are rare next
	// to events, so a map under a lock costs nothing that matters.
	byRuleMu sync.Mutex
	byRule   map[FindingKey]uint64
}

// kindSlots bounds event.Kind values counted by kind (filters hold kinds in
// a 32-bit mask too); a larger kind is counted in the last slot.
const kindSlots = 32

// maxLossCgroups bounds the cgroups whose drops are told apart between two
// flushes.
const maxLossCgroups = 256

// lossKey is whose events were lost, and where: a queue, or (late) the
// source of a lost record that was folded.
type lossKey struct {
	cgroup uint64
	source string
	late   bool
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// loss is the drops of one lossKey since the last flush.
type loss struct {
	count uint64
	pid   uint32 // the last process whose event was dropped
	comm  string
}

// FindingKey is a rule and a severity.
type FindingKey struct {
	Rule     string
	Severity event.Severity
}

// New builds a pipeline. enricher and detector may be nil.
func New(sources []Source, enricher Enricher, detector Detector, sinks []Sink, opts *Options) *Pipeline {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 64 << 10
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.PriorityQueueSize <= 0 {
		o.PriorityQueueSize = max(o.QueueSize/8, 1024)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Pipeline{
		sources: sources, enricher: enricher, detector: detector, sinks: sinks,
		opts: o, queue: make(chan queued, o.QueueSize), prio: make(chan queued, o.PriorityQueueSize),
		byRule: map[FindingKey]uint64{}, losses: map[lossKey]*loss{},
	}
	p.emitFinding = p.finding
	return p
}

// urgent says which events take the priority queue.
func urgent(ev *event.Event) bool {
	return ev.Priority || ev.Kind == event.KindLost || ev.Kind == event.KindStatus
}

// Emit offers ev to its queue without blocking; it is the emit function
// handed to sources. It is safe for concurrent use.
func (p *Pipeline) Emit(ev *event.Event) {
	q := queued{ev, p.seq.Add(1)}
	if urgent(ev) {
		select {
		case p.prio <- q:
			p.queuedPrio.Add(1)
			return
		default: // the ordinary queue may still have room
		}
	}
	select {
	case p.queue <- q:
		p.queued.Add(1)
	default:
		p.drop(ev)
	}
}

// drop counts ev, which fit in no queue: an event dropped, under its
// cgroup; a lost record's count folded into a later report of its source.
func (p *Pipeline) drop(ev *event.Event) {
	k := lossKey{source: event.LostQueue}
	n := uint64(1)
	switch {
	case ev.Kind == event.KindLost && ev.Lost != nil:
		k.source, k.late, n = ev.Lost.Source, true, ev.Lost.Count
		p.nFold.Add(1)
	case urgent(ev):
		k.source = event.LostQueuePriority
		p.droppedPrio.Add(1)
	default:
		p.dropped.Add(1)
	}
	var pid uint32
	var comm string
	if pr := ev.Process; pr != nil {
		k.cgroup, pid, comm = pr.CgroupID, pr.PID, pr.Comm
	}
	p.lossMu.Lock()
	l := p.losses[k]
	if l == nil {
		if len(p.losses) >= maxLossCgroups {
			k.cgroup, pid, comm = 0, 0, ""
			l = p.losses[k]
		}
		if l == nil {
			l = &loss{}
			p.losses[k] = l
		}
	}
	l.count += n
	if pid != 0 {
		l.pid, l.comm = pid, comm
	}
	p.lossMu.Unlock()
}

// Counters reports the pipeline's own counts. Safe for concurrent use.
func (p *Pipeline) Counters() map[string]uint64 {
	var processed uint64
	for i := range p.byKind {
		processed += p.byKind[i].Load()
	}
	return map[string]uint64{
		"pipeline_queued":          p.queued.Load(),
		"pipeline_queued_priority": p.queuedPrio.Load(),
		"pipeline_processed":       processed,
		"pipeline_findings":        p.findings.Load(),
		"lost_queue":               p.dropped.Load(),
		"lost_queue_priority":      p.droppedPrio.Load(),
		"lost_records_folded":      p.nFold.Load(),
		"queue_len":                uint64(len(p.queue)),
		"queue_cap":                uint64(cap(p.queue)),
		"queue_priority_len":       uint64(len(p.prio)),
		"queue_priority_cap":       uint64(cap(p.prio)),
	}
}

// KindCounts returns the events processed, by kind, findings included.
// Safe for concurrent use.
func (p *Pipeline) KindCounts() map[event.Kind]uint64 {
	m := map[event.Kind]uint64{}
	for i := range p.byKind {
		if n := p.byKind[i].Load(); n > 0 {
			m[event.Kind(i)] = n
		}
	}
	if n := p.findings.Load(); n > 0 {
		m[event.KindFinding] += n
	}
	return m
}

// FindingCounts returns the findings emitted, by rule and severity. Safe for
// concurrent use.
func (p *Pipeline) FindingCounts() map[FindingKey]uint64 {
	p.byRuleMu.Lock()
	defer p.byRuleMu.Unlock()
	return maps.Clone(p.byRule)
}

// Run starts every source and processes events until ctx is done or a source
// fails. The first source error (other than context cancellation) is returned.
func (p *Pipeline) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	errc := make(chan error, len(p.sources))
	for _, s := range p.sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx, p.Emit); err != nil && !errors.Is(err, context.Canceled) {
				errc <- err
				cancel()
			}
		}()
	}

	tick := time.NewTicker(p.opts.FlushInterval)
	defer tick.Stop()
	var runErr error
	var h heads
loop:
	for n := 0; ; n++ {
		if ev := h.next(p); ev != nil {
			p.handle(ev)
			if n%64 != 0 {
				continue
			}
			// Under a steady flow, look at the clock and the sources
			// now and then.
			select {
			case <-tick.C:
				p.flush()
			case err := <-errc:
				runErr = err
				break loop
			case <-ctx.Done():
				break loop
			default:
			}
			continue
		}
		select {
		case q := <-p.prio:
			h.p, h.hasP = q, true
		case q := <-p.queue:
			h.o, h.hasO = q, true
		case <-tick.C:
			p.flush()
		case err := <-errc:
			runErr = err
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	cancel()
	wg.Wait()
	// Drain what the sources managed to queue, so a clean stop loses nothing.
	for {
		ev := h.next(p)
		if ev == nil {
			break
		}
		p.handle(ev)
	}
	p.flush()
	if runErr == nil {
		select {
		case runErr = <-errc:
		default:
		}
	}
	return runErr
}

// queued is an event and its place in emission order.
type queued struct {
	ev *event.Event
	n  uint64
}

// heads are the first event of each queue, taken out of it but not yet
// handled.
type heads struct {
	p, o       queued
	hasP, hasO bool
}

// next returns the event emitted first of those queued, or nil when both
// queues are empty, without blocking. A queue is looked at again after an
// event is taken from the other: an event emitted before the one just
// taken was sent before it (one source emits in order), so it is in its
// queue by then.
func (h *heads) next(p *Pipeline) *event.Event {
	take := func(c chan queued, q *queued, has *bool) {
		if *has {
			return
		}
		select {
		case *q = <-c:
			*has = true
		default:
		}
	}
	take(p.prio, &h.p, &h.hasP)
	take(p.queue, &h.o, &h.hasO)
	take(p.prio, &h.p, &h.hasP)
	switch {
	case h.hasP && (!h.hasO || h.p.n < h.o.n):
		h.hasP = false
		return h.p.ev
	case h.hasO:
		h.hasO = false
		return h.o.ev
	}
	return nil
}

func (p *Pipeline) handle(ev *event.Event) {
	p.byKind[min(int(ev.Kind), kindSlots-1)].Add(1)
	// A lost event naming the cgroup that lost the events gets its
	// process and container like any other event.
	if p.enricher != nil && ev.Kind != event.KindStatus &&
		(ev.Kind != event.KindLost || ev.Process != nil && ev.Process.CgroupID != 0) {
		p.enricher.Enrich(ev)
	}
	p.sink(ev)
	if p.detector != nil {
		p.detector.Process(ev, p.emitFinding)
	}
}

func (p *Pipeline) finding(ev *event.Event) {
	p.findings.Add(1)
	if f := ev.Finding; f != nil {
		p.byRuleMu.Lock()
		p.byRule[FindingKey{f.Rule, f.Severity}]++
		p.byRuleMu.Unlock()
	}
	p.sink(ev)
}

func (p *Pipeline) sink(ev *event.Event) {
	for _, s := range p.sinks {
		s(ev)
	}
}

func (p *Pipeline) flush() {
	now := p.opts.Now()
	if p.detector != nil {
		p.detector.Flush(now, p.emitFinding)
	}
	p.lossMu.Lock()
	if len(p.losses) == 0 {
		p.lossMu.Unlock()
		return
	}
	losses := p.losses
	p.losses = map[lossKey]*loss{}
	p.lossMu.Unlock()
	keys := slices.SortedFunc(maps.Keys(losses), func(a, b lossKey) int {
		return cmp.Or(cmp.Compare(a.source, b.source), cmp.Compare(a.cgroup, b.cgroup), cmp.Compare(btoi(a.late), btoi(b.late)))
	})
	var dropped uint64
	for _, k := range keys {
		l := losses[k]
		lost := &event.Lost{Source: k.source, Count: l.count}
		if k.late {
			lost.Detail = "reported late: the record did not fit in the pipeline queue when it was made"
		} else {
			dropped += l.count
		}
		// Through handle: enriched with the container, seen by the rules
		// (a flood is a finding).
		p.handle(&event.Event{Kind: event.KindLost, Time: now,
			Process: &event.Process{PID: l.pid, TID: l.pid, Comm: l.comm, CgroupID: k.cgroup}, Lost: lost})
	}
	if dropped > 0 {
		p.opts.Logger.Warn("pipeline queue full: events dropped", "count", dropped)
	}
}
