package runtime

// Periodic egress reports: the kernel sums the bytes sent on every socket
// that called connect() into the egress_socks map (bpf/net.bpf.h) and
// reports each socket once more, closed, when it is released. Between those,
// user space walks the map every capture.egress_report_interval and emits a
// KindEgress event for each socket whose count grew since its last report.
//
// Wiring: each Sensor holds an egressReporter; Sensor.tick calls egressTick
// after each drain, and Sensor.Counters merges egressReporter.counters.

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// net_stats indexes (enum net_stat in bpf/net.bpf.h).
const (
	netSockTracked    = 0
	netSockReleased   = 1
	netSockInsertFail = 2
	netPendingFull    = 3
	netRingbufFull    = 4
	netInflightFull   = 5
	netStatCount      = 6
)

var netStatNames = [netStatCount]string{
	"egress_sockets_tracked", "egress_sockets_released", "egress_insert_failed",
	"connect_pending_full", "net_ringbuf_full", "connect_inflight_full",
}

// Lost sources reported by the egress reporter.
const (
	lostEgressEvicted  = "egress_evicted"   // sockets pushed out of the LRU map before release
	lostEgressUntraced = "egress_untracked" // sockets the kernel could not start accounting
)

// egressReporter is the per-sensor state of the periodic report. Only the
// reader goroutine (Sensor.Run) uses it.
type egressReporter struct {
	next time.Time
	// last holds the byte count last reported per socket cookie; it is
	// pruned to the sockets still in the map at every walk, so it is bounded
	// by the map's size. last and seen are made on first use.
	last map[uint64]uint64
	seen map[uint64]struct{}
	// keys and vals are the batch lookup buffers.
	keys []uint64
	vals [][egressValSize]byte

	mu       sync.Mutex // guards the fields below (read by counters)
	stats    [netStatCount]uint64
	live     uint64
	evicted  uint64
	reported [netStatCount]uint64 // totals already emitted as Lost, by stat
	errors   uint64
}

// egressTick reports at most once per EgressReportInterval.
func egressTick(s *Sensor, now time.Time, emit func(*event.Event)) {
	if s.coll == nil {
		return
	}
	socks, stats := s.coll.Maps["egress_socks"], s.coll.Maps["net_stats"]
	if socks == nil || stats == nil {
		return
	}
	r := &s.egress
	if now.Before(r.next) {
		return
	}
	r.next = now.Add(s.cfg.EgressReportInterval.D())
	if err := r.report(&s.dec, socks, stats, now, emit); err != nil {
		r.mu.Lock()
		r.errors++
		n := r.errors
		r.mu.Unlock()
		if n <= 10 {
			s.log.Warn("egress report", "error", err)
		}
	}
}

// report emits one KindEgress event per socket whose byte count grew since
// its last report, and Lost events for sockets the kernel lost track of.
func (r *egressReporter) report(dec *decoder, socks, stats *ebpf.Map, now time.Time, emit func(*event.Event)) error {
	// Read the counters before the walk: a socket tracked during the walk
	// can then only make evictions look smaller, never invent one.
	var st [netStatCount]uint64
	if err := sumPerCPU(stats, "net_stats", 0, st[:]); err != nil {
		return err
	}
	if r.last == nil {
		r.last, r.seen = map[uint64]uint64{}, map[uint64]struct{}{}
	}
	clear(r.seen)
	var bad error
	err := r.walk(socks, func(cookie uint64, val []byte) {
		if _, dup := r.seen[cookie]; dup {
			return // a walk may see a key twice when keys are deleted under it
		}
		r.seen[cookie] = struct{}{}
		// Skip the decode (and its allocation) for sockets that did not grow.
		if len(val) == egressValSize && le.Uint64(val[egBytes:]) <= r.last[cookie] {
			return
		}
		ev, err := dec.decode(val)
		if err != nil {
			bad = fmt.Errorf("decode egress_socks[%d]: %w", cookie, err)
			return
		}
		r.last[cookie] = ev.Net.BytesSent
		ev.Time = now
		emit(ev)
	})
	if err != nil {
		return fmt.Errorf("walk egress_socks: %w", err)
	}
	for c := range r.last {
		if _, ok := r.seen[c]; !ok {
			delete(r.last, c)
		}
	}
	var released [1]uint64
	if err := sumPerCPU(stats, "net_stats", netSockReleased, released[:]); err != nil {
		return err
	}
	st[netSockReleased] = released[0]

	live := uint64(len(r.seen))
	var evicted uint64
	if st[netSockTracked] > st[netSockReleased]+live {
		evicted = st[netSockTracked] - st[netSockReleased] - live
	}
	r.mu.Lock()
	r.stats = st
	r.live = live
	if evicted > r.evicted {
		r.evicted = evicted
	}
	lost := []struct {
		source string
		total  uint64
		idx    int
	}{
		{lostEgressEvicted, r.evicted, netSockTracked},
		{lostEgressUntraced, st[netSockInsertFail], netSockInsertFail},
	}
	var out []*event.Event
	for _, l := range lost {
		if l.total > r.reported[l.idx] {
			out = append(out, &event.Event{Kind: event.KindLost, Time: now, Process: &event.Process{},
				Lost: &event.Lost{Source: l.source, Count: l.total - r.reported[l.idx]}})
			r.reported[l.idx] = l.total
		}
	}
	r.mu.Unlock()
	for _, e := range out {
		emit(e)
	}
	return bad
}

// egressBatch is how many sockets one BPF_MAP_LOOKUP_BATCH call returns.
const egressBatch = 256

// walk calls fn for every socket in the map, in batches of egressBatch per
// syscall (two syscalls per entry with plain iteration would cost a core's
// percent at a full map), falling back to iteration on kernels without
// batch lookups. val is only valid during the call.
func (r *egressReporter) walk(socks *ebpf.Map, fn func(cookie uint64, val []byte)) error {
	if r.keys == nil {
		r.keys = make([]uint64, egressBatch)
		r.vals = make([][egressValSize]byte, egressBatch)
	}
	if socks.ValueSize() != egressValSize {
		return fmt.Errorf("egress_socks values are %d bytes, want %d", socks.ValueSize(), egressValSize)
	}
	var cursor ebpf.MapBatchCursor
	for {
		n, err := socks.BatchLookup(&cursor, r.keys, r.vals, nil)
		for i := 0; i < n; i++ {
			fn(r.keys[i], r.vals[i][:])
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return nil // done
		case errors.Is(err, ebpf.ErrNotSupported):
			return r.iterate(socks, fn)
		case err != nil:
			return err
		}
	}
}

func (r *egressReporter) iterate(socks *ebpf.Map, fn func(cookie uint64, val []byte)) error {
	var (
		cookie uint64
		val    []byte
	)
	it := socks.Iterate()
	for it.Next(&cookie, &val) {
		fn(cookie, val)
	}
	return it.Err()
}

// counters adds the network counters to m: the kernel's net_stats (as of
// the last report), live accounted sockets, evictions and report errors. It
// is safe to call from any goroutine.
func (r *egressReporter) counters(m map[string]uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, n := range netStatNames {
		m[n] = r.stats[i]
	}
	m["egress_sockets_live"] = r.live
	m["egress_sockets_evicted"] = r.evicted
	m["egress_report_errors"] = r.errors
}
