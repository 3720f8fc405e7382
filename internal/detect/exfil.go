package detect

import (
	"context"
	"fmt"
	"log/slog"
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
	exf001HighCap     = 1 << 20         // a send this large is model-scale whatever the file
	exf001HighFloor   = 64 << 10        // and one smaller never is
	maxRenew          = 256             // taint sources watched for held files
	renewMargin       = 5 * time.Second // asked this long before the window ends
	sweepWindow       = 5 * time.Second
	sweepPIDs         = 20 // distinct /proc/<pid>/cmdline reads in sweepWindow that make a sweep
	mapsMemWindow     = 10 * time.Second
	lateWindow        = 10 * time.Second // how far back a new GPU owner's descendants are judged again
	lateRing          = 64               // candidate execs and connects kept for that
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
	// heldAt is when the kernel was last asked what it holds.
	heldAt time.Time
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
	pods    *LRU[podKey, podTaint]
	socks   *LRU[sockKey, aiSock]
	buckets *LRU[bucketKey, bucket]

	// out are the EXF-001 triggers of the current event; deferred wait for
	// their source's promote_grace to end.
	out      []exfTrigger
	deferred []exfTrigger
	// renew are the taint sources whose readers are asked, before the
	// window ends, whether they still hold the files.
	renew []renewal
	// cmdBuf is reused to match command lines without allocating.
	cmdBuf []byte

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
	heldQueries, heldHits, renewed, renewDrops                   uint64
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
		pods:    NewLRU[podKey, podTaint](size, nil),
		socks:   NewLRU[sockKey, aiSock](size, nil),
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
	m["detect_taint_held_queries"] = a.heldQueries
	m["detect_taint_held_hits"] = a.heldHits
	m["detect_taint_held_renewed"] = a.renewed
	m["detect_taint_held_watch_dropped"] = a.renewDrops
	m["detect_ai_state_evictions"] = a.procs.Evictions() + a.kids.Evictions() + a.ctrs.Evictions() + a.paths.Evictions() +
		a.pods.Evictions() + a.socks.Evictions() + a.buckets.Evictions()
	return m
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
	case event.KindConnect, event.KindEgress, event.KindAccept:
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
	} else if a.heldByParent(st, p, c) && !a.isOwner(st, p) && !a.s.gpuChildAllowedBuf(&a.cmdBuf, p) &&
		!a.loaderExempt(st, p, c) {
		// Descriptors handed to a child (pass_fds, no O_CLOEXEC) survive
		// exec: asked now, not at its connect, which a child that reads,
		// sends and exits in milliseconds does not outlive in /proc.
		a.heldSource(st, p, c, now)
	}
}

// heldByParent reports whether the fork parent of p, in its container,
// owns a GPU or opened model files: what it holds, p may have inherited.
func (a *aiState) heldByParent(st *State, p *event.Process, c *event.Container) bool {
	cid := cidOf(c)
	if o, ok := st.GPUOwner(p.ForkParent); ok && o.Container == cid {
		return true
	}
	r, ok := a.procs.Peek(p.ForkParent)
	return ok && r.cid == cid && !r.firstModel.IsZero()
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
