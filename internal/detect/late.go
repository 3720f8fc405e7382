package detect

import (
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Late lineage: NVML lists a GPU owner up to a sampling interval after it
// started, so recent execs and connects of its descendants are kept and
// judged again when the owner appears (GPU-001, GPU-006).

// lateCand is a candidate event kept for late lineage. Process and
// Container are immutable snapshots; the Net payload is copied.
type lateCand struct {
	kind  event.Kind
	t     time.Time
	p     *event.Process
	c     *event.Container
	net   event.Net
	owner uint32 // set when matched
}

// event rebuilds the candidate as an event (allocates; findings only).
func (l *lateCand) event() *event.Event {
	ev := &event.Event{Kind: l.kind, Time: l.t, Process: l.p, Container: l.c}
	if l.kind == event.KindConnect {
		n := l.net
		ev.Net = &n
	}
	return ev
}

// remember keeps ev as a late-lineage candidate when it is one.
func (a *aiState) remember(st *State, ev *event.Event) {
	p := ev.Process
	switch ev.Kind {
	case event.KindExec:
		if ev.Container == nil || !isGPUChild(p) {
			return
		}
	case event.KindConnect:
		n := ev.Net
		if n == nil || !n.DAddr.IsValid() || n.Class == event.ClassLoopback || n.DAddr.IsLoopback() ||
			a.s.EgressAllowed(ev.Container, n.DAddr, n.DPort) {
			return
		}
	default:
		return
	}
	if _, ok := gpuLineage(st, p, ev.Container); ok {
		return // judged now
	}
	l := &a.ring[a.ringN%lateRing]
	a.ringN++
	*l = lateCand{kind: ev.Kind, t: ev.Time, p: p, c: ev.Container}
	if ev.Net != nil {
		l.net = *ev.Net
	}
}

// lateMatches collects the remembered events of the last lateWindow, and
// since the owner's current image was exec'd, whose process descends from
// owner pid in the same container (or, for connects, is the owner). Events
// before that exec belong to the image the pid ran before (a pyenv or
// conda shim that execs the server, say).
func (a *aiState) lateMatches(pid uint32, cid string, since, now time.Time) {
	for i := range a.ring {
		l := &a.ring[i]
		if l.p == nil || now.Sub(l.t) > lateWindow || l.t.Before(since) || cidOf(l.c) != cid {
			continue
		}
		hit := l.p.PID == pid && l.kind == event.KindConnect
		for _, an := range l.p.Ancestors {
			hit = hit || an.PID == pid
		}
		if hit {
			m := *l
			m.owner = pid
			a.late = append(a.late, m)
			l.p = nil
		}
	}
}
