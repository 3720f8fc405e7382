package proc

import (
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// MaxLineage bounds event.Process.Ancestors.
const MaxLineage = 32

// TableOptions configure a Table. Zero values get defaults.
type TableOptions struct {
	// MaxEntries bounds the table (default 65536); the least recently used
	// entry is evicted beyond it, and evictions are counted.
	MaxEntries int
	// Retention is how long an exited process stays (default 5m), so that
	// a re-parented child still shows its fork-time lineage.
	Retention time.Duration
}

// Entry is one process in the table.
type Entry struct {
	// Snap is the current immutable snapshot. Replace it (copy on change);
	// never modify it.
	Snap *event.Process
	// Thread is a cached variant of Snap for the last thread (TID, Comm)
	// seen, so that events of a busy thread reuse one snapshot.
	Thread *event.Process
	// Partial is set when the entry was built from an event's partial data
	// because /proc could not be read.
	Partial bool
	// Data belongs to the Table's user (the enricher keeps the container
	// reference here).
	Data any

	// kids is the lineage of a child of Snap (kidsOf), built once and
	// shared by every child forked or exec'd under this snapshot.
	kids   []event.Ancestor
	kidsOf *event.Process

	exited     bool
	exitAt     time.Time
	prev, next *Entry
}

// Exited reports whether the process has exited (and is retained).
func (e *Entry) Exited() bool { return e.exited }

// Table is the process table: pid (tgid) → Entry, bounded by an LRU.
//
// A Table is not safe for concurrent use; its owner serialises access.
type Table struct {
	opts TableOptions
	m    map[uint32]*Entry
	// head is the most recently used entry, tail the least.
	head, tail *Entry
	// exits is a FIFO of exited pids in exit order, for Expire.
	exits []exitRec

	evicted, expired uint64
}

type exitRec struct {
	pid uint32
	at  time.Time
	e   *Entry
}

// NewTable returns an empty Table.
func NewTable(opts *TableOptions) *Table {
	t := &Table{m: map[uint32]*Entry{}}
	if opts != nil {
		t.opts = *opts
	}
	if t.opts.MaxEntries <= 0 {
		t.opts.MaxEntries = 65536
	}
	if t.opts.Retention <= 0 {
		t.opts.Retention = 5 * time.Minute
	}
	return t
}

// Len returns the number of entries, exited ones included.
func (t *Table) Len() int { return len(t.m) }

// Evicted returns how many entries the LRU limit pushed out.
func (t *Table) Evicted() uint64 { return t.evicted }

// Expired returns how many exited entries were dropped after Retention.
func (t *Table) Expired() uint64 { return t.expired }

// Get returns the entry of pid and marks it recently used, or nil.
func (t *Table) Get(pid uint32) *Entry {
	e := t.m[pid]
	if e != nil && e != t.head {
		t.unlink(e)
		t.pushFront(e)
	}
	return e
}

// Peek returns the entry of pid without touching the LRU order, or nil.
func (t *Table) Peek(pid uint32) *Entry { return t.m[pid] }

// Put installs snap as a new process instance (a fork, an exec of an unknown
// pid, a /proc read), replacing any entry of the same pid, and returns its
// entry. The least recently used entry is evicted if the table is full.
func (t *Table) Put(snap *event.Process) *Entry {
	if old := t.m[snap.PID]; old != nil {
		t.remove(old)
	}
	for len(t.m) >= t.opts.MaxEntries && t.tail != nil {
		t.remove(t.tail)
		t.evicted++
	}
	e := &Entry{Snap: snap}
	t.m[snap.PID] = e
	t.pushFront(e)
	return e
}

// Exit marks pid exited at now; it stays for Retention.
func (t *Table) Exit(pid uint32, now time.Time) *Entry {
	e := t.m[pid]
	if e == nil || e.exited {
		return e
	}
	e.exited, e.exitAt = true, now
	t.exits = append(t.exits, exitRec{pid: pid, at: now, e: e})
	return e
}

// Expire drops entries that exited more than Retention before now.
func (t *Table) Expire(now time.Time) {
	n := 0
	for _, r := range t.exits {
		if now.Sub(r.at) < t.opts.Retention {
			break
		}
		n++
		if e := t.m[r.pid]; e == r.e {
			t.remove(e)
			t.expired++
		}
	}
	if n > 0 {
		t.exits = append(t.exits[:0], t.exits[n:]...)
	}
	// Entries evicted or replaced leave stale records behind; keep the
	// FIFO bounded by the table.
	if len(t.exits) > 2*t.opts.MaxEntries {
		keep := t.exits[:0]
		for _, r := range t.exits {
			if t.m[r.pid] == r.e {
				keep = append(keep, r)
			}
		}
		t.exits = keep
	}
}

// Lineage returns the ancestors of a process whose parent is ppid: the
// parent first, then the parent's own lineage, at most MaxLineage long. An
// unknown parent ends the lineage with its pid and an empty exe and comm.
// The slice is shared by the children of one parent snapshot: it must not
// be modified.
func (t *Table) Lineage(ppid uint32) []event.Ancestor {
	if ppid == 0 {
		return nil
	}
	p := t.m[ppid]
	if p == nil {
		return []event.Ancestor{{PID: ppid}}
	}
	if p.kidsOf != p.Snap {
		p.kids, p.kidsOf = childLineage(p.Snap), p.Snap
	}
	return p.kids
}

// childLineage returns the lineage of a child of parent: parent, then its
// own ancestors, at most MaxLineage long.
func childLineage(parent *event.Process) []event.Ancestor {
	up := parent.Ancestors
	if len(up) > MaxLineage-1 {
		up = up[:MaxLineage-1]
	}
	out := make([]event.Ancestor, 0, 1+len(up))
	out = append(out, AncestorOf(parent))
	for _, a := range up {
		if a.PID == parent.PID {
			break // a cycle from pid reuse
		}
		out = append(out, a)
	}
	return out
}

// AncestorOf returns p as a lineage step. Kernel threads, and processes
// whose exe is unreadable (a restricted PID 1), have an empty Exe; their
// Comm still names them.
func AncestorOf(p *event.Process) event.Ancestor {
	return event.Ancestor{PID: p.PID, Exe: p.Exe, Comm: p.Comm}
}

// Range calls fn for every entry until fn returns false.
func (t *Table) Range(fn func(pid uint32, e *Entry) bool) {
	for pid, e := range t.m {
		if !fn(pid, e) {
			return
		}
	}
}

func (t *Table) remove(e *Entry) {
	t.unlink(e)
	delete(t.m, e.Snap.PID)
}

func (t *Table) pushFront(e *Entry) {
	e.prev, e.next = nil, t.head
	if t.head != nil {
		t.head.prev = e
	}
	t.head = e
	if t.tail == nil {
		t.tail = e
	}
}

func (t *Table) unlink(e *Entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else if t.head == e {
		t.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else if t.tail == e {
		t.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// Seed installs processes read from /proc, parents before children so that
// each snapshot carries its lineage, and returns their entries in the order
// of procs (an entry may be nil if the table evicted it again).
func (t *Table) Seed(procs []*Proc) []*Entry {
	idx := make(map[uint32]int, len(procs))
	snaps := make([]*event.Process, len(procs))
	for i, p := range procs {
		snaps[i] = p.Snapshot()
		idx[p.PID] = i
	}
	state := make([]uint8, len(procs)) // 0 new, 1 on the stack, 2 done
	var visit func(i int)
	visit = func(i int) {
		state[i] = 1
		pp := snaps[i].PPID
		j, ok := idx[pp]
		if ok && state[j] == 0 {
			visit(j)
		}
		switch {
		case ok && state[j] == 2:
			snaps[i].Ancestors = childLineage(snaps[j])
		default:
			snaps[i].Ancestors = t.Lineage(pp)
		}
		state[i] = 2
	}
	for i := range procs {
		if state[i] == 0 {
			visit(i)
		}
	}
	out := make([]*Entry, len(procs))
	for i, s := range snaps {
		out[i] = t.Put(s)
	}
	for i := range out {
		if t.m[snaps[i].PID] != out[i] {
			out[i] = nil
		}
	}
	return out
}
