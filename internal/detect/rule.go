// Package detect runs the rule catalog over the enriched event stream and
// produces findings.
//
// Rules are Go code. Each sees every enriched event once, in order, keeps
// small bounded state of its own, and emits findings through the Context.
// The package never imports the kernel side: everything it needs arrives on
// the event (process, lineage, container, GPU ownership).
package detect

import (
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Meta describes a rule for the catalog, the config and every finding.
type Meta struct {
	ID          string
	Title       string
	MITRE       []string
	Severity    event.Severity
	Description string
}

// Rule is one detection. Eval is called from a single goroutine; a rule
// needs no locking for its own state, but must keep that state bounded.
type Rule interface {
	Meta() Meta
	Eval(ctx *Context, ev *event.Event)
}

// Context is what a rule sees besides the event: the engine's shared state,
// the rule's effective settings, and the way to report.
type Context struct {
	// Now is the event time (not the wall clock), so replays are deterministic.
	Now time.Time
	// State is shared, engine-maintained state (GPU owners, containers,
	// models, taint). Rules may read it and update the parts documented as
	// theirs.
	State *State
	// Severity is the rule's effective default severity after config overrides.
	Severity event.Severity

	emit func(f *event.Finding, ev *event.Event)
}

// Emit reports a finding about ev. Count and evidence aggregation is done by
// the engine: a rule may call Emit for every event of a burst.
func (c *Context) Emit(f *event.Finding, ev *event.Event) { c.emit(f, ev) }
