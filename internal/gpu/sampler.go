package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// ErrNoDriver is returned by NewSampler when libnvidia-ml.so.1 cannot be
// loaded or the NVIDIA kernel driver is not running. It is the expected state
// of a CPU-only host: log it once and carry on.
var ErrNoDriver = errors.New("no NVIDIA driver found; GPU ownership disabled")

// InitError is returned by NewSampler when the NVML library loaded but
// nvmlInit failed for another reason (permissions, a GPU fallen off the bus,
// a driver/library mismatch).
type InitError struct {
	// Code is NVML's return code (nvmlReturn_t).
	Code int
	// Reason is NVML's string for Code.
	Reason string
}

func (e *InitError) Error() string {
	return fmt.Sprintf("initialize NVML: %s; GPU ownership disabled", e.Reason)
}

// Options are the optional arguments of NewSampler. A nil *Options is valid.
type Options struct {
	// Logger receives sampling problems; nil means slog.Default().
	Logger *slog.Logger
	// Lib is the NVML implementation; nil means the real library, loaded
	// from config.GPUConfig.LibraryPath or libnvidia-ml.so.1. Tests pass
	// go-nvml's mock.
	Lib Library
}

// Stats counts what a Sampler did.
type Stats struct {
	// Samples counts successful samples.
	Samples uint64
	// Errors counts samples that failed as a whole (unreadable or malformed
	// replay file, NVML failure); the previous state was kept.
	Errors uint64
	// Stale counts devices whose owners could not be read in a sample; their
	// previous owners were kept.
	Stale uint64
	// Events counts gpu events emitted.
	Events uint64
}

// Sampler samples GPU ownership and emits the changes as gpu events.
//
// Snapshot, State, Stats and UUIDByIndex are safe for concurrent use with Run
// and Poll; Run and Poll must not be called concurrently with each other.
type Sampler struct {
	log      *slog.Logger
	interval time.Duration
	minDelta uint64
	src      source // nil when disabled
	disabled string // State when src is nil

	closeOnce sync.Once
	closeErr  error

	// reported is what the last emitted event said about each owner; only
	// Poll touches it.
	reported map[ownerKey]reportedOwner
	lastErr  string

	mu    sync.Mutex
	snap  Snapshot
	stats Stats
}

type ownerKey struct {
	dev deviceKey
	pid uint32
}

type reportedOwner struct {
	index int
	name  string
	used  uint64
}

// NewSampler returns a Sampler reading from the source that cfg names.
//
// With gpu.source off it returns a disabled Sampler and no error. When the
// NVML library is absent it returns a disabled Sampler and ErrNoDriver; when
// NVML fails to initialise, a disabled Sampler and an *InitError. A disabled
// Sampler's Run returns at once and its State says why. NewSampler does not
// log those errors: the caller logs them, once.
func NewSampler(cfg config.GPUConfig, opts *Options) (*Sampler, error) {
	if opts == nil {
		opts = &Options{}
	}
	s := &Sampler{
		log:      opts.Logger,
		interval: cfg.Interval.D(),
		minDelta: cfg.UpdateMinBytes,
		reported: make(map[ownerKey]reportedOwner),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "gpu")
	if s.interval <= 0 {
		s.interval = time.Second
	}
	if s.minDelta == 0 {
		// Zero would report every page the allocator touches.
		s.minDelta = 1
	}

	switch cfg.Source {
	case config.GPUSourceOff:
		s.disable("disabled: gpu.source is off")
		return s, nil
	case config.GPUSourceReplay:
		if cfg.ReplayFile == "" {
			s.disable("disabled: gpu.replay_file is empty")
			return s, errors.New("gpu.replay_file: required when gpu.source is replay")
		}
		s.src = newReplaySource(cfg.ReplayFile)
	case config.GPUSourceNVML, "":
		src, err := newNVMLSource(cfg.LibraryPath, opts.Lib)
		if err != nil {
			if errors.Is(err, ErrNoDriver) {
				s.disable("disabled: " + noDriverState)
			} else {
				s.disable("disabled: " + err.Error())
			}
			return s, err
		}
		s.src = src
		if host, err := inHostPIDNamespace("/proc"); err == nil && !host {
			s.log.Warn("the sensor is not in the host PID namespace: NVML lists no GPU processes from here " +
				"and the PIDs it does report cannot be joined; run it with hostPID: true")
		}
	default:
		s.disable("disabled: unknown gpu.source")
		return s, fmt.Errorf("gpu.source: %q is not one of nvml, replay, off", cfg.Source)
	}
	s.snap.State = s.src.state()
	return s, nil
}

func (s *Sampler) disable(why string) {
	s.disabled = why
	s.snap.State = why
}

// Enabled reports whether the Sampler has a source to read.
func (s *Sampler) Enabled() bool { return s != nil && s.src != nil }

// Run samples every interval until ctx is done, passing each change to emit,
// then releases the source. A failed sample is counted and logged (once per
// distinct error, and again on recovery), and the previous state is kept.
// Run returns nil when ctx ends, and at once for a disabled Sampler.
func (s *Sampler) Run(ctx context.Context, emit func(*event.Event)) error {
	if !s.Enabled() {
		return nil
	}
	defer s.Close()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.poll(ctx, emit)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// poll is Poll plus Run's logging.
func (s *Sampler) poll(ctx context.Context, emit func(*event.Event)) {
	err := s.Poll(ctx, emit)
	switch {
	case err != nil && ctx.Err() != nil:
	case err != nil && err.Error() != s.lastErr:
		s.lastErr = err.Error()
		s.log.Warn("GPU ownership sample failed; keeping the previous state", "err", err)
	case err == nil && s.lastErr != "":
		s.lastErr = ""
		s.log.Info("GPU ownership sampling recovered", "source", s.State())
	}
}

// Poll takes one sample and emits the differences from the previous one:
// start, update and stop events, ordered by device then PID. On error nothing
// is emitted and the previous state stands. Run calls Poll; tests and the
// `sensor gpus` command call it directly.
func (s *Sampler) Poll(ctx context.Context, emit func(*event.Event)) error {
	if !s.Enabled() {
		return errors.New("sample GPU ownership: " + s.disabled)
	}
	r, err := s.src.sample(ctx)
	now := time.Now()
	if err != nil {
		s.mu.Lock()
		s.stats.Errors++
		s.mu.Unlock()
		return err
	}

	s.mu.Lock()
	prev := s.snap.Devices
	s.mu.Unlock()
	devs := r.devices
	if len(r.stale) > 0 {
		devs = keepStale(devs, prev, r.stale)
	}
	sortDevices(devs)

	var events []*event.Event
	seen := make(map[ownerKey]bool, len(s.reported))
	for i := range devs {
		d := &devs[i]
		for _, o := range d.Owners {
			k := ownerKey{d.key(), o.PID}
			seen[k] = true
			old, ok := s.reported[k]
			change := ""
			switch {
			case !ok:
				change = event.GPUStart
			case absDiff(old.used, o.UsedBytes) >= s.minDelta:
				change = event.GPUUpdate
			default:
				continue
			}
			s.reported[k] = reportedOwner{index: d.Index, name: d.Name, used: o.UsedBytes}
			events = append(events, gpuEvent(now, change, d.UUID, d.MIG, d.Index, d.Name, o.PID, o.UsedBytes))
		}
	}
	var gone []ownerKey
	for k := range s.reported {
		if !seen[k] {
			gone = append(gone, k)
		}
	}
	sort.Slice(gone, func(i, j int) bool {
		a, b := gone[i], gone[j]
		if ia, ib := s.reported[a].index, s.reported[b].index; ia != ib {
			return ia < ib
		}
		if a.dev != b.dev {
			return a.dev.uuid+"/"+a.dev.mig < b.dev.uuid+"/"+b.dev.mig
		}
		return a.pid < b.pid
	})
	for _, k := range gone {
		old := s.reported[k]
		delete(s.reported, k)
		events = append(events, gpuEvent(now, event.GPUStop, k.dev.uuid, k.dev.mig, old.index, old.name, k.pid, 0))
	}

	s.mu.Lock()
	s.snap = Snapshot{Time: now, State: s.src.state(), Devices: devs}
	s.stats.Samples++
	s.stats.Stale += uint64(len(r.stale))
	s.stats.Events += uint64(len(events))
	s.mu.Unlock()

	if emit != nil {
		for _, e := range events {
			emit(e)
		}
	}
	return nil
}

func gpuEvent(now time.Time, change, uuid, mig string, index int, name string, pid uint32, used uint64) *event.Event {
	return &event.Event{
		Kind: event.KindGPU,
		Time: now,
		GPU: &event.GPU{
			Change:    change,
			UUID:      uuid,
			Index:     index,
			MIG:       mig,
			Name:      name,
			PID:       pid,
			UsedBytes: used,
		},
	}
}

// keepStale carries the previous owners over to devices whose process list
// could not be read, adding devices that vanished from the reading.
func keepStale(devs, prev []Device, stale map[deviceKey]bool) []Device {
	byKey := make(map[deviceKey]int, len(devs))
	for i := range devs {
		byKey[devs[i].key()] = i
	}
	for _, p := range prev {
		if !stale[p.key()] {
			continue
		}
		// Copies: the previous snapshot may be read concurrently.
		owners := append([]Owner(nil), p.Owners...)
		if i, ok := byKey[p.key()]; ok {
			devs[i].Owners = owners
		} else {
			p.Owners = owners
			devs = append(devs, p)
		}
	}
	return devs
}

func sortDevices(devs []Device) {
	sort.SliceStable(devs, func(i, j int) bool {
		if devs[i].Index != devs[j].Index {
			return devs[i].Index < devs[j].Index
		}
		return devs[i].MIG < devs[j].MIG // "" (the whole GPU) first
	})
	for i := range devs {
		o := devs[i].Owners
		sort.Slice(o, func(a, b int) bool { return o[a].PID < o[b].PID })
	}
}

func absDiff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

// Snapshot returns the devices and owners of the last successful sample. The
// result is a copy the caller may keep.
func (s *Sampler) Snapshot() Snapshot {
	if s == nil {
		return Snapshot{State: "disabled"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.snap
	out.Devices = make([]Device, len(s.snap.Devices))
	for i, d := range s.snap.Devices {
		d.Owners = append([]Owner(nil), d.Owners...)
		out.Devices[i] = d
	}
	return out
}

// State describes the source in one line for status output, e.g.
// "nvml ok (8 GPUs, driver 580.82.07)", "replay /run/gpu.json" or
// "disabled: no NVIDIA driver found".
func (s *Sampler) State() string {
	if s == nil {
		return "disabled"
	}
	if s.src == nil {
		return s.disabled
	}
	return s.src.state()
}

// Stats returns the sampler's counters.
func (s *Sampler) Stats() Stats {
	if s == nil {
		return Stats{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// UUIDByIndex returns the UUID of the whole GPU with the given index in the
// last sample; with the replay source and no "gpus" list in its file, the
// SyntheticUUID of any index. It turns gpu.static_alloc indexes into UUIDs.
func (s *Sampler) UUIDByIndex(index int) (string, bool) {
	if s == nil {
		return "", false
	}
	s.mu.Lock()
	for _, d := range s.snap.Devices {
		if d.Index == index && d.MIG == "" {
			s.mu.Unlock()
			return d.UUID, true
		}
	}
	s.mu.Unlock()
	if r, ok := s.src.(*replaySource); ok {
		return r.syntheticUUID(index)
	}
	return "", false
}

// StaticUUIDs returns the UUIDs of the GPUs gpu.static_alloc assigns to the
// container with the given cgroup path, resolved through the sampler's
// devices. ok is false when no pattern matches; indexes the sampler does
// not know are left out.
func StaticUUIDs(a *Assigner, s *Sampler, cgroupPath string) (uuids []string, ok bool) {
	idx, ok := a.StaticAlloc(cgroupPath)
	if !ok {
		return nil, false
	}
	uuids = []string{}
	for _, i := range idx {
		if u, found := s.UUIDByIndex(i); found {
			uuids = append(uuids, u)
		}
	}
	return uuids, true
}

// Close releases the source (NVML's Shutdown). Run calls it on return; call
// it yourself only for a Sampler you never Run. It is safe to call more than
// once.
func (s *Sampler) Close() error {
	if !s.Enabled() {
		return nil
	}
	s.closeOnce.Do(func() { s.closeErr = s.src.close() })
	return s.closeErr
}
