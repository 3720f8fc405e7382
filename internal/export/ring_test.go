package export

import (
	"sync"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

func TestRingReadAndOverwrite(t *testing.T) {
	for _, size := range []int{1, 5, 8} { // odd size, power of two
		r := NewRing(size)
		if r.Head() != 0 || r.Oldest() != 0 {
			t.Fatalf("size %d: empty ring head %d oldest %d", size, r.Head(), r.Oldest())
		}
		buf := make([]*event.Event, 64)
		if n, gap := r.Read(1, buf); n != 0 || gap != (Gap{}) {
			t.Fatalf("size %d: read of empty ring: %d, %+v", size, n, gap)
		}
		const total = 20
		for i := 0; i < total; i++ {
			ev := &event.Event{Kind: event.KindExec}
			r.Publish(ev)
			if ev.Seq != uint64(i+1) {
				t.Fatalf("size %d: seq %d; want %d", size, ev.Seq, i+1)
			}
		}
		oldest := uint64(total - size + 1)
		tests := []struct {
			from         uint64
			wantN        int
			wantLost     uint64
			wantFirstSeq uint64
		}{
			{from: 0, wantN: size, wantLost: oldest - 1, wantFirstSeq: oldest},
			{from: 1, wantN: size, wantLost: oldest - 1, wantFirstSeq: oldest},
			{from: oldest, wantN: size, wantFirstSeq: oldest},
			{from: total, wantN: 1, wantFirstSeq: total},
			{from: total + 1, wantN: 0},
		}
		for _, tt := range tests {
			n, gap := r.Read(tt.from, buf)
			if lost := gap.Lost; n != tt.wantN || lost != tt.wantLost || gap.Skipped != lost || gap.Approx {
				t.Errorf("size %d: Read(%d) = %d, %+v; want %d, %d", size, tt.from, n, gap, tt.wantN, tt.wantLost)
				continue
			}
			for i := 0; i < n; i++ {
				if buf[i].Seq != tt.wantFirstSeq+uint64(i) {
					t.Errorf("size %d: Read(%d)[%d].Seq = %d; want %d", size, tt.from, i, buf[i].Seq, tt.wantFirstSeq+uint64(i))
				}
			}
		}
		// A short destination gets a prefix.
		if n, _ := r.Read(oldest, buf[:1]); n != 1 || buf[0].Seq != oldest {
			t.Errorf("size %d: short read got %d (seq %d)", size, n, buf[0].Seq)
		}
		st := r.Stats()
		if st.Fill != uint64(size) || st.Overwritten != uint64(total-size) || st.Head != total || st.Oldest != oldest {
			t.Errorf("size %d: stats %+v", size, st)
		}
	}
}

func TestRingPublishNilAndInstance(t *testing.T) {
	r := NewRing(0)
	r.Publish(nil)
	if r.Head() != 0 || r.Size() != 1 {
		t.Fatalf("head %d size %d", r.Head(), r.Size())
	}
	if NewRing(4).InstanceID() == r.InstanceID() || len(r.InstanceID()) != 24 {
		t.Errorf("instance ids %q and another must differ and be 24 hex digits", r.InstanceID())
	}
}

func TestRingWaiterWakesAndCoalesces(t *testing.T) {
	r := NewRing(8)
	w := r.NewWaiter()
	for i := 0; i < 3; i++ {
		r.Publish(&event.Event{})
	}
	select {
	case <-w.C:
	case <-time.After(time.Second):
		t.Fatal("no wakeup after Publish")
	}
	select {
	case <-w.C:
		t.Fatal("three publishes gave more than one pending wakeup")
	default:
	}
	w.Close()
	w.Close()
	r.Publish(&event.Event{})
	select {
	case <-w.C:
		t.Fatal("closed waiter was woken")
	default:
	}
}

// Concurrent publishers and readers: every reader sees strictly increasing
// sequence numbers, and what it did not see it was told it lost.
func TestRingConcurrent(t *testing.T) {
	const publishers, each = 4, 2000
	r := NewRing(64)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	type result struct{ seen, lost uint64 }
	results := make(chan result, 2)
	for i := 0; i < 2; i++ {
		w := r.NewWaiter()
		go func() {
			defer w.Close()
			buf := make([]*event.Event, 16)
			var next, seen, lostSum uint64 = 1, 0, 0
			for {
				n, gap := r.Read(next, buf)
				lostSum += gap.Lost
				next += gap.Skipped
				for _, ev := range buf[:n] {
					if ev.Seq != next {
						t.Errorf("seq %d; want %d", ev.Seq, next)
					}
					next++
					seen++
				}
				if n == 0 {
					select {
					case <-w.C:
					case <-stop:
						if r.Head() < next {
							results <- result{seen, lostSum}
							return
						}
					}
				}
			}
		}()
	}
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r.Publish(&event.Event{})
			}
		}()
	}
	wg.Wait()
	close(stop)
	for i := 0; i < 2; i++ {
		res := <-results
		if res.seen+res.lost != publishers*each {
			t.Errorf("reader saw %d and lost %d; want them to add up to %d", res.seen, res.lost, publishers*each)
		}
	}
}

func TestRingPublishDoesNotAllocate(t *testing.T) {
	r := NewRing(1024)
	w := r.NewWaiter()
	defer w.Close()
	ev := &event.Event{}
	if a := testing.AllocsPerRun(1000, func() { r.Publish(ev) }); a != 0 {
		t.Fatalf("Publish allocates %.1f per call; want 0", a)
	}
}

func BenchmarkRingPublish(b *testing.B) {
	r := NewRing(65536)
	for i := 0; i < 4; i++ { // four idle subscribers to wake
		defer r.NewWaiter().Close()
	}
	ev := &event.Event{Kind: event.KindOpen}
	b.ReportAllocs()
	for b.Loop() {
		r.Publish(ev)
	}
}

// A Lost record that falls out of the ring takes its count with it: a
// reader that missed it is told about every event it stood for (issue 14:
// 113,712 events went unaccounted when each counted as one).
func TestRingGapCountsLostRecords(t *testing.T) {
	r := NewRing(4)
	lost := func(n uint64) *event.Event {
		return &event.Event{Kind: event.KindLost, Lost: &event.Lost{Source: "queue", Count: n}}
	}
	// seq: 1 ev, 2 lost(100), 3 ev, 4 lost(7), 5 ev, 6 ev, 7 lost(0), 8 ev
	for _, ev := range []*event.Event{{}, lost(100), {}, lost(7), {}, {}, lost(0), {}} {
		r.Publish(ev)
	}
	// The ring holds 5..8; each reader position misses what lies before 5.
	buf := make([]*event.Event, 8)
	for _, tt := range []struct {
		from      uint64
		wantSkip  uint64
		wantLost  uint64
		wantFirst uint64
	}{
		{1, 4, 1 + 100 + 1 + 7, 5},
		{2, 3, 100 + 1 + 7, 5},
		{3, 2, 1 + 7, 5},
		{4, 1, 7, 5},
		{5, 0, 0, 5},
		{8, 0, 0, 8},
	} {
		n, gap := r.Read(tt.from, buf)
		if gap.Skipped != tt.wantSkip || gap.Lost != tt.wantLost || gap.Approx || n == 0 || buf[0].Seq != tt.wantFirst {
			t.Errorf("Read(%d) = %d events from %d, %+v; want from %d, skipped %d, lost %d", tt.from, n, buf[0].Seq, gap, tt.wantFirst, tt.wantSkip, tt.wantLost)
		}
	}
	// Reader view: whatever it reads plus what it is told it lost is what
	// was generated: 5 plain events and 107 in Lost records.
	var got uint64
	n, gap := r.Read(1, buf)
	got += gap.Lost
	for _, ev := range buf[:n] {
		if ev.Kind == event.KindLost {
			got += ev.Lost.Count
		} else {
			got++
		}
	}
	if got != 5+107 {
		t.Errorf("received + lost = %d; want %d", got, 5+107)
	}
}

// Past the index bound the count is a lower bound, and says so.
func TestRingGapBeyondTheIndexIsMarkedApprox(t *testing.T) {
	r := NewRing(2)
	r.Publish(&event.Event{})
	for i := 0; i < maxMarks+2; i++ {
		r.Publish(&event.Event{Kind: event.KindLost, Lost: &event.Lost{Count: 2}})
	}
	buf := make([]*event.Event, 2)
	if _, gap := r.Read(1, buf); !gap.Approx {
		t.Errorf("Read(1) = %+v; want Approx (the first marks were evicted)", gap)
	}
	head := r.Head()
	// A position after the evicted marks is exact again.
	if _, gap := r.Read(head-3, buf); gap.Approx || gap.Lost != 4 {
		t.Errorf("Read(head-3) = %+v; want exactly 4 lost (two records of 2)", gap)
	}
}
