package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Self-protection of what the sensor loaded. A root process that finds the
// sensor's objects (by id, or through /proc/<pid>/fdinfo) can empty a filter
// map, detach a cgroup link or swap a link's program, and the sensor goes
// blind without a word. So:
//
//   - every map that user space does not write after load is frozen
//     (BPF_MAP_FREEZE): the kernel refuses updates and deletes from any
//     process, ours included, while our programs still write their state;
//   - every few seconds the reader checks that each link is still attached
//     and still runs our program (link info), and that the filter maps hold
//     what was loaded (a digest of their contents);
//   - any difference is reported in-band as a status event with
//     Fields[event.FieldSelfCheck] = event.SelfCheckTampered (rule SELF-001)
//     and repaired where the kernel allows it: a detached cgroup link is
//     attached again, a replaced program swapped back (link update), an
//     unfrozen filter map refilled. A frozen map cannot be refilled, by us
//     either; it cannot be changed in the first place.
//   - the reader also notices when it did not run for a while (SIGSTOP,
//     the cgroup freezer, a ptrace stop) and reports the gap after resuming
//     (event.SelfCheckGap, rule SELF-004).
//
// Tracing and perf-event links (tp_btf, raw_tp, tracepoints) have no detach
// operation in the kernel: only their program id is checked.

// Tuning of the checks; tests shorten them.
var (
	// selfCheckEvery is how often links and maps are verified.
	selfCheckEvery = 5 * time.Second
	// minGap is the shortest reader pause reported as a gap; it is at
	// least 20 poll intervals.
	minGap = 2 * time.Second
	// testNoFreeze leaves every map writable (tests of the content check
	// and of the refill).
	testNoFreeze bool
)

// writableMaps are the maps user space writes after load; every other map
// but the ring buffer is frozen. Add a map here when user space starts
// writing it at run time (the write would fail with EPERM otherwise).
var writableMaps = map[string]bool{
	"cgroup_known": true, // resetKnown empties it when the cgroup index does
	// SetModelFiles keeps the model files by identity current. Not yet
	// verified against the user-space mirror (modelSet): a root process
	// that deletes entries hides those files' opens until they are added
	// again.
	"model_inodes": true,
	"model_bits":   true,
	// The egress reporter takes idle datagram destinations out
	// (LookupAndDelete) and carries their count in user space, so that a
	// DNS or QUIC server does not fill the table.
	"egress_dgram": true,
}

// filterMaps are the maps whose contents come from the config and never
// change: their digest is verified.
var filterMaps = []string{"prefix_trie", "suffix_trie", "proc_trie"}

type selfCheck struct {
	// mu guards the links of the Sensor (repairs replace them), the link
	// states and the sticky summary, against Close and Programs.
	mu       sync.Mutex
	links    []watchedLink
	maps     []watchedMap
	frozen   []string // maps frozen at load
	notFroze []string // maps that could not be frozen, with why
	summary  string   // the last tampering found, for status; "" when none

	every, gap time.Duration // check interval, shortest gap reported
	// Reader goroutine only: the last tick, and its thread's run-queue
	// wait then (see runQueueWait).
	next, last time.Time
	lastWait   uint64
	waitOK     bool
	locked     bool

	runs, tampered, repaired, gaps atomic.Uint64
}

// watchedLink is one attached program and what its link looked like.
type watchedLink struct {
	idx      int // in Sensor.links and Sensor.progs
	name     string
	spec     *ebpf.ProgramSpec
	linkID   link.ID
	progID   ebpf.ProgramID
	cgroupID uint64 // what a cgroup link is attached to; 0 for the others
	noInfo   bool   // this kernel gives no link info (legacy attach): unverifiable
	detached bool   // found detached and not attached again
}

// watchedMap is one filter map and the entries loaded into it.
type watchedMap struct {
	name   string
	m      *ebpf.Map
	want   map[string][]byte // key bytes -> value bytes
	frozen bool
}

// protect freezes the maps, records the filter maps' contents and the
// links' identities. It runs once, after every program is attached.
func (s *Sensor) protect(spec *ebpf.CollectionSpec) error {
	sc := &s.self
	for _, name := range sortedKeys(s.coll.Maps) {
		m := s.coll.Maps[name]
		if m.Type() == ebpf.RingBuf || writableMaps[name] || testNoFreeze {
			continue
		}
		switch err := m.Freeze(); {
		// EBUSY: frozen already; EPERM: read-only to user space already
		// (.rodata, which the loader froze).
		case err == nil, errors.Is(err, unix.EBUSY), errors.Is(err, unix.EPERM):
			sc.frozen = append(sc.frozen, name)
		default:
			sc.notFroze = append(sc.notFroze, name+": "+err.Error())
		}
	}
	if len(sc.notFroze) > 0 {
		s.log.Warn("maps left writable: the kernel refused to freeze them (filter maps are still verified)", "maps", sc.notFroze)
	}
	for _, name := range filterMaps {
		m := s.coll.Maps[name]
		if m == nil {
			return fmt.Errorf("protect maps: no map %s", name)
		}
		want, err := mapEntries(m)
		if err != nil {
			return fmt.Errorf("protect maps: %w", err)
		}
		sc.maps = append(sc.maps, watchedMap{name: name, m: m, want: want, frozen: slices.Contains(sc.frozen, name)})
	}
	for i, l := range s.links {
		wl := watchedLink{idx: i, name: s.progs[i], spec: spec.Programs[s.progs[i]]}
		if p := s.coll.Programs[wl.name]; p != nil {
			if info, err := p.Info(); err == nil {
				wl.progID, _ = info.ID()
			}
		}
		info, err := l.Info()
		switch {
		case errors.Is(err, link.ErrNotSupported):
			wl.noInfo = true
		case err != nil:
			return fmt.Errorf("protect links: %s: %w", wl.name, err)
		default:
			wl.linkID = info.ID
			if c := info.Cgroup(); c != nil {
				wl.cgroupID = c.CgroupId
			}
		}
		sc.links = append(sc.links, wl)
	}
	sc.every, sc.gap = selfCheckEvery, max(minGap, 20*s.cfg.PollInterval.D())
	sc.next = time.Now().Add(sc.every)
	return nil
}

// selfTick runs on the reader goroutine at every tick: it reports a pause
// of the reader, and verifies the objects when a check is due.
func selfTick(s *Sensor, now time.Time, emit func(*event.Event)) {
	sc := &s.self
	if sc.every == 0 {
		return // not protected: a floor
	}
	// now carries Go's monotonic clock: a wall-clock step does not count,
	// a stopped or frozen process does, a suspended machine does not.
	wait, ok := sc.runQueueWait()
	if !sc.last.IsZero() {
		if d := now.Sub(sc.last); d >= sc.gap {
			sc.gaps.Add(1)
			var waited time.Duration
			if ok && sc.waitOK && wait >= sc.lastWait {
				waited = time.Duration(wait - sc.lastWait)
			}
			emit(gapEvent(sc.last, now, d, waited, ok && sc.waitOK))
		}
	}
	sc.last, sc.lastWait, sc.waitOK = now, wait, ok
	if now.Before(sc.next) {
		return
	}
	sc.next = now.Add(sc.every)
	if ev := s.verify(now); ev != nil {
		emit(ev)
	}
}

// runQueueWait returns how long, in ns, the reader's thread has waited on
// a CPU run queue (the second field of /proc/thread-self/schedstat). The
// first call wires the reader goroutine to its thread, so that successive
// readings are of one thread. False where the kernel keeps no schedstat.
func (sc *selfCheck) runQueueWait() (uint64, bool) {
	if !sc.locked {
		goruntime.LockOSThread() // for the rest of Run: the reader is one long loop
		sc.locked = true
	}
	b, err := os.ReadFile("/proc/thread-self/schedstat")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	w, err := strconv.ParseUint(f[1], 10, 64)
	return w, err == nil
}

// gapEvent reports a pause of d of the reader. A thread that waited on a
// run queue for most of it was starved of CPU, not stopped: a stopped or
// frozen task is not runnable, so it does not wait on a run queue.
func gapEvent(from, to time.Time, d, waited time.Duration, known bool) *event.Event {
	cause := event.GapStopped
	why := "the process was stopped or frozen: it did not even wait for a CPU"
	switch {
	case !known:
		cause, why = event.GapUnknown, "the process was stopped, frozen or starved"
	case waited >= d/2:
		cause = event.GapStarved
		why = fmt.Sprintf("it was starved: it waited %s of it for a CPU", waited.Round(time.Millisecond))
	}
	return &event.Event{Kind: event.KindStatus, Time: to, Process: &event.Process{}, Status: &event.Status{
		Message: fmt.Sprintf("the sensor's reader did not run for %s (%s); "+
			"what happened meanwhile waited in the kernel ring buffer, and was counted as lost where it overflowed",
			d.Round(time.Millisecond), why),
		Fields: map[string]string{
			event.FieldSelfCheck: event.SelfCheckGap,
			"gap":                d.Round(time.Millisecond).String(),
			"gap_ms":             strconv.FormatInt(d.Milliseconds(), 10),
			"cause":              cause,
			"runqueue_wait_ms":   strconv.FormatInt(waited.Milliseconds(), 10),
			"from":               from.UTC().Format(event.TimeFormat),
			"to":                 to.UTC().Format(event.TimeFormat),
		},
	}}
}

// verify compares the links and filter maps with what was loaded, repairs
// what it can, and returns the status event that reports the differences,
// or nil when there are none.
func (s *Sensor) verify(now time.Time) *event.Event {
	sc := &s.self
	sc.runs.Add(1)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if s.links == nil {
		return nil // closed
	}
	var found, objects []string
	repairedAll := true
	for i := range sc.links {
		wl := &sc.links[i]
		what, repaired := s.checkLink(wl)
		if what == "" {
			continue
		}
		found = append(found, what)
		objects = append(objects, "link "+wl.name)
		repairedAll = repairedAll && repaired
	}
	for i := range sc.maps {
		wm := &sc.maps[i]
		what, repaired := checkMap(wm)
		if what == "" {
			continue
		}
		found = append(found, what)
		objects = append(objects, "map "+wm.name)
		repairedAll = repairedAll && repaired
	}
	if len(found) == 0 {
		return nil
	}
	sc.tampered.Add(1)
	state := "repaired"
	if !repairedAll {
		state = "not repaired"
	} else {
		sc.repaired.Add(1)
	}
	msg := "sensor BPF objects tampered with: " + strings.Join(found, "; ")
	sc.summary = now.UTC().Format(time.RFC3339) + ": " + strings.Join(found, "; ")
	s.log.Error("sensor BPF objects tampered with", "found", found, "state", state)
	return &event.Event{Kind: event.KindStatus, Time: now, Process: &event.Process{}, Status: &event.Status{
		Message: msg,
		Fields: map[string]string{
			event.FieldSelfCheck: event.SelfCheckTampered,
			"objects":            strings.Join(objects, ", "),
			"repair":             state,
			"sensor_pid":         strconv.Itoa(unix.Getpid()),
		},
	}}
}

// checkLink returns what differs about one link ("" when nothing) and
// whether it was repaired.
func (s *Sensor) checkLink(wl *watchedLink) (string, bool) {
	if wl.noInfo {
		return "", true
	}
	l := s.links[wl.idx]
	name := fmt.Sprintf("link %d of %s", wl.linkID, wl.name)
	info, err := l.Info()
	if err != nil {
		return name + ": link info unreadable (" + err.Error() + ")", false
	}
	c := info.Cgroup()
	prog := s.coll.Programs[wl.name]
	switch {
	case c != nil && c.CgroupId == 0:
		what := name + " detached from its cgroup"
		nl, err := s.reattach(wl, prog)
		if err != nil {
			wl.detached = true
			return what + "; attaching it again failed: " + err.Error(), false
		}
		l.Close()
		s.links[wl.idx] = nl
		wl.detached = false
		return fmt.Sprintf("%s; attached again as link %d", what, wl.linkID), true
	case info.Program != wl.progID:
		what := fmt.Sprintf("%s runs program %d instead of ours (%d)", name, info.Program, wl.progID)
		if err := l.Update(prog); err != nil {
			wl.detached = true // attached, but not running our program
			return what + "; swapping ours back failed: " + err.Error(), false
		}
		wl.detached = false
		return what + "; ours swapped back in", true
	}
	wl.detached = false
	return "", true
}

// reattach attaches prog again where wl's link was, and records the new link.
func (s *Sensor) reattach(wl *watchedLink, prog *ebpf.Program) (link.Link, error) {
	if wl.spec == nil || prog == nil {
		return nil, errors.New("no program spec")
	}
	root, err := cgroupV2Root("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	nl, err := attachOne(prog, wl.spec, root)
	if err != nil {
		return nil, err
	}
	info, err := nl.Info()
	if err != nil {
		nl.Close()
		return nil, err
	}
	wl.linkID = info.ID
	if c := info.Cgroup(); c != nil {
		wl.cgroupID = c.CgroupId
	}
	return nl, nil
}

// checkMap returns what differs about one filter map ("" when nothing) and
// whether it was refilled.
func checkMap(wm *watchedMap) (string, bool) {
	got, err := mapEntries(wm.m)
	if err != nil {
		return "map " + wm.name + ": contents unreadable (" + err.Error() + ")", false
	}
	var removed, added, changed int
	for k, v := range wm.want {
		g, ok := got[k]
		switch {
		case !ok:
			removed++
		case !bytes.Equal(g, v):
			changed++
		}
	}
	for k := range got {
		if _, ok := wm.want[k]; !ok {
			added++
		}
	}
	if removed+added+changed == 0 {
		return "", true
	}
	what := fmt.Sprintf("map %s: %d of %d entries removed, %d added, %d changed", wm.name, removed, len(wm.want), added, changed)
	if wm.frozen {
		return what + " although it is frozen; it cannot be refilled", false
	}
	for k := range got {
		if _, ok := wm.want[k]; !ok {
			if err := wm.m.Delete([]byte(k)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return what + "; refilling failed: " + err.Error(), false
			}
		}
	}
	for k, v := range wm.want {
		if err := wm.m.Put([]byte(k), v); err != nil {
			return what + "; refilling failed: " + err.Error(), false
		}
	}
	return what + "; refilled", true
}

// mapEntries reads every entry of m as raw bytes.
func mapEntries(m *ebpf.Map) (map[string][]byte, error) {
	out := map[string][]byte{}
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		out[string(k)] = slices.Clone(v)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read map %s: %w", m.String(), err)
	}
	return out, nil
}

// attachedPrograms returns the names of the programs whose links are not
// known to be detached.
func (s *Sensor) attachedPrograms() []string {
	sc := &s.self
	sc.mu.Lock()
	defer sc.mu.Unlock()
	out := make([]string, 0, len(s.progs))
	for i, name := range s.progs {
		if i < len(sc.links) && sc.links[i].detached {
			continue
		}
		out = append(out, name)
	}
	return out
}

// SelfCheck summarises the sensor's integrity for status: "ok", or the last
// tampering found (with when, what, and whether it was repaired).
func (s *Sensor) SelfCheck() string {
	if s == nil {
		return "not loaded"
	}
	sc := &s.self
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.summary == "" {
		return "ok"
	}
	return "tampered at " + sc.summary
}

func (sc *selfCheck) counters(m map[string]uint64) {
	m["selfcheck_runs"] = sc.runs.Load()
	m["selfcheck_tampered"] = sc.tampered.Load()
	m["selfcheck_repaired"] = sc.repaired.Load()
	m["selfcheck_gaps"] = sc.gaps.Load()
	m["maps_frozen"] = uint64(len(sc.frozen))
	m["maps_not_frozen"] = uint64(len(sc.notFroze))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
