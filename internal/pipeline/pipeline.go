// Package pipeline connects the sensor's stages: sources (the kernel reader,
// the GPU sampler) feed one bounded queue; a single goroutine enriches each
// event, hands it to the sinks, runs the rules over it and hands their
// findings to the sinks too.
//
// The queue is the one place where back-pressure meets the kernel: a source
// never blocks on it. An event that does not fit is dropped and counted, and
// the count is reported in-band as a "lost" event. A lost record that does
// not fit is not an event lost but a count to keep: it is folded into the
// next report of its source, so no loss is ever lost itself.
package pipeline

import (
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
	queue    chan *event.Event
	// emitFinding is p.finding, made once: a method value made at each
	// call would allocate per event.
	emitFinding func(*event.Event)

	queued   atomic.Uint64
	dropped  atomic.Uint64
	reported uint64 // drops already reported in-band (pipeline goroutine only)

	// folded holds, by source, the counts of lost records that did not fit
	// in the queue, until the next flush reports them.
	foldMu sync.Mutex
	folded map[string]uint64
	nFold  atomic.Uint64 // lost records folded, for Counters
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
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Pipeline{
		sources: sources, enricher: enricher, detector: detector, sinks: sinks,
		opts: o, queue: make(chan *event.Event, o.QueueSize), byRule: map[FindingKey]uint64{},
	}
	p.emitFinding = p.finding
	return p
}

// Emit offers ev to the queue without blocking; it is the emit function handed
// to sources. It is safe for concurrent use.
func (p *Pipeline) Emit(ev *event.Event) {
	select {
	case p.queue <- ev:
		p.queued.Add(1)
	default:
		if ev.Kind == event.KindLost && ev.Lost != nil {
			p.fold(ev.Lost)
			return
		}
		p.dropped.Add(1)
	}
}

func (p *Pipeline) fold(l *event.Lost) {
	p.foldMu.Lock()
	if p.folded == nil {
		p.folded = map[string]uint64{}
	}
	p.folded[l.Source] += l.Count
	p.foldMu.Unlock()
	p.nFold.Add(1)
}

// Counters reports the pipeline's own counts. Safe for concurrent use.
func (p *Pipeline) Counters() map[string]uint64 {
	var processed uint64
	for i := range p.byKind {
		processed += p.byKind[i].Load()
	}
	return map[string]uint64{
		"pipeline_queued":     p.queued.Load(),
		"pipeline_processed":  processed,
		"pipeline_findings":   p.findings.Load(),
		"lost_queue":          p.dropped.Load(),
		"lost_records_folded": p.nFold.Load(),
		"queue_len":           uint64(len(p.queue)),
		"queue_cap":           uint64(cap(p.queue)),
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
loop:
	for {
		select {
		case ev := <-p.queue:
			p.handle(ev)
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
		select {
		case ev := <-p.queue:
			p.handle(ev)
		default:
			p.flush()
			if runErr == nil {
				select {
				case runErr = <-errc:
				default:
				}
			}
			return runErr
		}
	}
}

func (p *Pipeline) handle(ev *event.Event) {
	p.byKind[min(int(ev.Kind), kindSlots-1)].Add(1)
	if p.enricher != nil && ev.Kind != event.KindLost && ev.Kind != event.KindStatus {
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
	if d := p.dropped.Load(); d > p.reported {
		p.sink(&event.Event{Kind: event.KindLost, Time: now, Lost: &event.Lost{Source: "queue", Count: d - p.reported}})
		p.opts.Logger.Warn("pipeline queue full: events dropped", "count", d-p.reported)
		p.reported = d
	}
	p.foldMu.Lock()
	folded := p.folded
	p.folded = nil
	p.foldMu.Unlock()
	for _, src := range slices.Sorted(maps.Keys(folded)) {
		p.sink(&event.Event{Kind: event.KindLost, Time: now, Lost: &event.Lost{Source: src, Count: folded[src],
			Detail: "reported late: the record did not fit in the pipeline queue when it was made"}})
	}
}
