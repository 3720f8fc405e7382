// Package detect runs the rule catalog over the enriched event stream and
// produces findings.
//
// Rules are Go code. Each sees the enriched events of the kinds it asks for,
// once and in order, keeps small bounded state of its own, and reports
// through the Context. The package never imports the kernel side: everything
// it needs arrives on the event (process, lineage, container, GPU ownership).
//
// The Engine owns the rules, their shared State and the aggregation of
// bursts: the same (rule, container or host, key) within the aggregate window
// is emitted once, and a follow-up finding carries the count of the repeats.
//
// Adding a rule: write rule_<family>_<name>.go with a type implementing Rule
// and a constructor func(*Settings) Rule, then add the constructor to the
// catalog slice in rules.go. That one line is the whole registration.
package detect

import (
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Meta describes a rule for the catalog, the config and every finding.
type Meta struct {
	// ID is the catalog id, e.g. "ESC-001".
	ID string
	// Title is a short name of what the rule sees.
	Title string
	// MITRE holds ATT&CK and ATLAS technique ids.
	MITRE []string
	// Severity is the default severity of the rule's findings.
	Severity event.Severity
	// Description says what the rule sees, why it matters, and which core
	// fallback it uses where an extension probe is missing.
	Description string
	// Knobs names the detect config keys the rule reads.
	Knobs []string
	// Kinds are the event kinds the rule is called for.
	Kinds []event.Kind
}

// Rule is one detection. Eval is called from a single goroutine; a rule
// needs no locking for its own state, but must keep that state bounded and
// must not allocate for events that produce no finding.
type Rule interface {
	Meta() Meta
	Eval(ctx *Context, ev *event.Event)
}

// Report is what a rule hands to Context.Emit for one finding.
type Report struct {
	// Key tells findings of one rule apart within one container (or the
	// host): repeats with the same key inside the aggregate window are
	// counted, not emitted. Include a pid for per-process findings.
	Key string
	// Severity raises or lowers the rule's default for this finding; zero
	// keeps the default. A severity set in the config wins over both.
	Severity event.Severity
	// Explanation is one sentence naming the concrete thing seen.
	Explanation string
	// Attrs carries rule-specific facts.
	Attrs map[string]string
	// Related are earlier events that belong to the evidence (the event
	// passed to Emit is always the first piece of evidence).
	Related []*event.Event
}

// Context is what a rule sees besides the event: the engine's shared state,
// the rule's effective settings, and the way to report. One Context belongs
// to one rule; it is reused for every event.
type Context struct {
	// Now is the event time (not the wall clock), so replays are deterministic.
	Now time.Time
	// State is shared, engine-maintained state (GPU owners, containers,
	// processes). Rules may read it and update the parts documented as theirs.
	State *State
	// Settings is the compiled detect configuration.
	Settings *Settings
	// Severity is the rule's effective default severity after config overrides.
	Severity event.Severity

	rule *ruleSlot
	eng  *Engine
}

// Emit reports a finding about ev. Count and evidence aggregation is done by
// the engine: a rule may call Emit for every event of a burst.
func (c *Context) Emit(ev *event.Event, r Report) { c.eng.emitFinding(c.rule, c.Now, ev, &r) }
