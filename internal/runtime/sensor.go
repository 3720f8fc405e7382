// Package runtime is the kernel side of the sensor in user space: it loads
// and attaches the BPF programs of bpf/, reads their ring buffer, and decodes
// records into typed events (internal/event).
//
// Loading is all or nothing: Load either attaches every program or leaves
// nothing of its own in the kernel. Decoding is pure and needs no root.
//
// Once attached, the sensor defends what it loaded (selfcheck.go): its maps
// are frozen, its links and filter maps verified, and every signal sent to
// it reported (bpf/self.bpf.h).
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// Options are the optional settings of Load. A nil *Options is valid.
type Options struct {
	// Logger receives load and attach progress; nil discards.
	Logger *slog.Logger
	// Cgroups, when set, is fed the cgroup v2 ids and paths the kernel
	// reports (cgroups.go), and marks what it already holds as known.
	Cgroups CgroupIndex
}

// optionalSuffix marks a program that may fail to load or attach on this
// kernel without failing the sensor (e.g. cgroup/connect_unix before 6.7).
const optionalSuffix = "_optional"

// Sensor is the loaded and attached set of BPF programs and the reader of
// their ring buffer.
//
// Run must be called from one goroutine at a time; Programs, Counters and
// Close are safe to call from any goroutine.
type Sensor struct {
	log   *slog.Logger
	cfg   config.CaptureConfig
	floor bool

	coll  *ebpf.Collection
	links []link.Link
	progs []string
	// handlers are the syscall handlers in the dispatcher's program
	// arrays and the tail_ programs they hand on to: active, though not
	// attached themselves.
	handlers []string
	// ids are the kernel ids of our programs and maps, for leak checks.
	progIDs []ebpf.ProgramID
	mapIDs  []ebpf.MapID

	rd  *ringbuf.Reader
	dec decoder
	// rdMu keeps RingbufUsage off the ring's memory once Close unmapped it.
	rdMu     sync.RWMutex
	rdClosed bool

	closeOnce sync.Once
	closeErr  error

	events       atomic.Uint64
	decodeErrors atomic.Uint64
	// drops holds the last totals read from the kernel drop counters.
	drops       [dropSources]atomic.Uint64
	lostDecoder uint64 // decode errors already reported as Lost (reader goroutine)
	egress      egressReporter
	flood       floodReporter
	cg          cgroupState
	self        selfCheck
	// models mirrors the kernel's set of model files by identity.
	models modelSet
}

// Kernel drop sources (enum drop_source in bpf/common.h).
const (
	dropRingbuf     = 0
	dropPathLong    = 1
	dropInflight    = 2
	dropOpenRepeat  = 3
	dropRateLimit   = 4
	dropPrioRingbuf = 5
	dropSources     = 6
)

// dropNames are the drop sources' names: the Lost source of those that lose
// an event, and the drops_<name> counters.
var dropNames = [dropSources]string{
	dropRingbuf:     "kernel_ringbuf",
	dropPathLong:    "path_truncated",
	dropInflight:    "inflight_alloc_failed",
	dropOpenRepeat:  "open_repeats",
	dropRateLimit:   "cgroup_rate_limit",
	dropPrioRingbuf: "kernel_ringbuf_priority",
}

// dropIsLoss says which drop sources lose an event, reported in-band as
// Lost by tick; a truncated path is still sent, and a repeated open is
// counted in the next report of the same file (event.File.Repeats). The
// flood sources (ring, rate limit) are reported per cgroup by the flood
// reporter.
var dropIsLoss = [dropSources]bool{dropInflight: true}

// lostDecoder is the lost source of malformed records.
const lostSourceDecoder = "decoder"

// Load loads the sensor's BPF programs with cfg's filter tables, attaches
// every program and opens the ring buffer reader. On any error nothing of
// ours stays in the kernel.
func Load(cfg config.CaptureConfig, opts *Options) (*Sensor, error) {
	return load(cfg, opts, false)
}

// LoadFloor loads the "floor" for benchmarks: the same programs on the same
// hooks as Load, each replaced by an empty body that returns at once. It is
// the price of hooking those events at all; Run on a floor returns when ctx
// is done and emits nothing.
func LoadFloor(cfg config.CaptureConfig, opts *Options) (*Sensor, error) {
	return load(cfg, opts, true)
}

func load(cfg config.CaptureConfig, opts *Options, floor bool) (_ *Sensor, err error) {
	if err := requireBTF(); err != nil {
		return nil, err
	}
	if len(sysHandlers) == 0 {
		return nil, errors.New("the sensor has no syscall table for this architecture (amd64 and arm64 are supported)")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if opts != nil && opts.Logger != nil {
		log = opts.Logger
	}
	s := &Sensor{log: log, cfg: cfg, floor: floor}
	if opts != nil && !floor {
		s.cg.index = opts.Cgroups
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	epoch, err := bootEpoch()
	if err != nil {
		return nil, err
	}
	s.dec.bootEpoch = epoch

	spec, err := loadSensor()
	if err != nil {
		return nil, fmt.Errorf("load BPF spec: %w", err)
	}
	if err := configureSpec(spec, cfg); err != nil {
		return nil, err
	}
	if floor {
		emptyPrograms(spec)
	}
	if err := s.loadCollection(spec); err != nil {
		if errors.Is(err, unix.EPERM) {
			// Say which capability the kernel wants for what.
			if perr := probeSpec(spec); perr != nil {
				return nil, perr
			}
		}
		return nil, err
	}
	s.recordIDs()
	if testHookLoaded != nil {
		if err := testHookLoaded(s); err != nil {
			return nil, err
		}
	}
	if !floor {
		if err := fillFilters(s.coll, cfg); err != nil {
			return nil, err
		}
		if err := fillKnobs(s.coll); err != nil {
			return nil, err
		}
		if s.handlers, err = fillSyscallCalls(s.coll, sysHandlers); err != nil {
			return nil, err
		}
		tails, err := fillTailCalls(s.coll)
		if err != nil {
			return nil, err
		}
		s.handlers = append(s.handlers, tails...)
	}
	if err := s.attachAll(spec); err != nil {
		return nil, err
	}
	if err := s.fillKnown(); err != nil {
		return nil, err
	}
	if !floor {
		if err := s.fillSelfIDs(); err != nil {
			return nil, err
		}
		if err := s.protect(spec); err != nil {
			return nil, err
		}
		s.rd, err = ringbuf.NewReader(s.coll.Maps["events"])
		if err != nil {
			return nil, fmt.Errorf("open ring buffer reader: %w", err)
		}
	}
	log.Info("sensor attached", "programs", len(s.progs), "syscall_handlers", len(s.handlers), "floor", floor)
	return s, nil
}

// configureSpec sizes the ring buffer and sets the load-time constants.
func configureSpec(spec *ebpf.CollectionSpec, cfg config.CaptureConfig) error {
	rb, ok := spec.Maps["events"]
	if !ok {
		return errors.New("BPF spec has no events ring buffer")
	}
	rb.MaxEntries = uint32(cfg.RingBufferBytes)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("count possible CPUs: %w", err)
	}
	vars := floodVariables(cfg)
	vars["self_tgid"] = uint32(os.Getpid())
	vars["wakeup_bytes"] = uint64(cfg.WakeupBytes)
	vars["repeat_window_ns"] = uint64(cfg.OpenRepeatWindow.D())
	vars["nr_cpus"] = uint32(cpus)
	for name, v := range vars {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("BPF spec has no variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	if err := setGates(spec, cfg); err != nil {
		return err
	}
	if err := setEnvFilter(spec); err != nil {
		return err
	}
	if err := setKnobLens(spec); err != nil {
		return err
	}
	if err := setSyscallTable(spec, sysHandlers); err != nil {
		return err
	}
	if err := setNetConstants(spec, sysHandlers); err != nil {
		return err
	}
	return bakeVariables(spec)
}

// bakeVariables writes every variable's value into its data section's map
// contents and drops the variables from spec. The loader then maps no data
// section into our memory: such a mapping keeps its map alive until the Go
// GC runs, and Close must free everything at once.
func bakeVariables(spec *ebpf.CollectionSpec) error {
	for name, vs := range spec.Variables {
		if !slices.ContainsFunc(vs.Value, func(b byte) bool { return b != 0 }) {
			delete(spec.Variables, name) // zero: the section's default
			continue
		}
		ms := spec.Maps[vs.SectionName]
		if ms == nil || len(ms.Contents) != 1 {
			return fmt.Errorf("set %s: data section %s has no contents", name, vs.SectionName)
		}
		data, ok := ms.Contents[0].Value.([]byte)
		end := int(vs.Offset) + len(vs.Value)
		if !ok || end > len(data) {
			return fmt.Errorf("set %s: does not fit data section %s", name, vs.SectionName)
		}
		data = slices.Clone(data)
		copy(data[vs.Offset:end], vs.Value)
		ms.Contents = []ebpf.MapKV{{Key: ms.Contents[0].Key, Value: data}}
		delete(spec.Variables, name)
	}
	return nil
}

// loadCollection loads spec; if that fails and optional programs exist, it
// retries without them and logs which were left out.
func (s *Sensor) loadCollection(spec *ebpf.CollectionSpec) error {
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{})
	if err == nil {
		s.coll = coll
		return nil
	}
	var dropped []string
	for name := range spec.Programs {
		if strings.HasSuffix(name, optionalSuffix) {
			delete(spec.Programs, name)
			dropped = append(dropped, name)
		}
	}
	if len(dropped) == 0 {
		return fmt.Errorf("load BPF programs: %w", err)
	}
	coll, err2 := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{})
	if err2 != nil {
		return fmt.Errorf("load BPF programs: %w", err2)
	}
	sort.Strings(dropped)
	s.log.Warn("optional BPF programs left out: they do not load on this kernel",
		"programs", dropped, "error", err)
	s.coll = coll
	return nil
}

func (s *Sensor) recordIDs() {
	for _, p := range s.coll.Programs {
		if info, err := p.Info(); err == nil {
			if id, ok := info.ID(); ok {
				s.progIDs = append(s.progIDs, id)
			}
		}
	}
	for _, m := range s.coll.Maps {
		if info, err := m.Info(); err == nil {
			if id, ok := info.ID(); ok {
				s.mapIDs = append(s.mapIDs, id)
			}
		}
	}
}

// Test hooks; nil outside tests.
var (
	// testHookLoaded runs once the collection is in the kernel; an error
	// fails the load there, before anything is attached.
	testHookLoaded func(*Sensor) error
	// testHookAttached runs after each program is attached; an error fails
	// the load there, half-way through attaching.
	testHookAttached func(name string) error
)

// Programs returns the names of the attached programs and of the syscall
// handlers the dispatcher tail-calls, sorted; a program whose link was
// found detached (and could not be attached again) is not listed.
func (s *Sensor) Programs() []string {
	return slices.Sorted(slices.Values(slices.Concat(s.attachedPrograms(), s.handlers)))
}

// Counters returns events decoded, decode errors and the kernel drop
// counters by source (as of the last poll).
func (s *Sensor) Counters() map[string]uint64 {
	m := map[string]uint64{
		"events_decoded": s.events.Load(),
		"decode_errors":  s.decodeErrors.Load(),
	}
	for i, n := range dropNames {
		if n != "" {
			m["drops_"+n] = s.drops[i].Load()
		}
	}
	s.egress.counters(m)
	s.flood.counters(m)
	s.cgroupCounters(m)
	s.self.counters(m)
	s.modelCounters(m)
	return m
}

// ObjectIDs returns the kernel ids of the sensor's programs and maps, taken
// right after load; tests use them to prove Close leaves nothing behind.
func (s *Sensor) ObjectIDs() ([]ebpf.ProgramID, []ebpf.MapID) {
	return append([]ebpf.ProgramID(nil), s.progIDs...), append([]ebpf.MapID(nil), s.mapIDs...)
}

// Close detaches every program and frees every map. It is safe after a
// failed Load and when called more than once.
func (s *Sensor) Close() error {
	if s == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		var errs []error
		if s.rd != nil {
			s.rdMu.Lock()
			s.rdClosed = true
			errs = append(errs, s.rd.Close())
			s.rdMu.Unlock()
		}
		s.self.mu.Lock() // a repair may be swapping a link
		for i := len(s.links) - 1; i >= 0; i-- {
			errs = append(errs, s.links[i].Close())
		}
		s.links = nil
		s.self.mu.Unlock()
		if s.coll != nil {
			s.coll.Close()
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// bootEpoch returns the wall-clock time at which CLOCK_BOOTTIME was zero,
// to turn bpf_ktime_get_boot_ns() stamps into wall time.
func bootEpoch() (time.Time, error) {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Time{}, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
	}
	return now.Add(-time.Duration(ts.Nano())), nil
}

// Run reads the ring buffer until ctx is done and calls emit for every
// event, from the calling goroutine only. Records are submitted without a
// wakeup, so Run drains the ring every PollInterval (or earlier, when the
// kernel wakes it because the ring is filling). Kernel drops and decode
// errors are reported in-band as event.KindLost events.
func (s *Sensor) Run(ctx context.Context, emit func(*event.Event)) error {
	if s.floor {
		<-ctx.Done()
		return nil
	}
	if s.rd == nil {
		return errors.New("run sensor: not loaded")
	}
	poll := s.cfg.PollInterval.D()
	var rec ringbuf.Record
	next := time.Now().Add(poll)
	s.rd.SetDeadline(next)
	n := 0
	for {
		err := s.rd.ReadInto(&rec)
		switch {
		case err == nil:
			s.handle(rec.RawSample, emit)
			// Under a sustained stream the ring never runs dry; still look at
			// the clock now and then so that ticks and ctx are not starved.
			if n++; n&255 == 0 && time.Now().After(next) {
				s.tick(time.Now(), emit)
				if ctx.Err() != nil {
					return nil
				}
				next = time.Now().Add(poll)
				s.rd.SetDeadline(next)
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			now := time.Now()
			s.tick(now, emit)
			if ctx.Err() != nil {
				return nil
			}
			next = now.Add(poll)
			s.rd.SetDeadline(next)
		case errors.Is(err, ringbuf.ErrClosed), errors.Is(err, os.ErrClosed):
			return nil
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
}

func (s *Sensor) handle(b []byte, emit func(*event.Event)) {
	if len(b) >= hdrSize && le.Uint16(b[hdrType:]) == recCgroup {
		s.handleCgroup(b) // context for later events, not an event
		return
	}
	if len(b) >= hdrSize && le.Uint16(b[hdrType:]) == recSockClosed {
		// Not an event: the egress reporter closes the socket's entries.
		if err := s.egress.sockClosed(b); err != nil && s.decodeErrors.Add(1) <= 10 {
			s.log.Warn("dropped a malformed record", "error", err)
		}
		return
	}
	ev, err := s.dec.decode(b)
	if err != nil {
		if s.decodeErrors.Add(1) <= 10 {
			s.log.Warn("dropped a malformed record", "error", err)
		}
		return
	}
	s.events.Add(1)
	ev.Priority = le.Uint32(b[hdrFlags:])&hdrFPrio != 0
	emit(ev)
}

// tick runs on the reader goroutine after each drain of the ring buffer: it
// reads the kernel drop counters, reports growth as Lost events, and runs
// the periodic egress report.
func (s *Sensor) tick(now time.Time, emit func(*event.Event)) {
	var total [dropSources]uint64
	if err := sumPerCPU(s.coll.Maps["drops"], "drops", 0, total[:]); err != nil {
		s.log.Warn("read drop counters", "error", err)
	}
	for i := range total {
		prev := s.drops[i].Load()
		if total[i] <= prev {
			continue
		}
		if dropIsLoss[i] {
			emit(&event.Event{Kind: event.KindLost, Time: now, Process: &event.Process{},
				Lost: &event.Lost{Source: dropNames[i], Count: total[i] - prev}})
		}
		s.drops[i].Store(total[i])
	}
	if err := s.flood.report(s.coll.Maps[floodMapName], &total, now, emit); err != nil && s.flood.errs() <= 10 {
		s.log.Warn("flood report: losses reported without their cgroup", "error", err)
	}
	if de := s.decodeErrors.Load(); de > s.lostDecoder {
		emit(&event.Event{Kind: event.KindLost, Time: now, Process: &event.Process{},
			Lost: &event.Lost{Source: lostSourceDecoder, Count: de - s.lostDecoder}})
		s.lostDecoder = de
	}
	egressTick(s, now, emit)
	selfTick(s, now, emit)
}

// sumPerCPU sums the per-CPU counters first, first+1, ... of the array
// map named name into total.
func sumPerCPU(m *ebpf.Map, name string, first int, total []uint64) error {
	if m == nil {
		return fmt.Errorf("no %s map", name)
	}
	var per []uint64
	for i := range total {
		if err := m.Lookup(uint32(first+i), &per); err != nil {
			return fmt.Errorf("lookup %s[%d]: %w", name, first+i, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		total[i] = sum
	}
	return nil
}

// ProgramStat is the kernel's run statistics of one program.
type ProgramStat struct {
	Runs    uint64
	Runtime time.Duration
	// RecursionMisses are runs skipped because another BPF program was
	// running on that CPU (5.12+).
	RecursionMisses uint64
}

// ProgramStats returns run count and cumulative run time of each attached
// program. The kernel counts them only while statistics are enabled
// (ebpf.EnableStats or sysctl kernel.bpf_stats_enabled); otherwise they are 0.
// A nil *Sensor has no programs.
func (s *Sensor) ProgramStats() map[string]ProgramStat {
	out := map[string]ProgramStat{}
	if s == nil {
		return out
	}
	for _, name := range s.progs {
		p := s.coll.Programs[name]
		if p == nil {
			continue
		}
		st, err := p.Stats()
		if err != nil {
			continue
		}
		out[name] = ProgramStat{Runs: st.RunCount, Runtime: st.Runtime, RecursionMisses: st.RecursionMisses}
	}
	return out
}
