package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/detect"
	"github.com/kestrel-sec/kestrel/internal/detect/model"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/gpu"
	"github.com/kestrel-sec/kestrel/internal/pipeline"
	"github.com/kestrel-sec/kestrel/internal/runtime"
	"github.com/kestrel-sec/kestrel/internal/runtime/enrich"
)

// stack is the whole in-process sensor: kernel capture, GPU sampler,
// enrichment, rules, and the pipeline that joins them. Sinks are given by the
// caller (the export ring for the daemon, a printer for --tail).
type stack struct {
	cfg      *config.Config
	log      *slog.Logger
	kernel   *runtime.Sensor
	gpu      *gpu.Sampler
	assigner *gpu.Assigner
	enricher *enrich.Enricher
	engine   *detect.Engine
	det      *snapshotDetector
	models   *modelIdentity
	pipe     *pipeline.Pipeline
	started  time.Time
	bg       sync.WaitGroup
	cancelBG context.CancelFunc
	// attached is true from a successful load and attach until Close
	// detaches; running while the pipeline runs. Ready is both.
	attached atomic.Bool
	running  atomic.Bool
}

// newStack builds every stage and loads and attaches the eBPF programs last.
// On error everything already created is released: nothing stays attached.
// A stage that refuses its configuration returns a configError (exit 2),
// always before anything is loaded.
func newStack(ctx context.Context, cfg *config.Config, log *slog.Logger, sinks []pipeline.Sink) (_ *stack, err error) {
	s := &stack{cfg: cfg, log: log, started: time.Now()}
	bgctx, cancel := context.WithCancel(ctx)
	s.cancelBG = cancel
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	s.gpu, err = gpu.NewSampler(cfg.GPU, &gpu.Options{Logger: log})
	if err != nil {
		if !errors.Is(err, gpu.ErrNoDriver) && cfg.GPU.Source != config.GPUSourceNVML && cfg.GPU.Source != "" {
			return nil, configError{fmt.Errorf("start GPU sampler: %w", err)}
		}
		// No driver, or NVML refused to start: one clear line, then carry on.
		if errors.Is(err, gpu.ErrNoDriver) {
			log.Info(gpu.ErrNoDriver.Error())
		} else {
			log.Warn("NVML failed to start; GPU ownership disabled", "err", err)
		}
		err = nil
	}
	s.assigner, err = gpu.NewAssigner(cfg.GPU, &gpu.AssignerOptions{Logger: log})
	if err != nil {
		return nil, configError{fmt.Errorf("start GPU assignments: %w", err)}
	}
	s.goBG(func() { _ = s.assigner.Run(bgctx) })

	fs, err := newProcFS()
	if err != nil {
		return nil, fmt.Errorf("open procfs: %w", err)
	}
	// The initial namespaces come from kthreadd: PID 1 may be unreadable.
	hostNS, err := fs.Namespaces(2)
	if err != nil {
		log.Warn("cannot read the initial namespaces from /proc/2/ns; host-namespace rules are degraded", "err", err)
	}

	s.enricher, err = enrich.New(cfg.Context, &enrich.Options{Logger: log, GPUAssignments: gpuAlloc{s.assigner, s.gpu}})
	if err != nil {
		return nil, configError{fmt.Errorf("create enricher: %w", err)}
	}
	if err := s.enricher.Start(bgctx); err != nil {
		return nil, fmt.Errorf("start enricher: %w", err)
	}

	s.models = &modelIdentity{log: log}
	s.engine, err = detect.New(cfg.Detect, &detect.Options{Logger: log, HostNS: hostNS, Proc: procView{fs},
		AI: &detect.AIOptions{StaticAlloc: s.assigner.StaticAlloc, Node: os.Getenv("NODE_NAME"),
			ModelIdentity: s.models.update},
		Self:    detect.SelfIdentity{PID: uint32(os.Getpid()), IsThread: isOwnThread},
		Sockets: newRuntimeSockets(cfg, log)})
	if err != nil {
		return nil, configError{fmt.Errorf("create rule engine: %w", err)}
	}
	s.goBG(func() { _ = s.engine.Run(bgctx) }) // the model registry's rate-limited hasher
	s.det = &snapshotDetector{Engine: s.engine}
	s.det.counters.Store(map[string]uint64{})

	// The kernel's cgroup records keep the enricher's index of cgroup
	// paths current, so that every process is attributed at event time.
	// Loading comes after every stage took its configuration, so a config
	// error is reported as such (exit 2) before anything is loaded.
	if err := runtime.CheckPrivileges(); err != nil {
		return nil, err
	}
	ropts := &runtime.Options{Logger: log}
	if cg := s.enricher.Cgroups(); cg != nil {
		ropts.Cgroups = cg
	}
	s.kernel, err = runtime.Load(cfg.Capture, ropts)
	if err != nil {
		return nil, fmt.Errorf("load eBPF programs: %w", err)
	}
	s.models.attach(s.kernel)
	s.attached.Store(true)

	match := s.engine.ModelMatcher()
	seed := heldSeed{fs: fs, log: log, isModel: func(p string, size int64) bool {
		ok, _ := match.IsModel("", p, size)
		return ok
	}}
	sources := []pipeline.Source{s.kernel, seed}
	if s.gpu.Enabled() {
		sources = append(sources, s.gpu)
	}
	s.pipe = pipeline.New(sources, s.enricher, s.det, sinks, &pipeline.Options{Logger: log})
	return s, nil
}

func (s *stack) goBG(f func()) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f()
	}()
}

// Run runs the pipeline until ctx is done.
func (s *stack) Run(ctx context.Context) error {
	s.running.Store(true)
	defer s.running.Store(false)
	return s.pipe.Run(ctx)
}

// Close detaches every program and stops every stage. Safe on a partly built
// stack and more than once.
func (s *stack) Close() {
	if s.models != nil {
		s.models.attach(nil)
	}
	s.attached.Store(false)
	if s.kernel != nil {
		if err := s.kernel.Close(); err != nil {
			s.log.Error("detach eBPF programs", "err", err)
		}
		s.kernel = nil
	}
	if s.cancelBG != nil {
		s.cancelBG()
	}
	s.bg.Wait()
	if s.gpu != nil {
		_ = s.gpu.Close()
	}
	if s.assigner != nil {
		_ = s.assigner.Close()
	}
}

// readyEvent is the first line of --tail: everything is attached.
func (s *stack) readyEvent() *event.Event {
	st := s.status()
	st.Ready = true
	return &event.Event{Kind: event.KindStatus, Time: time.Now(), Status: st}
}

// heartbeatEvent is the daemon's periodic status event
// (export.status_interval): small, so that writing one every few seconds
// costs the outputs nothing, and enough to alert on (its absence) and to
// watch losses with (its counters).
func (s *stack) heartbeatEvent(now time.Time) *event.Event {
	full := s.status()
	st := &event.Status{Ready: s.kernel != nil, Message: "heartbeat: " + full.Message,
		Fields: full.Fields, Counters: map[string]uint64{}}
	st.Fields[event.FieldHeartbeat] = "true"
	st.Fields["programs"] = strconv.Itoa(len(full.Programs))
	for k, v := range full.Counters {
		if strings.HasPrefix(k, "drops_") || strings.HasPrefix(k, "lost_") || heartbeatCounters[k] {
			st.Counters[k] = v
		}
	}
	return &event.Event{Kind: event.KindStatus, Time: now, Status: st}
}

// heartbeatCounters are the counters a heartbeat carries besides the losses.
var heartbeatCounters = map[string]bool{
	"events_decoded": true, "decode_errors": true, "pipeline_processed": true, "pipeline_findings": true,
	"flood_priority_demoted": true, "selfcheck_tampered": true, "selfcheck_gaps": true,
}

// status gathers the state of every stage for GetStatus and the status line.
// It is safe to call from any goroutine.
func (s *stack) status() *event.Status {
	st := &event.Status{Fields: map[string]string{}, Counters: map[string]uint64{}}
	if k := s.kernel; k != nil {
		st.Programs = k.Programs()
		sort.Strings(st.Programs)
		maps.Copy(st.Counters, k.Counters())
	}
	if s.pipe != nil {
		maps.Copy(st.Counters, s.pipe.Counters())
	}
	if s.enricher != nil {
		maps.Copy(st.Counters, s.enricher.Counters())
	}
	if s.det != nil {
		maps.Copy(st.Counters, s.det.counters.Load().(map[string]uint64))
	}
	gpuState := "disabled"
	if s.gpu != nil {
		gpuState = s.gpu.State()
	}
	st.Ready = s.attached.Load() && s.running.Load()
	st.GPUEnabled = s.gpu.Enabled()
	st.Fields["nvml"] = gpuState
	st.Fields["version"] = version
	st.Fields["uptime"] = time.Since(s.started).Round(time.Second).String()
	// A leak shows here first (the soak watches it).
	st.Counters["process_goroutines"] = uint64(goruntime.NumGoroutine())
	st.Fields["node"] = nodeName()
	st.Message = "GPU: " + gpuState
	if s.kernel != nil {
		sc := s.kernel.SelfCheck()
		st.Fields[event.FieldSelfCheck] = sc
		st.Message += selfCheckNote(sc)
	}
	return st
}

// selfCheckNote is what the status line adds when the sensor's BPF objects
// were tampered with: that line must not read as all clear.
func selfCheckNote(selfCheck string) string {
	if selfCheck == "" || selfCheck == "ok" {
		return ""
	}
	return "; self-check: " + selfCheck
}

// isOwnThread reports whether tid is a thread of this process: a tracer
// may attach to any one of them.
func isOwnThread(tid uint32) bool {
	_, err := os.Stat("/proc/self/task/" + strconv.FormatUint(uint64(tid), 10))
	return err == nil
}

// snapshotDetector runs the engine on the pipeline goroutine and publishes a
// copy of its counters at every flush, so other goroutines (GetStatus) never
// touch the engine.
type snapshotDetector struct {
	*detect.Engine
	counters atomic.Value // map[string]uint64
}

func (d *snapshotDetector) Flush(now time.Time, emit func(*event.Event)) {
	d.Engine.Flush(now, emit)
	d.counters.Store(maps.Clone(d.Engine.Counters()))
}

// modelIdentity hands the model files the rule engine decides on (the
// registry's, and those its root walks find) to the kernel, which reports
// an open of one by its inode whatever name reaches it. The engine starts
// before the programs load: what it says until then is held.
type modelIdentity struct {
	log    *slog.Logger
	mu     sync.Mutex
	kernel *runtime.Sensor
	add    map[runtime.FileID]struct{} // held until the kernel is attached
}

func fileIDs(keys []model.Key) []runtime.FileID {
	ids := make([]runtime.FileID, 0, len(keys))
	for _, k := range keys {
		if k.Inode != 0 {
			ids = append(ids, runtime.FileID{Dev: k.Dev, Inode: k.Inode})
		}
	}
	return ids
}

// update is detect.AIOptions.ModelIdentity.
func (m *modelIdentity) update(add, remove []model.Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.kernel == nil {
		if m.add == nil {
			m.add = map[runtime.FileID]struct{}{}
		}
		for _, id := range fileIDs(add) {
			if len(m.add) < runtime.MaxModelFiles {
				m.add[id] = struct{}{}
			}
		}
		for _, id := range fileIDs(remove) {
			delete(m.add, id)
		}
		return
	}
	if err := m.kernel.SetModelFiles(fileIDs(add), fileIDs(remove)); err != nil {
		m.log.Warn("update the kernel's model files", "err", err)
	}
}

// attach sends what was held to k and forwards updates to it from now
// on; nil detaches (updates are then held again, and dropped at exit).
func (m *modelIdentity) attach(k *runtime.Sensor) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kernel = k
	if k == nil || len(m.add) == 0 {
		return
	}
	ids := make([]runtime.FileID, 0, len(m.add))
	for id := range m.add {
		ids = append(ids, id)
	}
	m.add = nil
	if err := k.SetModelFiles(ids, nil); err != nil {
		m.log.Warn("give the kernel the model files found so far", "err", err)
	}
}
