package runtime

// Floods don't choose what is lost (bpf/common.h). The kernel side sends
// each record as priority or bulk, keeps part of the ring for priority
// records, and drops a cgroup's bulk records past its rate; every record it
// drops is counted in drops[] and, per cgroup, in the flood_cg map. Here
// the loader sets the budgets from capture.flood, and the reader turns the
// counts into lost events that name the cgroup (and the last process) that
// lost them, so that a flood is attributed to whoever made it.

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// rec_hdr.flags (HDR_F_* in bpf/common.h): the record's class.
const (
	hdrFlags     = 20
	hdrFPrio     = 1 << 0
	floodMapName = "flood_cg"
)

// Layout of struct flood_stat and the causes it counts (enum flood_cause).
const (
	floodRate      = 0 // over the cgroup's bulk rate
	floodRing      = 1 // bulk refused at the headroom, or the ring full
	floodPrioRing  = 2 // a priority record the ring had no room for
	floodCauses    = 3 // causes in use of the 4 slots
	floodStatLost  = 0
	floodDemoted   = 32
	floodLastNS    = 40
	floodTGID      = 48
	floodComm      = 56
	floodStatSize  = 72
	floodBatchSize = 256
)

// floodDrop is the drop source (drops[] index) of each cause: the Lost
// source its records are reported under.
var floodDrop = [floodCauses]int{floodRate: dropRateLimit, floodRing: dropRingbuf, floodPrioRing: dropPrioRingbuf}

// floodVariables returns the kernel's flood constants for cfg: the ring
// bytes bulk records may fill and the per-cgroup GCRA budgets (a record
// costs 1e9/rate ns; a burst of b allows (b-1) costs of slack).
func floodVariables(cfg config.CaptureConfig) map[string]any {
	f := cfg.Flood
	var room uint64
	if f.PriorityHeadroomPercent > 0 {
		ring := uint64(cfg.RingBufferBytes)
		room = ring - ring*uint64(f.PriorityHeadroomPercent)/100
	}
	cost := func(rate int) uint64 {
		if rate <= 0 {
			return 0
		}
		return max(uint64(1e9)/uint64(rate), 1)
	}
	slack := func(rate, burst int) uint64 {
		if rate <= 0 || burst <= 1 {
			return 0
		}
		return uint64(burst-1) * cost(rate)
	}
	return map[string]any{
		"bulk_room":     room,
		"bulk_cost_ns":  cost(f.CgroupRate),
		"bulk_burst_ns": slack(f.CgroupRate, f.CgroupBurst),
		"prio_cost_ns":  cost(f.PriorityRate),
		"prio_burst_ns": slack(f.PriorityRate, f.PriorityBurst),
	}
}

// floodReporter turns the kernel's per-cgroup loss counts into lost events.
// Only the reader goroutine uses it, except counters.
type floodReporter struct {
	// last holds the counts last reported per cgroup id, pruned to the
	// cgroups still in the map at every walk (bounded by its size).
	last map[uint64][floodCauses]uint64
	seen map[uint64]struct{}
	keys []uint64
	vals [][floodStatSize]byte

	// total: drops[] of each cause as of the last tick; prevTotal: as of
	// the tick before. attributed: the counts reported under a cgroup;
	// unattributed: the rest, reported one tick late (see report).
	total, prevTotal, attributed, unattributed [floodCauses]uint64
	dirty                                      bool

	mu       sync.Mutex // guards the counters below
	demoted  uint64     // priority records sent as bulk, summed over the cgroups in the map
	cgroups  uint64     // cgroups in the map (that lost or demoted something)
	walkErrs uint64
}

// report runs at every tick with the drops[] totals: when a flood cause
// grew, it walks flood_cg and emits one lost event per cgroup and cause
// whose count grew, naming the cgroup and the last process that lost a
// record. Drops that no cgroup accounts for (its flood_cg entry was
// evicted, or could not be made) are emitted without a process, one tick
// late: the kernel counts a drop in drops[] before it counts it in
// flood_cg, so a tick's drops[] are all in the map by the next walk, and a
// loss is never reported twice.
func (r *floodReporter) report(m *ebpf.Map, drops *[dropSources]uint64, now time.Time, emit func(*event.Event)) error {
	r.prevTotal = r.total
	grew := false
	for c := range floodCauses {
		r.total[c] = drops[floodDrop[c]]
		grew = grew || r.total[c] > r.prevTotal[c]
	}
	if !grew && !r.dirty {
		return nil
	}
	var err error
	if m != nil {
		err = r.walk(m, now, emit)
	} else {
		err = errors.New("no flood_cg map")
	}
	// Unattributed: what the previous tick's totals hold beyond everything
	// reported so far.
	r.dirty = false
	for c := range floodCauses {
		if r.total[c] > r.attributed[c]+r.unattributed[c] {
			r.dirty = true // maybe attributed at the next walk
		}
		if n := r.prevTotal[c]; n > r.attributed[c]+r.unattributed[c] {
			d := n - r.attributed[c] - r.unattributed[c]
			r.unattributed[c] += d
			emit(&event.Event{Kind: event.KindLost, Time: now, Process: &event.Process{},
				Lost: &event.Lost{Source: dropNames[floodDrop[c]], Count: d}})
		}
	}
	return err
}

func (r *floodReporter) walk(m *ebpf.Map, now time.Time, emit func(*event.Event)) error {
	if m.ValueSize() != floodStatSize {
		return fmt.Errorf("%s values are %d bytes, want %d", floodMapName, m.ValueSize(), floodStatSize)
	}
	if r.last == nil {
		r.last, r.seen = map[uint64][floodCauses]uint64{}, map[uint64]struct{}{}
		r.keys, r.vals = make([]uint64, floodBatchSize), make([][floodStatSize]byte, floodBatchSize)
	}
	clear(r.seen)
	var demoted uint64
	visit := func(cg uint64, v []byte) {
		if _, dup := r.seen[cg]; dup {
			return
		}
		r.seen[cg] = struct{}{}
		demoted += le.Uint64(v[floodDemoted:])
		prev := r.last[cg]
		var cur [floodCauses]uint64
		for c := range floodCauses {
			cur[c] = le.Uint64(v[floodStatLost+8*c:])
			d := cur[c] - prev[c]
			if cur[c] < prev[c] { // the entry was evicted and made again
				d = cur[c]
			}
			if d == 0 {
				continue
			}
			r.attributed[c] += d
			comm, _ := cstring(v[floodComm:floodComm+commLen], "comm")
			pid := le.Uint32(v[floodTGID:])
			emit(&event.Event{Kind: event.KindLost, Time: now,
				Process: &event.Process{PID: pid, TID: pid, Comm: comm, CgroupID: cg},
				Lost:    &event.Lost{Source: dropNames[floodDrop[c]], Count: d}})
		}
		r.last[cg] = cur
	}
	var cursor ebpf.MapBatchCursor
	var err error
	for {
		var n int
		n, err = m.BatchLookup(&cursor, r.keys, r.vals, nil)
		for i := range n {
			visit(r.keys[i], r.vals[i][:])
		}
		if err != nil {
			break
		}
	}
	switch {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		err = nil // done
	case errors.Is(err, ebpf.ErrNotSupported):
		var (
			cg uint64
			v  []byte
		)
		it := m.Iterate()
		for it.Next(&cg, &v) {
			visit(cg, v)
		}
		err = it.Err()
	}
	for cg := range r.last {
		if _, ok := r.seen[cg]; !ok {
			delete(r.last, cg)
		}
	}
	r.mu.Lock()
	r.demoted, r.cgroups = demoted, uint64(len(r.seen))
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("walk %s: %w", floodMapName, err)
	}
	return nil
}

// errs counts a failed report and returns how many there were.
func (r *floodReporter) errs() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.walkErrs++
	return r.walkErrs
}

func (r *floodReporter) counters(m map[string]uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m["flood_priority_demoted"] = r.demoted
	m["flood_cgroups"] = r.cgroups
	m["flood_walk_errors"] = r.walkErrs
}

// self_ids (bpf/self.bpf.h): the kinds of BPF objects, as keys.
const (
	objMap  = 1
	objProg = 2
	objLink = 3
)

// fillSelfIDs writes the id and name of every map, program and link of the
// sensor into self_ids, which the bpf(2) handlers look ids up in; protect
// freezes it afterwards. It runs once everything is attached.
func (s *Sensor) fillSelfIDs() error {
	m := s.coll.Maps["self_ids"]
	if m == nil {
		return errors.New("fill self_ids: no map self_ids")
	}
	put := func(kind, id uint32, name string) error {
		var k [8]byte
		le.PutUint32(k[0:], kind)
		le.PutUint32(k[4:], id)
		var v [16]byte
		copy(v[:15], name)
		if err := m.Put(k[:], v[:]); err != nil {
			return fmt.Errorf("fill self_ids with %s %d: %w", name, id, err)
		}
		return nil
	}
	for _, name := range sortedKeys(s.coll.Maps) {
		info, err := s.coll.Maps[name].Info()
		if err != nil {
			return fmt.Errorf("fill self_ids: map %s: %w", name, err)
		}
		id, ok := info.ID()
		if !ok {
			return fmt.Errorf("fill self_ids: map %s has no id (kernel before 4.13)", name)
		}
		if err := put(objMap, uint32(id), info.Name); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(s.coll.Programs) {
		info, err := s.coll.Programs[name].Info()
		if err != nil {
			return fmt.Errorf("fill self_ids: program %s: %w", name, err)
		}
		id, ok := info.ID()
		if !ok {
			return fmt.Errorf("fill self_ids: program %s has no id", name)
		}
		if err := put(objProg, uint32(id), info.Name); err != nil {
			return err
		}
	}
	for i, l := range s.links {
		info, err := l.Info()
		if err != nil {
			continue // legacy attachments (no link info) have no link id to name
		}
		if err := put(objLink, uint32(info.ID), s.progs[i]); err != nil {
			return err
		}
	}
	return nil
}
