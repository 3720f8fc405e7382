package runtime

// Periodic egress reports: the kernel sums the bytes sent on every inet
// socket into two maps (bpf/net.bpf.h): egress_socks for sockets with a peer
// (keyed by socket cookie), egress_dgram for sends that carry their own
// destination (keyed by cookie and destination). It reports an egress_socks
// entry once more, closed, when its socket is released; for a released
// socket with egress_dgram entries it sends REC_SOCK_CLOSED instead, and the
// next walk here reports those entries closed and deletes them. Between
// those, user space walks both maps every capture.egress_report_interval and
// emits a KindEgress event for each entry whose count grew since its last
// report.
//
// Wiring: each Sensor holds an egressReporter; Sensor.handle passes it the
// REC_SOCK_CLOSED records, Sensor.tick calls egressTick after each drain, and
// Sensor.Counters merges egressReporter.counters.

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
	netSockTracked     = 0
	netSockReleased    = 1
	netSockInsertFail  = 2
	netPendingFull     = 3
	netRingbufFull     = 4
	netInflightFull    = 5
	netDgramTracked    = 6
	netDgramInsertFail = 7
	netSendNoDst       = 8
	netStashFull       = 9
	netStatCount       = 10
)

var netStatNames = [netStatCount]string{
	"egress_sockets_tracked", "egress_sockets_released", "egress_insert_failed",
	"connect_pending_full", "net_ringbuf_full", "connect_inflight_full",
	"egress_datagram_tracked", "egress_datagram_insert_failed", "egress_sends_no_destination",
	"send_destination_stash_full",
}

// Lost sources reported by the egress reporter.
const (
	lostEgressEvicted  = "egress_evicted"   // entries pushed out of an LRU map before release
	lostEgressUntraced = "egress_untracked" // entries the kernel could not start accounting
)

// dgramKey is a struct dgram_key as the map returns it.
type dgramKey [dgramKeySize]byte

func (k *dgramKey) cookie() uint64 { return le.Uint64(k[:8]) }

// egressReporter is the per-sensor state of the periodic report. Only the
// reader goroutine (Sensor.Run) uses it, except counters.
type egressReporter struct {
	next time.Time
	// last holds the byte count last reported per entry; it is pruned to
	// the entries still in the maps at every walk, so it is bounded by the
	// maps' sizes. The maps are made on first use.
	last      map[uint64]uint64
	seen      map[uint64]struct{}
	dgram     map[dgramKey]dgramState
	seenDgram map[dgramKey]struct{}
	// base holds the bytes of egress_dgram entries taken out of the map
	// while idle: a (socket, destination) that sends again starts over in
	// the kernel, and its reports add base, so that counts stay cumulative.
	base map[dgramKey]uint64
	// closed holds the cookies of released sockets whose egress_dgram
	// entries the next walk reports as closed and deletes.
	closed map[uint64]struct{}
	// Batch lookup buffers.
	keys      []uint64
	dkeys     []dgramKey
	vals      [][egressValSize]byte
	dgramGone uint64 // egress_dgram entries deleted here (released sockets, idle entries)

	mu       sync.Mutex // guards the fields below (read by counters)
	stats    [netStatCount]uint64
	live     uint64
	liveDg   uint64
	released uint64 // egress_dgram entries of released sockets, reported and deleted
	evicted  uint64
	reported [2]uint64 // evictions and insert failures already emitted as Lost
	errors   uint64
}

// dgramState is what the reporter keeps of an egress_dgram entry: the
// kernel's count at its last report, and how many walks since found it idle.
type dgramState struct {
	last uint64
	idle uint8
}

// Idle egress_dgram entries are taken out of the map after dgramIdleWalks
// reports without growth, so that a socket that talks to many destinations
// over time (a DNS or QUIC server, a scanner) does not fill the LRU map and
// push out entries whose bytes were never reported. base is bounded by
// dgramBaseMax; beyond it an entry that sends again counts from zero.
const (
	dgramIdleWalks = 3
	dgramBaseMax   = 16384
)

// sockClosed notes a REC_SOCK_CLOSED record (the whole record in b): the
// socket's egress_dgram entries are reported closed at the next walk.
func (r *egressReporter) sockClosed(b []byte) error {
	if len(b) != sockClosedSize {
		return malformed("socket closed record is %d bytes, want %d", len(b), sockClosedSize)
	}
	if r.closed == nil {
		r.closed = map[uint64]struct{}{}
	}
	r.closed[le.Uint64(b[sockClosedCookie:])] = struct{}{}
	return nil
}

// egressTick reports at most once per EgressReportInterval.
func egressTick(s *Sensor, now time.Time, emit func(*event.Event)) {
	if s.coll == nil {
		return
	}
	socks, dgram, stats := s.coll.Maps["egress_socks"], s.coll.Maps["egress_dgram"], s.coll.Maps["net_stats"]
	if socks == nil || dgram == nil || stats == nil {
		return
	}
	r := &s.egress
	if now.Before(r.next) {
		return
	}
	r.next = now.Add(s.cfg.EgressReportInterval.D())
	if err := r.report(&s.dec, socks, dgram, stats, now, emit); err != nil {
		r.mu.Lock()
		r.errors++
		n := r.errors
		r.mu.Unlock()
		if n <= 10 {
			s.log.Warn("egress report", "error", err)
		}
	}
}

// report emits one KindEgress event per entry whose byte count grew since
// its last report, the final reports of released sockets' egress_dgram
// entries, and Lost events for entries the kernel lost track of.
func (r *egressReporter) report(dec *decoder, socks, dgram, stats *ebpf.Map, now time.Time, emit func(*event.Event)) error {
	// Read the counters before the walks: an entry tracked during a walk
	// can then only make evictions look smaller, never invent one.
	var st [netStatCount]uint64
	if err := sumPerCPU(stats, "net_stats", 0, st[:]); err != nil {
		return err
	}
	if r.last == nil {
		r.last, r.seen = map[uint64]uint64{}, map[uint64]struct{}{}
		r.dgram, r.seenDgram, r.base = map[dgramKey]dgramState{}, map[dgramKey]struct{}{}, map[dgramKey]uint64{}
	}
	var bad error
	decodeGrown := func(what string, val []byte, last uint64) *event.Event {
		// Skip the decode (and its allocation) for entries that did not grow.
		if len(val) == egressValSize && le.Uint64(val[egBytes:]) <= last {
			return nil
		}
		ev, err := dec.decode(val)
		if err != nil {
			bad = fmt.Errorf("decode %s: %w", what, err)
			return nil
		}
		ev.Time = now
		return ev
	}

	clear(r.seen)
	err := r.walkSocks(socks, func(cookie uint64, val []byte) {
		if _, dup := r.seen[cookie]; dup {
			return // a walk may see a key twice when keys are deleted under it
		}
		r.seen[cookie] = struct{}{}
		if ev := decodeGrown("egress_socks entry", val, r.last[cookie]); ev != nil {
			r.last[cookie] = ev.Net.BytesSent
			emit(ev)
		}
	})
	if err != nil {
		return fmt.Errorf("walk egress_socks: %w", err)
	}
	for c := range r.last {
		if _, ok := r.seen[c]; !ok {
			delete(r.last, c)
		}
	}

	clear(r.seenDgram)
	var gone, idle []dgramKey
	err = r.walkDgram(dgram, func(k dgramKey, val []byte) {
		if _, dup := r.seenDgram[k]; dup {
			return
		}
		if _, ok := r.closed[k.cookie()]; ok {
			gone = append(gone, k)
			return
		}
		r.seenDgram[k] = struct{}{}
		st := r.dgram[k]
		if ev := decodeGrown("egress_dgram entry", val, st.last); ev != nil {
			st.last, st.idle = ev.Net.BytesSent, 0
			ev.Net.BytesSent += r.base[k]
			emit(ev)
		} else if st.idle++; st.idle >= dgramIdleWalks {
			idle = append(idle, k)
		}
		r.dgram[k] = st
	})
	if err != nil {
		return fmt.Errorf("walk egress_dgram: %w", err)
	}
	// Take entries of released sockets out of the map with their final
	// count, and report them closed; take idle ones out, and report what
	// they sent since the walk, if anything.
	take := func(k dgramKey, closed bool) {
		var val [egressValSize]byte
		if err := dgram.LookupAndDelete(&k, &val); err != nil {
			if !errors.Is(err, ebpf.ErrKeyNotExist) {
				bad = fmt.Errorf("delete egress_dgram entry: %w", err)
			}
			return
		}
		r.dgramGone++
		st := r.dgram[k]
		delete(r.dgram, k)
		delete(r.seenDgram, k)
		n := le.Uint64(val[egBytes:])
		base := r.base[k]
		if closed || n > st.last {
			ev, err := dec.decode(val[:])
			if err != nil {
				bad = fmt.Errorf("decode egress_dgram entry: %w", err)
				return
			}
			ev.Time = now
			ev.Net.BytesSent += base
			ev.Net.Closed = closed
			emit(ev)
		}
		switch {
		case closed:
			delete(r.base, k)
		case len(r.base) < dgramBaseMax || base > 0:
			r.base[k] = base + n
		}
	}
	for _, k := range gone {
		take(k, true)
	}
	for _, k := range idle {
		take(k, false)
	}
	if len(r.closed) > 0 {
		for k := range r.base { // entries of a released socket taken out while idle
			if _, ok := r.closed[k.cookie()]; ok {
				delete(r.base, k)
			}
		}
		clear(r.closed) // a released socket makes no new entries
	}
	for k := range r.dgram {
		if _, ok := r.seenDgram[k]; !ok {
			delete(r.dgram, k)
		}
	}

	// Released counts of egress_socks are read after the walk, so that a
	// socket released during it is not counted as evicted.
	var released [1]uint64
	if err := sumPerCPU(stats, "net_stats", netSockReleased, released[:]); err != nil {
		return err
	}
	st[netSockReleased] = released[0]

	live, liveDg := uint64(len(r.seen)), uint64(len(r.seenDgram))
	var evicted uint64
	if st[netSockTracked] > st[netSockReleased]+live {
		evicted = st[netSockTracked] - st[netSockReleased] - live
	}
	if st[netDgramTracked] > r.dgramGone+liveDg {
		evicted += st[netDgramTracked] - r.dgramGone - liveDg
	}
	r.mu.Lock()
	r.stats = st
	r.live, r.liveDg, r.released = live, liveDg, r.dgramGone
	if evicted > r.evicted {
		r.evicted = evicted
	}
	lost := [2]struct {
		source string
		total  uint64
	}{
		{lostEgressEvicted, r.evicted},
		{lostEgressUntraced, st[netSockInsertFail] + st[netDgramInsertFail]},
	}
	var out []*event.Event
	for i, l := range lost {
		if l.total > r.reported[i] {
			out = append(out, &event.Event{Kind: event.KindLost, Time: now, Process: &event.Process{},
				Lost: &event.Lost{Source: l.source, Count: l.total - r.reported[i]}})
			r.reported[i] = l.total
		}
	}
	r.mu.Unlock()
	for _, e := range out {
		emit(e)
	}
	return bad
}

// egressBatch is how many entries one BPF_MAP_LOOKUP_BATCH call returns.
const egressBatch = 256

// walkSocks calls fn for every entry of egress_socks, in batches of
// egressBatch per syscall (two syscalls per entry with plain iteration would
// cost a core's percent at a full map), falling back to iteration on kernels
// without batch lookups. val is only valid during the call.
func (r *egressReporter) walkSocks(m *ebpf.Map, fn func(cookie uint64, val []byte)) error {
	if r.keys == nil {
		r.keys = make([]uint64, egressBatch)
		r.vals = make([][egressValSize]byte, egressBatch)
	}
	if m.KeySize() != 8 || m.ValueSize() != egressValSize {
		return fmt.Errorf("egress_socks has %d-byte keys and %d-byte values, want 8 and %d", m.KeySize(), m.ValueSize(), egressValSize)
	}
	return walkBatch(m, r.keys, r.vals, fn)
}

// walkDgram is walkSocks for egress_dgram.
func (r *egressReporter) walkDgram(m *ebpf.Map, fn func(k dgramKey, val []byte)) error {
	if r.dkeys == nil {
		r.dkeys = make([]dgramKey, egressBatch)
	}
	if r.vals == nil {
		r.vals = make([][egressValSize]byte, egressBatch)
	}
	if m.KeySize() != dgramKeySize || m.ValueSize() != egressValSize {
		return fmt.Errorf("egress_dgram has %d-byte keys and %d-byte values, want %d and %d", m.KeySize(), m.ValueSize(), dgramKeySize, egressValSize)
	}
	return walkBatch(m, r.dkeys, r.vals, fn)
}

func walkBatch[K comparable](m *ebpf.Map, keys []K, vals [][egressValSize]byte, fn func(K, []byte)) error {
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			fn(keys[i], vals[i][:])
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return nil // done
		case errors.Is(err, ebpf.ErrNotSupported):
			var (
				k   K
				val []byte
			)
			it := m.Iterate()
			for it.Next(&k, &val) {
				fn(k, val)
			}
			return it.Err()
		case err != nil:
			return err
		}
	}
}

// counters adds the network counters to m: the kernel's net_stats (as of
// the last report), live accounted entries, evictions and report errors. It
// is safe to call from any goroutine.
func (r *egressReporter) counters(m map[string]uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, n := range netStatNames {
		m[n] = r.stats[i]
	}
	m["egress_sockets_live"] = r.live
	m["egress_datagram_live"] = r.liveDg
	m["egress_datagram_released"] = r.released
	m["egress_sockets_evicted"] = r.evicted
	m["egress_report_errors"] = r.errors
}
