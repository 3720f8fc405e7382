package detect

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kestrel-sec/kestrel/internal/detect/model"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// Model-weight correlation state: the model registry wired into the engine,
// the EXF-001 taint state machine (EXF-001 in docs/rules.md), per-socket
// and per-destination byte counts (EXF-003), per-container GPU allocation
// facts (GPU-002/003/007) and the inventory behind Engine.Inventory.
//
// Everything here is updated from the engine goroutine by aiState.observe,
// before the rules see the event; the rules read it. Every table is an LRU
// bounded by detect.state_size, and every drop is counted.

// AIOptions are the optional inputs of the model-weight and GPU rules. A nil
// *AIOptions is valid.
type AIOptions struct {
	// Registry is the model registry to use; nil builds one with the
	// defaults (hashing on). Engine.Run runs its hasher.
	Registry *model.Registry
	// StaticAlloc returns the GPU indexes gpu.static_alloc assigns to a
	// container cgroup path, and whether a pattern matched (the signature
	// of gpu.Assigner.StaticAlloc). nil means no static allocation.
	StaticAlloc func(cgroupPath string) ([]int, bool)
	// Node names the node in the inventory; "" uses the host name.
	Node string
	// ModelIdentity, when set, is told of the model files the kernel
	// should recognise by device and inode whatever name reaches them
	// (runtime.Sensor.SetModelFiles): the files the registry adds and
	// evicts (when Registry is nil; a caller's registry has its own
	// OnIdentity), and those Engine.Run finds under the model roots, the
	// configured ones at start and those a container's environment names.
	// It is called from the goroutines of Process and Run.
	ModelIdentity func(add, remove []model.Key)
	// ProcRoot is where procfs is mounted (default /proc): a container's
	// model roots are walked through <ProcRoot>/<pid>/root.
	ProcRoot string
}

// Bounds of the correlation state besides state_size.
const (
	maxTaintFiles     = 4     // model files named per taint source
	maxDeferred       = 256   // EXF-001 triggers waiting for promote_grace
	maxKids           = 16    // live children kept per process for pipeline-peer taint
	maxPeersPerActor  = 64    // egress peers kept per inventory actor
	maxEnvRoots       = 256   // model roots learned from container environments
	maxWalkQueue      = 16    // container root walks waiting for Engine.Run
	maxWalkFiles      = 16384 // model files one walk reports
	exf003Window      = 10 * time.Minute
	exf003Critical    = 1 << 30
	exf001CriticalCap = 64 << 20
	sweepWindow       = 5 * time.Second
	sweepPIDs         = 20 // distinct /proc/<pid>/cmdline reads in sweepWindow that make a sweep
	mapsMemWindow     = 10 * time.Second
	lateWindow        = 10 * time.Second // how far back a new GPU owner's descendants are judged again
	lateRing          = 64               // candidate execs and connects kept for that
)

// fileRef names one model file of a taint source.
type fileRef struct {
	key  model.Key
	path string
	size int64
}

// taintSrc is one EXF-001 taint source: a non-owner that read model weights.
// Every process, path and container tainted from it points at it, so that a
// promotion (the reader became a GPU owner within promote_grace) clears them
// all at once.
type taintSrc struct {
	files     [maxTaintFiles]fileRef
	n         int
	maxSize   int64
	reader    uint32
	readerExe string
	cid       string
	at        time.Time
	// dropped is set when the reader became a GPU owner within
	// promote_grace: it was a loader, not a thief.
	dropped bool
	// confirmed is set once the taint did something a loader does not do:
	// it was written to a file, handed to a pipeline peer, ran a transfer
	// tool, or its reader exited without becoming a GPU owner.
	confirmed bool
}

func (s *taintSrc) add(f fileRef) {
	for i := 0; i < s.n; i++ {
		if s.files[i].key == f.key {
			return
		}
	}
	if f.size > s.maxSize {
		s.maxSize = f.size
	}
	if s.n < maxTaintFiles {
		s.files[s.n] = f
		s.n++
	}
}

// criticalBytes is min(64 MiB, 50 % of the largest tainted file).
func (s *taintSrc) criticalBytes() uint64 {
	if s.maxSize > 0 && uint64(s.maxSize)/2 < exf001CriticalCap {
		return uint64(s.maxSize) / 2
	}
	return exf001CriticalCap
}

// Taint propagation paths.
const (
	viaRead      = "read"      // the process read model weights itself
	viaFile      = "file"      // it read a file a tainted process wrote
	viaFork      = "fork"      // it was forked by a tainted process
	viaPipeline  = "pipeline"  // a sibling with an overlapping lifetime was tainted
	viaContainer = "container" // a process of its container read weights
)

// aiProc is what the correlation state keeps per live process.
type aiProc struct {
	parent uint32
	cid    string
	exe    string
	// taint, when src is not nil.
	src      *taintSrc
	srcSince time.Time
	via      string
	from     uint32
	// taintedChild is a live child holding taint: its later siblings are
	// its pipeline peers.
	taintedChild uint32
	// p is the process snapshot of its last exec (of its parent's image for
	// a process that has only forked); the rules derive archiver (EXF-004),
	// kubectl-cp (EXF-005) and inference-server (GPU-001) from it lazily.
	p *event.Process
	// ownerSince is when the process became a GPU owner; firstModel when it
	// first opened a model file; execAt when it last exec'd.
	ownerSince, firstModel, execAt time.Time
	// mapsAt is when it last opened /proc/<owner>/maps (GPU-004 certainty).
	mapsAt    time.Time
	mapsOwner uint32
}

// aiCtr is what the correlation state keeps per container.
type aiCtr struct {
	src      *taintSrc
	srcSince time.Time
	// nvVisible is NVIDIA_VISIBLE_DEVICES of the container's first process
	// that carried it; nvSeen says whether one did.
	nvVisible string
	nvSeen    bool
	// maxModel is the largest model file a process of the container opened.
	maxModel int64
	// baselineExe is the exe of the container's first GPU owner (GPU-002).
	baselineExe string
	// sweepStart and sweepPIDs count /proc/<pid>/cmdline reads (EXF-006).
	sweepStart time.Time
	sweepPIDs  [sweepPIDs]uint32
	sweepN     int
}

// pathKey identifies a tainted file: by device and inode when known, else
// by container and path.
type pathKey struct {
	dev, ino uint64
	cid      string
	path     string
}

type pathTaint struct {
	src   *taintSrc
	since time.Time
	by    uint32
}

// aiSock is one connected socket of interest: to a destination that is not
// allowlisted for its container.
type aiSock struct {
	pid      uint32
	cid      string
	addr     netip.Addr
	port     uint16
	class    string
	bytes    uint64
	exfLevel event.Severity // highest EXF-001 severity reported for it
	exfBytes uint64         // bytes named in the last EXF-001 report
	exfSrc   *taintSrc
	// lastCtr is the socket's container snapshot (for deferred reports).
	counted uint64 // bytes already added to the EXF-003 bucket
}

type bucketKey struct {
	cid    string
	prefix netip.Prefix
}

type bucket struct {
	start    time.Time
	bytes    uint64
	reported uint64         // bytes named in the last EXF-003 report
	level    event.Severity // highest EXF-003 severity reported in this window
}

// exfTrigger is an EXF-001 conclusion waiting to be emitted by the rule.
type exfTrigger struct {
	ev       *event.Event
	src      *taintSrc
	sender   *event.Process
	via      string
	cond     string // egress, runtime_socket, transfer_tool
	dest     string
	class    string
	bytes    uint64
	sev      event.Severity
	stage    string
	cookie   uint64
	deadline time.Time
}

// lateCand is a candidate event kept for late lineage. Process and
// Container are immutable snapshots; the Net payload is copied.
type lateCand struct {
	kind  event.Kind
	t     time.Time
	p     *event.Process
	c     *event.Container
	net   event.Net
	owner uint32 // set when matched
}

// event rebuilds the candidate as an event (allocates; findings only).
func (l *lateCand) event() *event.Event {
	ev := &event.Event{Kind: l.kind, Time: l.t, Process: l.p, Container: l.c}
	if l.kind == event.KindConnect {
		n := l.net
		ev.Net = &n
	}
	return ev
}

// remember keeps ev as a late-lineage candidate when it is one.
func (a *aiState) remember(st *State, ev *event.Event) {
	p := ev.Process
	switch ev.Kind {
	case event.KindExec:
		if ev.Container == nil || !isGPUChild(p) {
			return
		}
	case event.KindConnect:
		n := ev.Net
		if n == nil || !n.DAddr.IsValid() || n.Class == event.ClassLoopback || n.DAddr.IsLoopback() ||
			a.s.EgressAllowed(ev.Container, n.DAddr, n.DPort) {
			return
		}
	default:
		return
	}
	if _, ok := gpuLineage(st, p, ev.Container); ok {
		return // judged now
	}
	l := &a.ring[a.ringN%lateRing]
	a.ringN++
	*l = lateCand{kind: ev.Kind, t: ev.Time, p: p, c: ev.Container}
	if ev.Net != nil {
		l.net = *ev.Net
	}
}

// lateMatches collects the remembered events of the last lateWindow, and
// since the owner's current image was exec'd, whose process descends from
// owner pid in the same container (or, for connects, is the owner). Events
// before that exec belong to the image the pid ran before (a pyenv or
// conda shim that execs the server, say).
func (a *aiState) lateMatches(pid uint32, cid string, since, now time.Time) {
	for i := range a.ring {
		l := &a.ring[i]
		if l.p == nil || now.Sub(l.t) > lateWindow || l.t.Before(since) || cidOf(l.c) != cid {
			continue
		}
		hit := l.p.PID == pid && l.kind == event.KindConnect
		for _, an := range l.p.Ancestors {
			hit = hit || an.PID == pid
		}
		if hit {
			m := *l
			m.owner = pid
			a.late = append(a.late, m)
			l.p = nil
		}
	}
}

// aiState is the correlation state of the model-weight and GPU rules.
type aiState struct {
	s        *Settings
	reg      *model.Registry
	match    *model.Matcher
	static   func(string) ([]int, bool)
	updaters []workloadGlobs
	window   time.Duration
	grace    time.Duration

	procs   *LRU[uint32, aiProc]
	kids    *LRU[uint32, kidSet]
	ctrs    *LRU[string, aiCtr]
	paths   *LRU[pathKey, pathTaint]
	socks   *LRU[uint64, aiSock]
	buckets *LRU[bucketKey, bucket]

	// out are the EXF-001 triggers of the current event; deferred wait for
	// their source's promote_grace to end.
	out      []exfTrigger
	deferred []exfTrigger

	// ring holds recent container execs of shells/tools and inet connects
	// outside the allowlist; late are those a new GPU owner turned out to
	// be an ancestor of (GPU-001/GPU-006 judge them on the gpu event).
	ring  [lateRing]lateCand
	ringN int
	late  []lateCand

	inv *inventory

	// identity and walks feed the kernel's model files by identity;
	// walks are run by Engine.Run.
	identity func(add, remove []model.Key)
	walks    chan rootWalk
	procRoot string
	walked   walkCounters

	envRoots                                                     int
	deferDrops, envRootDrops, sources, promoted, trigs, kidDrops uint64
}

type workloadGlobs struct {
	w     workload
	globs []string
}

func newAIState(s *Settings, opts *AIOptions, log *slog.Logger, size int) (*aiState, error) {
	if opts == nil {
		opts = &AIOptions{}
	}
	cfg := s.Config
	m, err := model.NewMatcherFromConfig(&cfg)
	if err != nil {
		return nil, fmt.Errorf("build model matcher: %w", err)
	}
	reg := opts.Registry
	if reg == nil {
		if reg, err = model.NewRegistry(&model.RegistryOptions{Logger: log, OnIdentity: opts.ModelIdentity}); err != nil {
			return nil, fmt.Errorf("build model registry: %w", err)
		}
	}
	a := &aiState{
		s: s, reg: reg, match: m, static: opts.StaticAlloc,
		window: cfg.ExfilWindow.D(), grace: cfg.PromoteGrace.D(),
		procs:   NewLRU[uint32, aiProc](size, nil),
		kids:    NewLRU[uint32, kidSet](size, nil),
		ctrs:    NewLRU[string, aiCtr](size, nil),
		paths:   NewLRU[pathKey, pathTaint](size, nil),
		socks:   NewLRU[uint64, aiSock](size, nil),
		buckets: NewLRU[bucketKey, bucket](size, nil),
		inv:     newInventory(opts.Node, size),

		identity: opts.ModelIdentity,
		procRoot: opts.ProcRoot,
	}
	if a.procRoot == "" {
		a.procRoot = "/proc"
	}
	if a.identity != nil {
		a.walks = make(chan rootWalk, maxWalkQueue)
	}
	if a.window <= 0 {
		a.window = 600 * time.Second
	}
	keys := make([]string, 0, len(cfg.ModelUpdaters))
	for k := range cfg.ModelUpdaters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w, err := compileWorkload(k)
		if err != nil {
			return nil, fmt.Errorf("model_updaters: key %q: %w", k, err)
		}
		a.updaters = append(a.updaters, workloadGlobs{w: w, globs: cfg.ModelUpdaters[k]})
	}
	return a, nil
}

// Run runs the background work of the engine until ctx is done: the model
// registry's rate limited hasher, and the walks of the model roots that
// tell AIOptions.ModelIdentity of the model files there. Call it once, from
// its own goroutine, beside the goroutine that calls Process. It returns
// nil when ctx is done.
func (e *Engine) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.ai.runWalks(ctx)
	}()
	err := e.ai.reg.Run(ctx)
	<-done
	if err != nil {
		return fmt.Errorf("run model hasher: %w", err)
	}
	return nil
}

// rootWalk is a walk of model roots as one process sees them.
type rootWalk struct {
	prefix string // "" for the sensor's view, <ProcRoot>/<pid>/root for a container's
	roots  []string
}

// walkCounters count the root walks (written by Run's walker goroutine).
type walkCounters struct {
	walks, files, errors, limited, dropped atomic.Uint64
}

// runWalks walks the configured model roots, then each container's roots
// queued by onExec, and tells the identity sink of the model files found.
func (a *aiState) runWalks(ctx context.Context) {
	if a.identity == nil {
		return
	}
	a.walk(ctx, rootWalk{roots: a.match.Roots()})
	for {
		select {
		case <-ctx.Done():
			return
		case w := <-a.walks:
			a.walk(ctx, w)
		}
	}
}

func (a *aiState) walk(ctx context.Context, w rootWalk) {
	keys, st, err := model.Walk(ctx, a.match, w.roots, w.prefix, maxWalkFiles)
	a.walked.walks.Add(1)
	a.walked.files.Add(uint64(len(keys)))
	a.walked.errors.Add(uint64(st.Errors))
	if st.Limited {
		a.walked.limited.Add(1)
	}
	if err != nil && ctx.Err() == nil {
		a.walked.errors.Add(1)
	}
	if len(keys) > 0 {
		a.identity(keys, nil)
	}
}

// queueWalk asks Run to walk roots as process pid sees them; a full queue
// is counted.
func (a *aiState) queueWalk(pid uint32, roots []string) {
	if a.walks == nil {
		return
	}
	select {
	case a.walks <- rootWalk{prefix: a.procRoot + "/" + strconv.FormatUint(uint64(pid), 10) + "/root", roots: roots}:
	default:
		a.walked.dropped.Add(1)
	}
}

// isModelFile reports whether an open of f (size as the open saw it) is of
// a model file: the kernel recognised its inode as one the registry or a
// root walk knows, or the matcher says so by its names and size.
func (a *aiState) isModelFile(f *event.File, size int64) bool {
	if f.Match.Has(event.MatchModel) {
		return true
	}
	if !mayBeModel(f.Path) && !mayBeModel(f.RawPath) {
		return false
	}
	ok, _ := a.match.IsModel(f.RawPath, f.Path, size)
	return ok
}

// ModelRegistry returns the model registry the engine feeds.
func (e *Engine) ModelRegistry() *model.Registry { return e.ai.reg }

// ModelMatcher returns the model-file matcher the engine uses.
func (e *Engine) ModelMatcher() *model.Matcher { return e.ai.match }

// counters returns the correlation counters for Engine.Counters.
func (a *aiState) counters() map[string]uint64 {
	m := a.reg.Counters().Map()
	m["detect_taint_sources"] = a.sources
	m["detect_taint_promoted"] = a.promoted
	m["detect_exf_triggers"] = a.trigs
	m["detect_exf_deferred_dropped"] = a.deferDrops
	m["detect_model_env_roots_dropped"] = a.envRootDrops
	m["detect_taint_children_dropped"] = a.kidDrops
	m["detect_model_walks"] = a.walked.walks.Load()
	m["detect_model_walk_files"] = a.walked.files.Load()
	m["detect_model_walk_errors"] = a.walked.errors.Load()
	m["detect_model_walks_limited"] = a.walked.limited.Load()
	m["detect_model_walks_dropped"] = a.walked.dropped.Load()
	m["detect_ai_state_evictions"] = a.procs.Evictions() + a.kids.Evictions() + a.ctrs.Evictions() + a.paths.Evictions() +
		a.socks.Evictions() + a.buckets.Evictions()
	return m
}

// IsModelUpdater reports whether p may write model files in c
// (model_updaters): a glob without a space matches the exe (or argv[0])
// basename, one with a space matches "<basename> <args>" from its start;
// "*" matches any run of characters, "/" included.
func (a *aiState) IsModelUpdater(p *event.Process, c *event.Container) bool {
	if p == nil || len(a.updaters) == 0 {
		return false
	}
	var line string
	for i := range a.updaters {
		if !a.updaters[i].w.matches(c) {
			continue
		}
		for _, g := range a.updaters[i].globs {
			if !strings.Contains(g, " ") {
				if globMatch(g, exeBase(p)) || globMatch(g, argv0Base(p)) {
					return true
				}
				continue
			}
			if line == "" {
				line = baseCmdline(p)
			}
			if globMatch(g, line) || globMatch(g+" *", line) {
				return true
			}
		}
	}
	return false
}

// globMatch matches s against pattern with '*' (any run, '/' included) and
// '?' (one byte). It runs in O(len(pattern)*len(s)) at worst.
func globMatch(pattern, s string) bool {
	px, sx := 0, 0
	nextP, nextS := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextP, nextS = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextS > 0 && nextS <= len(s) {
			px, sx = nextP, nextS
			continue
		}
		return false
	}
	return true
}

// alloc is alloc(c) of the catalog: the GPUs a container was given.
type alloc struct {
	known bool // false: nothing says what c was given
	all   bool // NVIDIA_VISIBLE_DEVICES=all
	uuids []string
	idx   []int
	src   string // podresources, env, static_alloc, pod
}

func (al alloc) empty() bool { return al.known && !al.all && len(al.uuids) == 0 && len(al.idx) == 0 }

// has reports whether GPU (index, uuid, mig) is in the allocation; an
// unknown allocation has every GPU.
func (al alloc) has(index int, uuid, mig string) bool {
	if !al.known || al.all {
		return true
	}
	for _, u := range al.uuids {
		if u != "" && (u == uuid || u == mig) {
			return true
		}
	}
	for _, i := range al.idx {
		if i == index && index >= 0 {
			return true
		}
	}
	return false
}

// hasIndex reports whether GPU index i is in the allocation, mapping the
// allocation's UUIDs to indexes through the GPUs the inventory saw. ok is
// false when that cannot be decided.
func (a *aiState) hasIndex(al alloc, i int) (has, ok bool) {
	if !al.known {
		return false, false
	}
	if al.all {
		return true, true
	}
	for _, x := range al.idx {
		if x == i {
			return true, true
		}
	}
	if len(al.uuids) == 0 {
		return false, true
	}
	for _, u := range al.uuids {
		idx, known := a.inv.indexOf(u)
		if !known {
			return false, false
		}
		if idx == i {
			return true, true
		}
	}
	return false, true
}

// allocOf resolves alloc(c) in the catalog's order: the enricher's
// assignment (Container.GPUs: kubelet PodResources, or gpu.static_alloc as
// UUIDs; nil means unknown, a non-nil empty list means none) >
// NVIDIA_VISIBLE_DEVICES of the container's first process >
// AIOptions.StaticAlloc; a pod the enricher knows that has none of these
// was given no GPU.
func (a *aiState) allocOf(c *event.Container) alloc {
	if c == nil {
		return alloc{}
	}
	if c.GPUs != nil {
		// The enricher's assignment (PodResources, or gpu.static_alloc
		// mapped to UUIDs); a non-nil empty list means "given none".
		return alloc{known: true, uuids: c.GPUs, src: "assigned"}
	}
	if cs, ok := a.ctrs.Peek(c.ID); ok && cs.nvSeen {
		return parseVisible(cs.nvVisible)
	}
	if a.static != nil {
		if idx, ok := a.static(c.CgroupPath); ok {
			return alloc{known: true, idx: idx, src: "static_alloc"}
		}
	}
	if c.PodUID != "" && c.PodUID != event.Unknown {
		return alloc{known: true, src: "pod"}
	}
	return alloc{}
}

func parseVisible(v string) alloc {
	al := alloc{known: true, src: "env"}
	switch strings.TrimSpace(v) {
	case "", "void", "none", "NoDevFiles":
		return al
	case "all":
		al.all = true
		return al
	}
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if n, err := strconv.Atoi(f); err == nil {
			al.idx = append(al.idx, n)
		} else if f != "" {
			al.uuids = append(al.uuids, f)
		}
	}
	return al
}

// isInference is inference(c): the container was given or used a GPU, or
// matches inference_selector.
func (a *aiState) isInference(st *State, c *event.Container) bool {
	if c == nil {
		return false
	}
	if st.IsGPUContainer(c) || a.s.MatchesInferenceSelector(c) {
		return true
	}
	al := a.allocOf(c)
	return al.known && !al.empty()
}

// taintOf returns the active taint of pid: its source (nil if none, dropped
// or expired), how it came by it and since when.
func (a *aiState) taintOf(pid uint32, now time.Time) (*taintSrc, string, time.Time) {
	p, ok := a.procs.Peek(pid)
	if !ok || p.src == nil || p.src.dropped || now.Sub(p.srcSince) > a.window {
		return nil, "", time.Time{}
	}
	return p.src, p.via, p.srcSince
}

// containerTaint returns the active taint of container cid.
func (a *aiState) containerTaint(cid string, now time.Time) *taintSrc {
	if cid == "" {
		return nil
	}
	c, ok := a.ctrs.Peek(cid)
	if !ok || c.src == nil || c.src.dropped || now.Sub(c.srcSince) > a.window {
		return nil
	}
	return c.src
}

func cidOf(c *event.Container) string {
	if c == nil {
		return ""
	}
	return c.ID
}

// proc returns the record of pid, creating it from ev's process.
func (a *aiState) proc(p *event.Process, c *event.Container) *aiProc {
	r := a.procs.Ptr(p.PID)
	if r == nil {
		r = a.procs.Put(p.PID, aiProc{parent: p.ForkParent, cid: cidOf(c), exe: p.Exe})
	}
	return r
}

// ctr returns the record of container c, creating it.
func (a *aiState) ctr(c *event.Container) *aiCtr {
	r := a.ctrs.Ptr(c.ID)
	if r == nil {
		r = a.ctrs.Put(c.ID, aiCtr{})
	}
	return r
}

// observe updates the correlation state with ev. It runs after
// State.observe and before the rules.
func (a *aiState) observe(st *State, ev *event.Event) {
	a.out = a.out[:0]
	a.late = a.late[:0]
	p, c := ev.Process, ev.Container
	now := ev.Time
	defer a.release(now) // after the state changes: an exit may confirm a deferred trigger
	switch ev.Kind {
	case event.KindFork:
		if p != nil {
			a.onFork(p, c, now)
		}
	case event.KindExec:
		if p != nil {
			a.onExec(st, p, c, ev, now)
			a.remember(st, ev)
		}
	case event.KindExit:
		if p != nil && (p.TID == p.PID || p.TID == 0) {
			a.onExit(p.PID)
			a.inv.exit(p.PID)
		}
	case event.KindGPU:
		if ev.GPU != nil {
			a.onGPU(st, ev, now)
		}
	case event.KindOpen:
		if p != nil && ev.File != nil {
			a.onOpen(st, p, c, ev, now)
		}
	case event.KindConnect, event.KindEgress:
		if p != nil && ev.Net != nil {
			a.onNet(st, p, c, ev, now)
			if ev.Kind == event.KindConnect {
				a.remember(st, ev)
			}
		}
	}
	if p != nil && p.GPUOwner {
		if r := a.procs.Ptr(p.PID); r == nil || r.ownerSince.IsZero() {
			a.promote(p, c, now)
		}
	}
}

func (a *aiState) onFork(p *event.Process, c *event.Container, now time.Time) {
	r := a.procs.Put(p.PID, aiProc{parent: p.ForkParent, cid: cidOf(c), exe: p.Exe, p: p})
	a.addKid(p.ForkParent, p.PID)
	par := a.procs.Ptr(p.ForkParent)
	if par == nil {
		return
	}
	if len(p.Args) == 0 && par.p != nil {
		r.p = par.p // a fork runs its parent's image
	}
	if src, _, since := a.taintOf(p.ForkParent, now); src != nil {
		r.src, r.srcSince, r.via, r.from = src, since, viaFork, p.ForkParent
		par.taintedChild = p.PID
		return
	}
	// A sibling that is alive and tainted: a pipeline peer (tar c | curl -T -).
	if sib := par.taintedChild; sib != 0 {
		if src, _, since := a.taintOf(sib, now); src != nil {
			r.src, r.srcSince, r.via, r.from = src, since, viaPipeline, sib
		} else {
			par.taintedChild = 0
		}
	}
}

func (a *aiState) onExit(pid uint32) {
	r, ok := a.procs.Peek(pid)
	if !ok {
		return
	}
	if r.src != nil && r.src.reader == pid && !r.src.dropped {
		// The reader ended without becoming a GPU owner: not a loader.
		r.src.confirmed = true
	}
	if par := a.procs.Ptr(r.parent); par != nil && par.taintedChild == pid {
		par.taintedChild = 0
	}
	a.dropKid(r.parent, pid)
	a.procs.Delete(pid)
}

func (a *aiState) onExec(st *State, p *event.Process, c *event.Container, ev *event.Event, now time.Time) {
	r := a.proc(p, c)
	r.exe, r.cid, r.p, r.execAt = p.Exe, cidOf(c), p, now
	if c != nil {
		cs := a.ctr(c)
		if !cs.nvSeen {
			if v, ok := envValue(p, "NVIDIA_VISIBLE_DEVICES"); ok {
				cs.nvVisible, cs.nvSeen = v, true
			}
		}
		if roots := model.RootsFromEnv(p.Env); len(roots) > 0 {
			if a.envRoots >= maxEnvRoots {
				a.envRootDrops++
			} else if n, err := a.match.AddRoots(roots...); err == nil {
				a.envRoots += n
				if n > 0 {
					a.queueWalk(p.PID, roots)
				}
			}
		}
	}
	// A tainted process running a transfer tool (EXF-001's exec trigger).
	if src, via, _ := a.taintOf(p.PID, now); src != nil {
		if tool := transferTool(p); tool != "" {
			src.confirmed = true
			a.trigger(exfTrigger{ev: ev, src: src, sender: p, via: via, cond: "transfer_tool", dest: tool,
				sev: event.SevHigh, stage: "exec:" + tool})
		}
	}
}

// promote records that p became a GPU owner: files it opens for the next
// promote_grace are models, files it opened are owned, and a taint source
// it read within promote_grace was a loader.
func (a *aiState) promote(p *event.Process, c *event.Container, now time.Time) {
	r := a.proc(p, c)
	if !r.ownerSince.IsZero() {
		return
	}
	r.ownerSince = now
	since := r.execAt
	if p.ExecTime.After(since) {
		since = p.ExecTime
	}
	a.lateMatches(p.PID, cidOf(c), since, now)
	if !r.firstModel.IsZero() {
		// It opened model files before NVML listed it: they are its own.
		// (MarkOwner walks the registry; owners that load after CUDA init
		// are marked by Observe.)
		a.reg.MarkOwner(p.PID, cidOf(c), now)
	}
	if s := r.src; s != nil && s.reader == p.PID && !s.dropped && now.Sub(s.at) <= a.grace {
		s.dropped = true
		a.promoted++
	}
	if c != nil {
		cs := a.ctr(c)
		if cs.baselineExe == "" {
			cs.baselineExe = p.Exe
		}
	}
}

func (a *aiState) onGPU(st *State, ev *event.Event, now time.Time) {
	g := ev.GPU
	a.inv.gpu(ev)
	if g.Change == event.GPUStop || g.PID == 0 {
		return
	}
	p := ev.Process
	if p == nil || p.PID != g.PID {
		p = &event.Process{PID: g.PID, TID: g.PID}
	}
	a.promote(p, ev.Container, now)
}

// loadingFile reports whether a successful read open by a GPU owner within
// promote_grace of becoming one names a file it loads as a model though no
// suffix says so: a regular file of at least model_min_bytes outside the
// system, library and pseudo-file trees.
func (a *aiState) loadingFile(r *aiProc, f *event.File, now time.Time) bool {
	if r == nil || r.ownerSince.IsZero() || now.Sub(r.ownerSince) > a.grace || f.Size < 0 ||
		f.Size < max(a.s.Config.ModelMinBytes, 1) || f.Flags&event.ODirectry != 0 {
		return false
	}
	p := f.Path
	if p == "" || p[0] != '/' || underAny(p, []string{"/proc", "/sys", "/dev", "/etc", "/run", "/var/log"}) ||
		a.s.InHostLibDir(p) || a.s.InHostBinDir(p) {
		return false
	}
	b := baseName(p)
	if isSharedObject(b) || strings.Contains(p, "/site-packages/") || strings.Contains(p, "/dist-packages/") {
		return false
	}
	for _, ext := range []string{".py", ".pyc", ".so", ".json", ".txt", ".log", ".cubin", ".ptx", ".fatbin", ".zip", ".whl"} {
		if strings.HasSuffix(b, ext) {
			return false
		}
	}
	return true
}

func (a *aiState) onOpen(st *State, p *event.Process, c *event.Container, ev *event.Event, now time.Time) {
	f := ev.File
	if f.Result < 0 || f.Flags&event.ODirectry != 0 {
		return
	}
	write := f.IsWrite()
	size := f.Size
	if write && f.Flags&(event.OCreat|event.OTrunc) != 0 {
		size = -1
	}
	r := a.procs.Ptr(p.PID)
	// Ownership is sticky: a server that freed its GPU memory and reloads
	// its weights is still their owner.
	owner := p.GPUOwner || st.IsGPUOwner(p.PID) || r != nil && !r.ownerSince.IsZero()
	isModel := a.isModelFile(f, size)
	if !isModel && owner && f.IsRead() && !write {
		if r == nil {
			r = a.proc(p, c)
		}
		isModel = a.loadingFile(r, f, now)
	}
	if isModel {
		if o, ok := model.ObservationOf(ev); ok {
			o.GPUOwner = owner
			a.reg.Observe(o)
		}
		if !write {
			if r == nil {
				r = a.proc(p, c)
			}
			if r.firstModel.IsZero() {
				r.firstModel = now
				a.inv.loader(p, c)
			}
			if c != nil && f.Size > 0 {
				if cs := a.ctr(c); f.Size > cs.maxModel {
					cs.maxModel = f.Size
				}
			}
		}
	}
	if write {
		if r == nil {
			return
		}
		// A tainted process writing a file taints the file (staging copies,
		// archives).
		src, _, _ := a.taintOf(p.PID, now)
		if src == nil || isPseudoPath(f.Path) {
			return
		}
		src.confirmed = true
		pt := pathTaint{src: src, since: now, by: p.PID}
		a.paths.Put(pathKey{cid: cidOf(c), path: f.Path}, pt)
		if f.Inode != 0 {
			a.paths.Put(pathKey{dev: f.Dev, ino: f.Inode}, pt)
		}
		return
	}
	if !f.IsRead() {
		return
	}
	if isModel {
		if owner || a.loaderExempt(p, c) {
			return
		}
		a.source(p, c, f, now)
		return
	}
	// Reading a tainted file taints the reader.
	if a.paths.Len() == 0 {
		return
	}
	var pt pathTaint
	ok := false
	if f.Inode != 0 {
		pt, ok = a.paths.Peek(pathKey{dev: f.Dev, ino: f.Inode})
	}
	if !ok {
		pt, ok = a.paths.Peek(pathKey{cid: cidOf(c), path: f.Path})
	}
	if !ok || pt.src == nil || pt.src.dropped || now.Sub(pt.since) > a.window || pt.by == p.PID {
		return
	}
	if r == nil {
		r = a.proc(p, c)
	}
	if r.src == pt.src {
		return
	}
	a.taint(r, p.PID, c, pt.src, viaFile, pt.by, now)
}

// mayBeModel is a cheap prefilter of Matcher.IsModel: paths under /dev
// (but /dev/shm), /sys and /etc, and pseudo paths ("net:[…]", "pipe:[…]")
// never name model files.
func mayBeModel(p string) bool {
	if len(p) < 2 || p[0] != '/' {
		return len(p) > 0 && p[0] != '/' && strings.IndexByte(p, ':') < 0
	}
	switch p[1] {
	case 'd':
		return !strings.HasPrefix(p, "/dev/") || strings.HasPrefix(p, "/dev/shm/")
	case 's':
		return !strings.HasPrefix(p, "/sys/")
	case 'e':
		return !strings.HasPrefix(p, "/etc/")
	}
	return true
}

// loaderExempt reports whether p may read model files without tainting:
// loader_allowlist, container runtimes and NVIDIA hooks, package managers and
// downloaders — but not a downloader started as an uploader (wget
// --post-file, curl -T with -o), which reads the file to send it.
func (a *aiState) loaderExempt(p *event.Process, c *event.Container) bool {
	return a.s.IsLoaderAllowed(c, p.Exe) || a.s.IsLoaderAllowed(c, p.Comm) || a.s.IsRuntime(p.Exe) ||
		IsNVHook(p.Exe) || installTool(p) != "" && transferTool(p) == ""
}

// source records a taint source: p (no GPU owner) read model file f.
func (a *aiState) source(p *event.Process, c *event.Container, f *event.File, now time.Time) {
	r := a.proc(p, c)
	ref := fileRef{key: model.KeyOf(f.Dev, f.Inode, f.Path), path: f.Path, size: f.Size}
	if f.RawPath != "" && f.RawPath != f.Path && f.RawPath[0] == '/' {
		ref.path = f.RawPath + " -> " + f.Path
	}
	if r.src != nil && r.src.reader == p.PID && !r.src.dropped && now.Sub(r.srcSince) <= a.window {
		r.src.add(ref)
		return
	}
	src := &taintSrc{reader: p.PID, readerExe: p.Exe, cid: cidOf(c), at: now, maxSize: -1}
	if old := r.src; old != nil && !old.dropped {
		for i := 0; i < old.n; i++ {
			src.add(old.files[i])
		}
		src.confirmed = old.confirmed
	}
	src.add(ref)
	a.sources++
	a.taint(r, p.PID, c, src, viaRead, p.PID, now)
}

// taint gives r (process pid) the taint src, and its container too.
func (a *aiState) taint(r *aiProc, pid uint32, c *event.Container, src *taintSrc, via string, from uint32, now time.Time) {
	r.src, r.srcSince, r.via, r.from = src, now, via, from
	if via == viaFile {
		src.confirmed = true
	}
	parent := r.parent
	// Pipelines are built by shells: siblings under any other parent (init,
	// a supervisor, a test runner) are no pipeline peers.
	pipeline := false
	if par := a.procs.Ptr(parent); par != nil && isShell(baseName(par.exe)) {
		par.taintedChild = pid
		pipeline = true
	}
	if c != nil {
		cs := a.ctr(c)
		cs.src, cs.srcSince = src, now
	}
	// Live children (tar's compressor) and siblings (the other side of
	// "tar c | curl -T -") of the same container share the taint.
	cid := cidOf(c)
	a.taintKids(pid, pid, cid, src, viaFork, now)
	if pipeline {
		a.taintKids(parent, pid, cid, src, viaPipeline, now)
	}
}

// taintKids gives the live children of parent (pid excepted) in container
// cid the taint src, unless they hold an active taint already.
func (a *aiState) taintKids(parent, pid uint32, cid string, src *taintSrc, via string, now time.Time) {
	ks, ok := a.kids.Peek(parent)
	if !ok {
		return
	}
	for i := 0; i < int(ks.n); i++ {
		k := ks.pids[i]
		if k == pid {
			continue
		}
		q := a.procs.Ptr(k)
		if q == nil || q.cid != cid || q.src == src ||
			q.src != nil && !q.src.dropped && now.Sub(q.srcSince) <= a.window {
			continue
		}
		q.src, q.srcSince, q.via, q.from = src, now, via, pid
	}
}

// kidSet holds the most recent live children of a process.
type kidSet struct {
	n    uint8
	pids [maxKids]uint32
}

// addKid records child as a live child of parent.
func (a *aiState) addKid(parent, child uint32) {
	if parent == 0 {
		return
	}
	ks := a.kids.Ptr(parent)
	if ks == nil {
		ks = a.kids.Put(parent, kidSet{})
	}
	for i := 0; i < int(ks.n); i++ {
		if ks.pids[i] == child {
			return
		}
	}
	if int(ks.n) == maxKids {
		copy(ks.pids[:], ks.pids[1:])
		ks.n--
		a.kidDrops++
	}
	ks.pids[ks.n] = child
	ks.n++
}

// dropKid forgets child as a live child of parent.
func (a *aiState) dropKid(parent, child uint32) {
	ks := a.kids.Ptr(parent)
	if ks == nil {
		return
	}
	for i := 0; i < int(ks.n); i++ {
		if ks.pids[i] == child {
			copy(ks.pids[i:], ks.pids[i+1:ks.n])
			ks.n--
			break
		}
	}
	if ks.n == 0 {
		a.kids.Delete(parent)
	}
}

// isPseudoPath reports whether p is no file that can carry data onwards.
func isPseudoPath(p string) bool {
	if p == "" || p[0] != '/' {
		return true
	}
	if underDir(p, "/dev") {
		return !underDir(p, "/dev/shm")
	}
	return underDir(p, "/proc") || underDir(p, "/sys")
}

// exfilCapableSocket reports whether the runtime API behind a socket can
// move data off the node or into a new container (docker, containerd, CRI).
// The kubelet pod-resources API is read-only (device allocations): GPU
// agents, and the sensor's own inventory, read weights and then list it.
func exfilCapableSocket(name string) bool {
	return name != "kubelet/pod-resources/kubelet.sock"
}

func (a *aiState) onNet(st *State, p *event.Process, c *event.Container, ev *event.Event, now time.Time) {
	n := ev.Net
	cid := cidOf(c)
	if n.UnixPath != "" || n.Protocol == "unix" {
		if ev.Kind != event.KindConnect {
			return
		}
		if name, sev := runtimeSocket(n.UnixPath); name != "" && sev == 0 && exfilCapableSocket(name) {
			src, via, _ := a.taintOf(p.PID, now)
			if src == nil {
				if src = a.containerTaint(cid, now); src != nil {
					via = viaContainer
				}
			}
			if src != nil {
				a.trigger(exfTrigger{ev: ev, src: src, sender: p, via: via, cond: "runtime_socket",
					dest: n.UnixPath, class: event.ClassUnix, sev: event.SevHigh, stage: "unix:" + n.UnixPath})
			}
		}
		return
	}
	if !n.DAddr.IsValid() {
		return
	}
	if ev.Kind == event.KindEgress {
		a.inv.peer(p, c, st.IsGPUOwner(p.PID) || p.GPUOwner, n)
	}
	if n.Class == event.ClassLoopback || n.DAddr.IsLoopback() || a.s.EgressAllowed(c, n.DAddr, n.DPort) {
		return
	}
	sk := a.socks.Ptr(n.Cookie)
	if sk == nil || n.Cookie == 0 {
		v := aiSock{pid: p.PID, cid: cid, addr: n.DAddr, port: n.DPort, class: n.Class}
		if n.Cookie != 0 {
			sk = a.socks.Put(n.Cookie, v)
		} else {
			sk = &v
		}
	}
	if n.BytesSent > sk.bytes {
		sk.bytes = n.BytesSent
	}
	if c != nil && sk.bytes > sk.counted {
		a.count(c, sk, now)
	}
	// EXF-001: a tainted sender, or any sender in a tainted container.
	src, via, _ := a.taintOf(p.PID, now)
	if src == nil {
		if src = a.containerTaint(cid, now); src != nil {
			via = viaContainer
		}
	}
	if src == nil && sk.exfSrc != nil && !sk.exfSrc.dropped {
		src, via = sk.exfSrc, "socket"
	}
	if src == nil {
		return
	}
	sk.exfSrc = src
	crit := src.criticalBytes()
	sev := event.SevHigh
	stage := "high"
	if sk.bytes >= crit {
		sev, stage = event.SevCritical, "critical"
	}
	switch {
	case sev > sk.exfLevel:
	case n.Closed && sk.exfLevel > 0 && grew(sk.exfBytes, sk.bytes):
		stage = "final"
	default:
		return
	}
	t := exfTrigger{ev: ev, src: src, sender: p, via: via, cond: "egress",
		dest: netip.AddrPortFrom(n.DAddr, n.DPort).String(), class: n.Class, bytes: sk.bytes, sev: sev,
		stage: stage, cookie: n.Cookie}
	sk.exfLevel, sk.exfBytes = sev, sk.bytes
	a.trigger(t)
}

// grew reports whether now exceeds was by more than 10 %.
func grew(was, now uint64) bool { return now > was && now-was > was/10 }

// count adds the socket's new bytes to its EXF-003 bucket.
func (a *aiState) count(c *event.Container, sk *aiSock, now time.Time) {
	bits := 24
	if sk.addr.Is6() && !sk.addr.Is4In6() {
		bits = 64
	}
	pfx, err := sk.addr.Unmap().Prefix(bits)
	if err != nil {
		return
	}
	k := bucketKey{cid: c.ID, prefix: pfx}
	b := a.buckets.Ptr(k)
	if b == nil || now.Sub(b.start) > exf003Window {
		b = a.buckets.Put(k, bucket{start: now})
	}
	b.bytes += sk.bytes - sk.counted
	sk.counted = sk.bytes
}

// trigger queues an EXF-001 trigger: at once when the source is confirmed
// or its promote_grace is over; else it waits until the source is confirmed
// (it may yet turn out to be a loader, and then the trigger is dropped).
func (a *aiState) trigger(t exfTrigger) {
	a.trigs++
	s := t.src
	now := t.ev.Time
	if s.confirmed || now.Sub(s.at) >= a.grace {
		a.out = append(a.out, t)
		return
	}
	t.ev = snapshot(t.ev)
	t.deadline = s.at.Add(a.grace)
	for i := range a.deferred {
		if d := &a.deferred[i]; d.src == s && d.cookie == t.cookie && d.stage == t.stage ||
			t.cookie != 0 && d.cookie == t.cookie {
			if t.sev >= d.sev {
				*d = t
			}
			return
		}
	}
	if len(a.deferred) >= maxDeferred {
		a.deferDrops++
		return
	}
	a.deferred = append(a.deferred, t)
}

// release moves the deferred triggers that are due (their source was
// confirmed or its grace is over) to out, and forgets those whose source was
// a loader after all.
func (a *aiState) release(now time.Time) {
	if len(a.deferred) == 0 {
		return
	}
	keep := a.deferred[:0]
	for _, t := range a.deferred {
		switch {
		case t.src.dropped:
		case t.src.confirmed || !now.Before(t.deadline):
			if t.cookie != 0 {
				if sk, ok := a.socks.Peek(t.cookie); ok && sk.bytes > t.bytes {
					t.bytes = sk.bytes
					if t.bytes >= t.src.criticalBytes() {
						t.sev, t.stage = event.SevCritical, "critical"
					}
				}
			}
			a.out = append(a.out, t)
		default:
			keep = append(keep, t)
		}
	}
	clear(a.deferred[len(keep):])
	a.deferred = keep
}

// sourceFiles names the model files of src with sizes and, once hashed,
// sha256, as "path (N bytes, sha256 X)" joined by "; ".
func (a *aiState) sourceFiles(src *taintSrc) string {
	var b strings.Builder
	for i := 0; i < src.n; i++ {
		f := src.files[i]
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.path)
		size := f.size
		sum := ""
		if e, ok := a.reg.Get(f.key); ok {
			sum = e.SHA256
			if size < 0 {
				size = e.Size
			}
		}
		b.WriteString(" (")
		if size >= 0 {
			b.WriteString(strconv.FormatInt(size, 10) + " bytes")
		} else {
			b.WriteString("size unknown")
		}
		if sum != "" {
			b.WriteString(", sha256 " + sum)
		} else {
			b.WriteString(", sha256 pending")
		}
		b.WriteString(")")
	}
	return b.String()
}

// gpuLineage is gpu_lineage(p): p or a fork-time ancestor (same container)
// owns GPU memory. It returns the owner's pid.
func gpuLineage(st *State, p *event.Process, c *event.Container) (uint32, bool) {
	if p == nil {
		return 0, false
	}
	if p.GPUOwner || st.IsGPUOwner(p.PID) {
		return p.PID, true
	}
	return ancestorOwner(st, p, c)
}

// ancestorOwner returns the nearest fork-time ancestor of p in the same
// container that owns GPU memory.
func ancestorOwner(st *State, p *event.Process, c *event.Container) (uint32, bool) {
	cid := cidOf(c)
	for _, an := range p.Ancestors {
		if o, ok := st.GPUOwner(an.PID); ok && o.Container == cid {
			return an.PID, true
		}
	}
	return 0, false
}

// modelRootsArg reports whether some argument names a model file or lies
// under a model root.
func (a *aiState) modelArg(p *event.Process) (string, bool) {
	for i := 1; i < len(p.Args); i++ {
		arg := p.Args[i]
		if j := strings.IndexByte(arg, '='); j > 0 && strings.HasPrefix(arg, "-") {
			arg = arg[j+1:]
		}
		if arg == "" || arg[0] == '-' {
			continue
		}
		if ok, _ := a.match.IsModel("", arg, -1); ok {
			return arg, true
		}
		if arg[0] == '/' && a.match.UnderRoot(strings.TrimSuffix(arg, "/")) {
			return arg, true
		}
		if strings.Contains(arg, "models--") {
			return arg, true
		}
	}
	return "", false
}
