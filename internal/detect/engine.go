package detect

import (
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// maxEvidence bounds the evidence events one finding carries.
const maxEvidence = 8

// Options are the optional inputs of New. A nil *Options is valid.
type Options struct {
	// HostNS holds the initial namespaces, read by the pipeline from
	// /proc/2/ns/* (PID 1 may be unreadable). Zero fields disable the
	// comparisons that need them.
	HostNS event.Namespaces
	// Logger is handed to the model registry New builds when AI.Registry
	// is nil (hash failures at debug level); nil means slog.Default().
	Logger *slog.Logger
	// ExtraRules are constructors run after the catalog's (tests, plugins).
	ExtraRules []func(*Settings) Rule
	// AI holds the inputs of the model-weight and GPU rules (model
	// registry, static GPU allocation, node name); nil selects defaults.
	AI *AIOptions
	// Proc answers what a process holds, which host pid a namespace pid
	// names, and where a live process is, from the kernel (procfs). nil
	// leaves rules with what events say: no taint from held files, and
	// namespace pids mapped only through Process.NSPID.
	Proc ProcView
	// Self names the sensor's own process for the SELF rules; zero turns
	// off what needs it (SELF-003).
	Self SelfIdentity
	// Sockets knows the container runtime's API sockets by identity
	// (ESC-006); nil leaves ESC-006 with socket names only.
	Sockets RuntimeSockets
}

// Engine runs the enabled rules over enriched events and aggregates their
// findings.
//
// Process and Flush must be called from one goroutine; Rules and Counters
// may be called from that goroutine only as well (the pipeline copies
// Counters into its status).
type Engine struct {
	settings *Settings
	state    *State
	slots    []*ruleSlot
	all      []Meta
	byKind   [32][]*ruleSlot
	window   time.Duration
	idle     time.Duration
	agg      *LRU[string, *aggEntry]
	next     time.Time // earliest aggregate window end; zero when none open
	emit     func(*event.Event)
	ai       *aiState // model-weight correlation state (exfil.go)

	events, findings, followUps, suppressed, allowlisted, aggEvicted, noSink uint64
}

type ruleSlot struct {
	rule        Rule
	meta        Meta
	pinned      bool // severity set in config
	ctx         Context
	allowExe    []*regexp.Regexp
	allowCgroup []*regexp.Regexp
	allowImage  []*regexp.Regexp
	fired       uint64
	suppressed  uint64
	allowlisted uint64
}

type aggEntry struct {
	slot     *ruleSlot
	start    time.Time
	count    int
	reported int
	sev      event.Severity
	first    *event.Event // the finding event emitted first
	evidence []*event.Event
	// The last repeat: its event's time, process and container (the
	// follow-up's), its explanation, and the engine time it came at.
	lastTime time.Time
	lastProc *event.Process
	lastCtr  *event.Container
	lastExpl string
	lastSeen time.Time
}

// New builds an engine from the detect configuration. It fails on a rule id
// in cfg.Rules that no rule has, and on values that do not compile, naming
// the key.
func New(cfg config.DetectConfig, opts *Options) (*Engine, error) {
	if opts == nil {
		opts = &Options{}
	}
	if cfg.StateSize == 0 {
		cfg.StateSize = 16384
	}
	if cfg.MaxAggregates == 0 {
		cfg.MaxAggregates = 4096
	}
	if cfg.AggregateWindow <= 0 {
		cfg.AggregateWindow = config.Duration(time.Minute)
	}
	if cfg.AggregateIdle <= 0 || cfg.AggregateIdle > cfg.AggregateWindow {
		cfg.AggregateIdle = min(config.Duration(2*time.Second), cfg.AggregateWindow)
	}
	s, err := NewSettings(cfg, opts.HostNS)
	if err != nil {
		return nil, fmt.Errorf("compile detect config: %w", err)
	}
	s.Self = opts.Self
	s.Sockets = opts.Sockets
	e := &Engine{
		settings: s,
		state:    newState(cfg.StateSize, opts.HostNS, opts.Proc),
		window:   cfg.AggregateWindow.D(),
		idle:     cfg.AggregateIdle.D(),
	}
	if e.ai, err = newAIState(s, opts.AI, opts.Logger, cfg.StateSize); err != nil {
		return nil, err
	}
	e.agg = NewLRU[string, *aggEntry](cfg.MaxAggregates, func(_ string, a *aggEntry) {
		e.aggEvicted++
		e.closeAggregate(a)
	})
	ctors := append(append([]func(*Settings) Rule(nil), catalog...), opts.ExtraRules...)
	seen := map[string]bool{}
	for _, ctor := range ctors {
		r := ctor(s)
		m := r.Meta()
		if m.ID == "" || seen[m.ID] {
			return nil, fmt.Errorf("register rule %q: empty or duplicate id", m.ID)
		}
		seen[m.ID] = true
		e.all = append(e.all, m)
		rc := cfg.Rules[m.ID]
		if rc.Enabled != nil && !*rc.Enabled {
			continue
		}
		slot := &ruleSlot{rule: r, meta: m}
		if rc.Severity != "" {
			sev, ok := event.ParseSeverity(rc.Severity)
			if !ok {
				return nil, fmt.Errorf("rules.%s.severity: %q is not a severity", m.ID, rc.Severity)
			}
			slot.meta.Severity, slot.pinned = sev, true
		}
		if slot.allowExe, err = compileAll("rules."+m.ID+".allow_exe", rc.AllowExe); err != nil {
			return nil, err
		}
		if slot.allowCgroup, err = compileAll("rules."+m.ID+".allow_cgroup", rc.AllowCgroup); err != nil {
			return nil, err
		}
		slot.allowImage = append(append([]*regexp.Regexp(nil), s.imageAllow["*"]...), s.imageAllow[m.ID]...)
		slot.ctx = Context{State: e.state, Settings: s, Severity: slot.meta.Severity, rule: slot, eng: e}
		e.slots = append(e.slots, slot)
		for _, k := range m.Kinds {
			if int(k) < len(e.byKind) {
				e.byKind[k] = append(e.byKind[k], slot)
			}
		}
	}
	for _, id := range sortedIDs(cfg.Rules) {
		if !seen[id] {
			return nil, fmt.Errorf("rules.%s: unknown rule id (known: %s)", id, strings.Join(sortedIDs(seen), ", "))
		}
	}
	for k := range cfg.ContainerImageAllowlist {
		if k != "*" && !seen[k] {
			return nil, fmt.Errorf("container_image_allowlist.%s: unknown rule id", k)
		}
	}
	return e, nil
}

// CheckConfig reports whether cfg would build an engine: the check that
// `sensor --check-config` runs on top of config.Validate.
func CheckConfig(cfg config.DetectConfig) error {
	_, err := New(cfg, nil)
	return err
}

func sortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for k := range m {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	return ids
}

// Settings returns the compiled configuration.
func (e *Engine) Settings() *Settings { return e.settings }

// State returns the shared rule state (for inspection and tests).
func (e *Engine) State() *State { return e.state }

// Rules returns the metadata of the enabled rules, with the effective
// severity, in catalog order.
func (e *Engine) Rules() []Meta {
	out := make([]Meta, len(e.slots))
	for i, s := range e.slots {
		out[i] = s.meta
	}
	return out
}

// Catalog returns the metadata of every registered rule, enabled or not,
// with its default severity.
func (e *Engine) Catalog() []Meta { return append([]Meta(nil), e.all...) }

// Process runs the rules on one enriched event. Findings, and follow-ups of
// aggregate windows that ended before ev.Time, are passed to emit before
// Process returns. ev is not retained; evidence holds copies.
func (e *Engine) Process(ev *event.Event, emit func(*event.Event)) {
	if ev == nil || ev.Kind == event.KindFinding {
		return
	}
	e.events++
	e.emit = emit
	e.state.observe(ev)
	e.ai.observe(e.state, ev)
	if int(ev.Kind) < len(e.byKind) {
		for _, s := range e.byKind[ev.Kind] {
			s.ctx.Now = ev.Time
			s.rule.Eval(&s.ctx, ev)
		}
	}
	if !e.next.IsZero() && !ev.Time.Before(e.next) {
		e.flush(ev.Time)
	}
	e.emit = nil
}

// Flush reports the repeats of bursts that paused for aggregate_idle, and
// closes the aggregate windows that ended by now, emitting a follow-up for
// each one with unreported repeats. The pipeline calls it periodically
// (e.g. every second with the wall clock) and at shutdown with a time far
// in the future.
func (e *Engine) Flush(now time.Time, emit func(*event.Event)) {
	e.emit = emit
	e.flushAI(now)
	for _, s := range e.slots {
		if f, ok := s.rule.(flushRule); ok {
			s.ctx.Now = now
			f.Flush(&s.ctx, now)
		}
	}
	e.flush(now)
	e.emit = nil
}

// flushRule is a rule that holds events for a while (waiting for the rest
// of an operation): Flush is called at every engine flush and may report
// what waited long enough.
type flushRule interface {
	Flush(ctx *Context, now time.Time)
}

func (e *Engine) flush(now time.Time) {
	var done []string
	next := time.Time{}
	soon := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	e.agg.Range(func(k string, a *aggEntry) bool {
		end := a.start.Add(e.window)
		switch {
		case !now.Before(end):
			done = append(done, k)
		case a.count > a.reported && !now.Before(a.lastSeen.Add(e.idle)):
			e.closeAggregate(a) // reports the pending repeats; the window stays open
			soon(end)
		default:
			soon(end)
			if a.count > a.reported {
				soon(a.lastSeen.Add(e.idle))
			}
		}
		return true
	})
	for _, k := range done {
		if a, ok := e.agg.Peek(k); ok {
			e.agg.Delete(k)
			e.closeAggregate(a)
		}
	}
	e.next = next
}

// Counters returns the engine's counters: events seen, findings emitted,
// repeats folded into aggregates, findings dropped by allowlists, state
// evictions, and per-rule fired counts ("detect_rule_fired_<ID>").
func (e *Engine) Counters() map[string]uint64 {
	m := map[string]uint64{
		"detect_events":               e.events,
		"detect_findings":             e.findings,
		"detect_followups":            e.followUps,
		"detect_suppressed":           e.suppressed,
		"detect_allowlisted":          e.allowlisted,
		"detect_aggregates_evicted":   e.aggEvicted,
		"detect_aggregates_open":      uint64(e.agg.Len()),
		"detect_state_evictions":      e.state.evictions(),
		"detect_findings_without_out": e.noSink,
	}
	for k, v := range e.ai.counters() {
		m[k] = v
	}
	e.state.facts.counters(m)
	for _, s := range e.slots {
		m["detect_rule_fired_"+s.meta.ID] = s.fired
		if s.suppressed > 0 {
			m["detect_rule_suppressed_"+s.meta.ID] = s.suppressed
		}
		if s.allowlisted > 0 {
			m["detect_rule_allowlisted_"+s.meta.ID] = s.allowlisted
		}
	}
	return m
}

func (e *Engine) allowlistedBy(s *ruleSlot, ev *event.Event) bool {
	if ev.Process != nil && len(s.allowExe) > 0 && anyMatch(s.allowExe, ev.Process.Exe) {
		return true
	}
	if c := ev.Container; c != nil {
		if len(s.allowCgroup) > 0 && anyMatch(s.allowCgroup, c.CgroupPath) {
			return true
		}
		if c.Image != "" && c.Image != event.Unknown && len(s.allowImage) > 0 && anyMatch(s.allowImage, c.Image) {
			return true
		}
	}
	return false
}

// emitFinding is Context.Emit: allowlists, aggregation, then the sink.
func (e *Engine) emitFinding(s *ruleSlot, now time.Time, ev *event.Event, r *Report) {
	if e.allowlistedBy(s, ev) {
		s.allowlisted++
		e.allowlisted++
		return
	}
	sev := s.meta.Severity
	if r.Severity != 0 && !s.pinned {
		sev = r.Severity
	}
	actor := "host"
	if ev.Container != nil {
		actor = ev.Container.ID
	}
	key := s.meta.ID + "\x00" + actor + "\x00" + r.Key
	if a, ok := e.agg.Get(key); ok {
		// A repeat that raises the severity is news: it is emitted now, not
		// folded into a follow-up at the end of the window.
		if now.Sub(a.start) < e.window && sev <= a.sev {
			a.count++
			a.sev = sevMax(a.sev, sev)
			a.lastTime, a.lastProc, a.lastCtr = ev.Time, ev.Process, ev.Container
			a.lastExpl = r.Explanation
			a.lastSeen = now
			if t := now.Add(e.idle); e.next.IsZero() || t.Before(e.next) {
				e.next = t
			}
			if len(a.evidence) < maxEvidence { // a repeat past the evidence bound copies nothing
				a.evidence = append(a.evidence, snapshot(ev))
			}
			s.suppressed++
			e.suppressed++
			return
		}
		e.agg.Delete(key)
		e.closeAggregate(a)
	}
	f := &event.Finding{
		Rule:        s.meta.ID,
		Title:       s.meta.Title,
		Severity:    sev,
		MITRE:       s.meta.MITRE,
		Description: s.meta.Description,
		Explanation: r.Explanation,
		Count:       1,
		Attrs:       r.Attrs,
	}
	f.Evidence = append(f.Evidence, snapshot(ev))
	for _, rel := range r.Related {
		if rel != nil && len(f.Evidence) < maxEvidence {
			f.Evidence = append(f.Evidence, snapshot(rel))
		}
	}
	out := &event.Event{Kind: event.KindFinding, Time: ev.Time, Process: ev.Process, Container: ev.Container, Finding: f}
	s.fired++
	e.findings++
	e.send(out)
	e.agg.Put(key, &aggEntry{slot: s, start: now, count: 1, reported: 1, sev: sev, first: out, lastSeen: now})
	if end := now.Add(e.window); e.next.IsZero() || end.Before(e.next) {
		e.next = end
	}
}

// closeAggregate emits a follow-up for the repeats a counted since its last
// report, if any, with the evidence gathered since.
func (e *Engine) closeAggregate(a *aggEntry) {
	n := a.count - a.reported
	if n <= 0 {
		return
	}
	first := a.first.Finding
	attrs := make(map[string]string, len(first.Attrs)+2)
	for k, v := range first.Attrs {
		attrs[k] = v
	}
	attrs["aggregate"] = "follow-up"
	attrs["first_seen"] = a.first.Time.UTC().Format(time.RFC3339Nano)
	f := &event.Finding{
		Rule:        first.Rule,
		Title:       first.Title,
		Severity:    a.sev,
		MITRE:       first.MITRE,
		Description: first.Description,
		Explanation: fmt.Sprintf("%s; %d occurrence(s) since the first at %s", strings.TrimSuffix(a.lastExpl, "."), n,
			a.first.Time.UTC().Format(time.RFC3339)),
		Count:    n,
		Evidence: a.evidence,
		Attrs:    attrs,
	}
	a.reported = a.count
	a.evidence = nil
	a.slot.fired++
	e.followUps++
	e.send(&event.Event{Kind: event.KindFinding, Time: a.lastTime, Process: a.lastProc, Container: a.lastCtr, Finding: f})
}

func (e *Engine) send(ev *event.Event) {
	if e.emit == nil {
		e.noSink++
		return
	}
	e.emit(ev)
}

// snapshot copies ev and its payload so that evidence survives reuse of the
// event by the pipeline. Process and Container are immutable snapshots and
// are shared.
func snapshot(ev *event.Event) *event.Event {
	c := *ev
	if ev.File != nil {
		f := *ev.File
		c.File = &f
	}
	if ev.Net != nil {
		n := *ev.Net
		c.Net = &n
	}
	if ev.Sys != nil {
		s := *ev.Sys
		c.Sys = &s
	}
	if ev.GPU != nil {
		g := *ev.GPU
		c.GPU = &g
	}
	if ev.Exit != nil {
		x := *ev.Exit
		c.Exit = &x
	}
	return &c
}
