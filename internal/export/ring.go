package export

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Ring is the one bounded in-memory ring of the export layer. The pipeline
// publishes into it; every subscriber (gRPC stream, file exporter) reads it at
// its own pace through a sequence-number cursor. A reader that falls more than
// the ring's size behind loses the overwritten events and is told how many.
//
// Sequence numbers start at 1 and are assigned by Publish. Together with the
// ring's instance id they form the resume cursor of the gRPC feed.
//
// Losses are counted in events, not records: a Lost record that falls out of
// the ring before a reader saw it takes its count with it, so the reader is
// told about the events it stood for too (see Gap).
//
// Ownership: a published *event.Event belongs to the ring and is shared by
// all readers; nobody may modify it after Publish.
//
// It is safe for concurrent use by multiple goroutines.
type Ring struct {
	instance string

	mu   sync.RWMutex
	buf  []*event.Event
	mask uint64 // len(buf)-1 when a power of two, else 0
	head uint64 // seq of the newest event; 0 when empty

	// marks index the Lost records by seq with the cumulative event count
	// through them (every other record counts 1), so the events between two
	// sequence numbers can be counted after the records are gone. It keeps
	// the last maxMarks; evicted is the newest one dropped from it.
	marks      []lostMark
	markStart  int
	evicted    lostMark
	hasEvicted bool

	// wakers are the notification channels of blocked readers, replaced
	// copy-on-write so Publish reads them without taking a lock.
	wakers   atomic.Pointer[[]chan struct{}]
	wakersMu sync.Mutex
}

type lostMark struct {
	seq uint64 // seq of the Lost record
	cum uint64 // events through seq, the record's count included
}

// maxMarks bounds the Lost-record index: a reader resuming from a cursor
// older than the last maxMarks Lost records gets a lower bound (Gap.Approx).
// The pipeline reports losses at most once a second per source, so this is
// over an hour of continuous loss.
const maxMarks = 4096

// NewRing returns a ring that retains the last size events. A size below 1 is
// raised to 1.
func NewRing(size int) *Ring {
	if size < 1 {
		size = 1
	}
	r := &Ring{buf: make([]*event.Event, size), instance: newInstanceID()}
	if size&(size-1) == 0 {
		r.mask = uint64(size - 1)
	}
	empty := []chan struct{}{}
	r.wakers.Store(&empty)
	return r
}

func newInstanceID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on Linux ≥ 3.17; keep a usable id anyway.
		return "kestrel-instance"
	}
	return hex.EncodeToString(b[:])
}

// InstanceID identifies this ring, and so this sensor run, in cursors.
func (r *Ring) InstanceID() string { return r.instance }

// Size returns how many events the ring retains.
func (r *Ring) Size() int { return len(r.buf) }

func (r *Ring) slot(seq uint64) uint64 {
	if r.mask != 0 || len(r.buf) == 1 {
		return seq & r.mask
	}
	return seq % uint64(len(r.buf))
}

// Publish appends ev, assigning ev.Seq, and wakes waiting readers. It never
// blocks on a reader and allocates nothing; it is O(1) in the ring size and
// O(readers) for the non-blocking wakeups. A nil ev is ignored.
func (r *Ring) Publish(ev *event.Event) {
	if ev == nil {
		return
	}
	r.mu.Lock()
	r.head++
	ev.Seq = r.head
	r.buf[r.slot(r.head)] = ev
	if ev.Kind == event.KindLost && ev.Lost != nil {
		r.markLocked(ev.Seq, ev.Lost.Count)
	}
	r.mu.Unlock()
	for _, c := range *r.wakers.Load() {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Head returns the sequence number of the newest event (0 when empty).
func (r *Ring) Head() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.head
}

// Oldest returns the sequence number of the oldest retained event (0 when
// empty).
func (r *Ring) Oldest() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.oldestLocked()
}

func (r *Ring) oldestLocked() uint64 {
	if r.head == 0 {
		return 0
	}
	if r.head <= uint64(len(r.buf)) {
		return 1
	}
	return r.head - uint64(len(r.buf)) + 1
}

// RingStats is a snapshot of the ring's counters.
type RingStats struct {
	Size, Fill   uint64
	Head, Oldest uint64
	Published    uint64 // = Head
	Overwritten  uint64 // events that fell out of the ring
	InstanceID   string
}

// Stats returns a snapshot of the ring's counters.
func (r *Ring) Stats() RingStats {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := RingStats{Size: uint64(len(r.buf)), Head: r.head, Oldest: r.oldestLocked(), Published: r.head, InstanceID: r.instance}
	if r.head > 0 {
		s.Fill = r.head - s.Oldest + 1
	}
	if r.head > s.Size {
		s.Overwritten = r.head - s.Size
	}
	return s
}

func (r *Ring) markLocked(seq, count uint64) {
	m := lostMark{seq: seq, cum: r.cumThroughLocked(seq-1) + count}
	if len(r.marks) < maxMarks {
		r.marks = append(r.marks, m)
		return
	}
	r.evicted, r.hasEvicted = r.marks[r.markStart], true
	r.marks[r.markStart] = m
	r.markStart = (r.markStart + 1) % maxMarks
}

// cumThroughLocked returns how many events the records 1..seq stand for: one
// each, and its count for a Lost record. exact is false when seq is older
// than the Lost records the index still holds and some were evicted after it.
func (r *Ring) cumThroughLocked(seq uint64) uint64 {
	c, _ := r.cumThroughExactLocked(seq)
	return c
}

func (r *Ring) cumThroughExactLocked(seq uint64) (cum uint64, exact bool) {
	n := len(r.marks)
	at := func(i int) lostMark { return r.marks[(r.markStart+i)%n] }
	// The last mark with mark.seq <= seq.
	i := sort.Search(n, func(i int) bool { return at(i).seq > seq }) - 1
	switch {
	case i >= 0:
		m := at(i)
		return m.cum + (seq - m.seq), true
	case !r.hasEvicted:
		return seq, true
	case seq >= r.evicted.seq:
		return r.evicted.cum + (seq - r.evicted.seq), true
	default:
		// Evicted marks lie after seq; count as if they were before it (a
		// lower bound of what the reader lost).
		return seq + (r.evicted.cum - r.evicted.seq), false
	}
}

// Gap is what a reader missed because the ring overwrote it.
type Gap struct {
	// Skipped is how many sequence numbers were overwritten: the reader's
	// next sequence number is from+Skipped.
	Skipped uint64
	// Lost is how many events those records stood for: one per record, and
	// the count of each Lost record among them.
	Lost uint64
	// Approx is set when Lost is a lower bound: the reader's position was
	// older than the Lost records the ring's index keeps.
	Approx bool
}

// Read copies into dst the events from sequence number from onwards, at most
// len(dst), and returns how many it copied and what the reader missed
// between from and the oldest retained event. The events copied start at
// from+gap.Skipped. Read never blocks.
func (r *Ring) Read(from uint64, dst []*event.Event) (n int, gap Gap) {
	if from == 0 {
		from = 1
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.head == 0 || from > r.head {
		return 0, gap
	}
	if oldest := r.oldestLocked(); from < oldest {
		before, exact := r.cumThroughExactLocked(from - 1)
		gap = Gap{Skipped: oldest - from, Lost: r.cumThroughLocked(oldest-1) - before, Approx: !exact}
		from = oldest
	}
	for seq := from; seq <= r.head && n < len(dst); seq++ {
		dst[n] = r.buf[r.slot(seq)]
		n++
	}
	return n, gap
}

// Waiter is a reader's wakeup registration. C receives a value after each
// Publish (coalesced: one pending value at most). Close it when done.
type Waiter struct {
	C <-chan struct{}
	c chan struct{}
	r *Ring
}

// NewWaiter registers a wakeup channel for a reader.
func (r *Ring) NewWaiter() *Waiter {
	c := make(chan struct{}, 1)
	r.wakersMu.Lock()
	old := *r.wakers.Load()
	next := make([]chan struct{}, len(old), len(old)+1)
	copy(next, old)
	next = append(next, c)
	r.wakers.Store(&next)
	r.wakersMu.Unlock()
	return &Waiter{C: c, c: c, r: r}
}

// Close unregisters w. It is safe to call more than once.
func (w *Waiter) Close() {
	r := w.r
	r.wakersMu.Lock()
	defer r.wakersMu.Unlock()
	old := *r.wakers.Load()
	next := make([]chan struct{}, 0, len(old))
	for _, c := range old {
		if c != w.c {
			next = append(next, c)
		}
	}
	r.wakers.Store(&next)
}
