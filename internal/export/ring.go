package export

import (
	"crypto/rand"
	"encoding/hex"
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

	// wakers are the notification channels of blocked readers, replaced
	// copy-on-write so Publish reads them without taking a lock.
	wakers   atomic.Pointer[[]chan struct{}]
	wakersMu sync.Mutex
}

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

// Read copies into dst the events from sequence number from onwards, at most
// len(dst), and returns how many it copied and how many events between from
// and the oldest retained one were lost to overwriting. The events copied
// start at from+lost. Read never blocks.
func (r *Ring) Read(from uint64, dst []*event.Event) (n int, lost uint64) {
	if from == 0 {
		from = 1
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.head == 0 || from > r.head {
		return 0, 0
	}
	if oldest := r.oldestLocked(); from < oldest {
		lost = oldest - from
		from = oldest
	}
	for seq := from; seq <= r.head && n < len(dst); seq++ {
		dst[n] = r.buf[r.slot(seq)]
		n++
	}
	return n, lost
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
