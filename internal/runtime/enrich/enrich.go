// Package enrich joins "who did it" onto events: the acting process with its
// lineage, its container and pod, and the class of a network destination.
//
// The Enricher owns the process table (seeded from /proc, kept current by
// exec, fork and exit events), resolves the cgroup ids the kernel reports to
// containers through the cgroup paths the kernel reports (see Cgroups) and
// the cgroup layouts of the container runtimes, asks the CRI runtime for pod
// metadata in the background, and classifies destinations with netlink's
// view of the node.
//
// A process whose cgroup path is not known yet is never pinned to the host:
// its container is decided again on its next event, until the path is known.
//
// Snapshots handed to events are immutable and shared: an event of a known
// process costs a map lookup and allocates nothing.
package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/runtime/cgroup"
	"github.com/kestrel-sec/kestrel/internal/runtime/cri"
	"github.com/kestrel-sec/kestrel/internal/runtime/netclass"
	"github.com/kestrel-sec/kestrel/internal/runtime/proc"
)

// GPUAssigner says which GPUs (UUIDs) a container was assigned: by the
// kubelet (pod name, namespace and container name, once CRI has answered) or
// by a static allocation keyed on the cgroup path. cmd/sensor wires
// internal/gpu in. It is called when a container is first seen and again
// when its pod metadata arrives.
type GPUAssigner interface {
	GPUsFor(c *event.Container) []string
}

// Options configure an Enricher. Zero values get defaults.
type Options struct {
	Logger *slog.Logger
	// GPUAssignments may be nil.
	GPUAssignments GPUAssigner
	// ProcRoot is the procfs mount (default /proc).
	ProcRoot string
	// CgroupRoot is the cgroup v2 mount; "" finds it in mountinfo.
	CgroupRoot string
	// CgroupResolver tunes the cgroup id resolver; nil gets defaults.
	CgroupResolver *cgroup.ResolverOptions
	// HostNSPID is the process whose namespaces are the host's (default 2,
	// kthreadd: PID 1 may be unreadable).
	HostNSPID uint32
	// NoNetlink disables the netlink view (tests, or hosts without it):
	// only configured node addresses are "node".
	NoNetlink bool
	// Now is the clock (tests).
	Now func() time.Time
}

// maxContainers bounds the cgroup-id and container caches.
const maxContainers = 16384

// Enricher fills ev.Process, ev.Container and ev.Net.Class.
//
// Enrich must be called from one goroutine; Lookup and Counters may be
// called concurrently with it.
type Enricher struct {
	cfg  config.ContextConfig
	opts Options
	log  *slog.Logger

	fs       *proc.FS
	parser   *cgroup.Parser
	resolver *cgroup.Resolver
	classes  *netclass.Classifier
	cri      *cri.Client
	hostNS   event.Namespaces
	// procPathsFull is set when /proc/<pid>/cgroup paths are from the root
	// of the hierarchy: the sensor is in the initial cgroup namespace.
	procPathsFull bool

	// mu guards everything below; Enrich holds it for one event.
	mu    sync.Mutex
	table *proc.Table
	// byCgroup caches the container of a cgroup id (nil: the host).
	byCgroup map[uint64]*containerRef
	// byID holds the container of each id ("mntns:<ino>" for containers
	// found only by their namespaces).
	byID map[string]*containerRef
	// lastExpire is when the table last dropped expired entries.
	lastExpire time.Time

	started atomic.Bool

	events, unknownPIDs, procReadFailures, cgroupChanges, gpuOwners,
	containerResets, containersSeen, criUpdates, pendingCgroups uint64
}

// containerRef is the current snapshot of one container. CRI answers
// replace cur; processes and cgroups point at the ref.
type containerRef struct {
	cur *event.Container
	// complete is set once the runtime answered (or will never answer).
	complete bool
	// lastAsk rate-limits CRI requests for an incomplete container.
	lastAsk time.Time
}

// entryData is what the Enricher keeps on each process table entry.
type entryData struct {
	ref *containerRef
	// resolvedCgroup is the cgroup id ref was resolved for.
	resolvedCgroup uint64
	// pending is set while the path of resolvedCgroup is unknown: ref is
	// what namespaces and v1 paths say, and the next event tries again.
	pending bool
}

// New builds an Enricher from the context section. It reads nothing yet:
// Start does.
func New(cfg config.ContextConfig, opts *Options) (*Enricher, error) {
	e := &Enricher{cfg: cfg, byCgroup: map[uint64]*containerRef{}, byID: map[string]*containerRef{}}
	if opts != nil {
		e.opts = *opts
	}
	if e.opts.Logger == nil {
		e.opts.Logger = slog.Default()
	}
	e.log = e.opts.Logger
	if e.opts.ProcRoot == "" {
		e.opts.ProcRoot = "/proc"
	}
	if e.opts.HostNSPID == 0 {
		e.opts.HostNSPID = 2
	}
	if e.opts.Now == nil {
		e.opts.Now = time.Now
	}
	var err error
	if e.parser, err = cgroup.NewParser(cfg.ContainerCgroupRegex); err != nil {
		return nil, fmt.Errorf("create enricher: %w", err)
	}
	if e.classes, err = netclass.New(netclass.FromContext(cfg), &netclass.Options{Logger: e.log}); err != nil {
		return nil, fmt.Errorf("create enricher: %w", err)
	}
	e.table = proc.NewTable(&proc.TableOptions{MaxEntries: cfg.ProcessTableSize, Retention: cfg.ProcessRetention.D()})
	return e, nil
}

// Start reads the host namespaces and every process in /proc, then starts
// the netlink and CRI background work, which stops when ctx is done. The
// event path never waits on them.
func (e *Enricher) Start(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("start enricher: already started")
	}
	e.mu.Lock()
	err := e.openLocked()
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("start enricher: %w", err)
	}
	// One walk, before the seed needs paths; what appears later comes
	// from the kernel's cgroup records.
	if err := e.resolver.Walk(); err != nil {
		e.log.Debug("cgroup hierarchy not walked", "err", err)
	}
	if err := e.seed(); err != nil {
		return fmt.Errorf("start enricher: %w", err)
	}
	if !e.opts.NoNetlink {
		if err := e.classes.Refresh(); err != nil {
			e.log.Warn("netlink unavailable: only configured node_ips classify as node", "err", err)
		} else {
			go func() { _ = e.classes.Run(ctx) }()
		}
	}
	e.startCRI(ctx)
	return nil
}

// openLocked opens procfs, finds the cgroup v2 hierarchy and reads the host
// namespaces, once.
func (e *Enricher) openLocked() error {
	if e.fs != nil {
		return nil
	}
	fs, err := proc.NewFS(e.opts.ProcRoot)
	if err != nil {
		return err
	}
	if e.hostNS, err = fs.Namespaces(e.opts.HostNSPID); err != nil {
		e.log.Warn("cannot read the host namespaces; namespace-based container detection is off",
			"pid", e.opts.HostNSPID, "err", err)
		e.hostNS = event.Namespaces{}
	}
	root := e.opts.CgroupRoot
	if root == "" {
		if root, err = fs.CgroupV2Mount(); err != nil {
			root = ""
		}
	}
	e.resolver = cgroup.NewResolver(root, e.opts.CgroupResolver)
	if err := e.resolver.CheckRoot(); err != nil {
		e.log.Info("cgroup paths come from the kernel's cgroup records only", "reason", err)
	} else {
		if err := e.resolver.HandleErr(); err != nil {
			e.log.Info("cgroup ids the kernel has not reported are found by walking the hierarchy, at most once a second", "reason", err)
		}
		// Only from the initial cgroup namespace are the paths in
		// /proc/<pid>/cgroup from the root of the hierarchy; inside a
		// pod they are relative to the sensor's own cgroup, and the
		// ids of seeded processes come with their first event instead.
		if self, err := fs.SelfNamespaces(); err == nil && self.Cgroup != 0 && self.Cgroup == e.hostNS.Cgroup {
			fs.SetCgroupV2Root(root)
			e.procPathsFull = true
		}
	}
	e.fs = fs
	return nil
}

// Cgroups returns the index of cgroup ids and paths, for the kernel's cgroup
// records to feed (runtime.Options.Cgroups). It is nil only when procfs
// cannot be opened.
func (e *Enricher) Cgroups() *cgroup.Resolver {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.openLocked(); err != nil {
		return nil
	}
	return e.resolver
}

func (e *Enricher) startCRI(ctx context.Context) {
	sock := e.cfg.CRISocket
	if sock == config.CRIOff {
		return
	}
	if sock == "" {
		if sock = cri.DetectSocket(config.DefaultCRISockets); sock == "" {
			e.log.Info("no CRI runtime socket found; pod names stay unknown (set context.cri_socket if the runtime is elsewhere)",
				"tried", config.DefaultCRISockets)
			return
		}
	}
	c, err := cri.New(&cri.Options{
		Socket: sock, Timeout: e.cfg.CRITimeout.D(), TTL: e.cfg.CRICacheTTL.D(),
		OnUpdate: e.onCRI, Logger: e.log, Now: e.opts.Now,
	})
	if err != nil {
		e.log.Warn("CRI client disabled", "err", err)
		return
	}
	e.mu.Lock()
	e.cri = c
	e.mu.Unlock()
	c.Start(ctx)
	go func() {
		<-ctx.Done()
		_ = c.Close()
	}()
	e.log.Info("CRI client started", "socket", sock)
}

// seed reads every process in /proc into the table.
func (e *Enricher) seed() error {
	pids, err := e.fs.PIDs()
	if err != nil {
		return err
	}
	procs := make([]*proc.Proc, 0, len(pids))
	failed := uint64(0)
	for _, pid := range pids {
		p, err := e.fs.Process(pid)
		if err != nil {
			failed++ // raced with an exit
			continue
		}
		procs = append(procs, p)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.procReadFailures += failed
	entries := e.table.Seed(procs)
	for i, en := range entries {
		if en != nil {
			e.attach(en, procs[i])
		}
	}
	e.log.Info("process table seeded from /proc", "processes", len(procs))
	return nil
}

// Enrich fills ev.Process (the snapshot with lineage), ev.Container and
// ev.Net.Class. Call it from one goroutine.
//
// The Process of an exec or fork event is taken over: it becomes the
// process's snapshot, changed in place, so that the event costs no copy.
// Its source must not share it or use it again (the decoder makes one per
// record); Process values of other events are only read.
func (e *Enricher) Enrich(ev *event.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events++
	// Reading the clock costs as much as the rest of a known-process event,
	// so exited processes are expired on process lifecycle events and every
	// 256th event, not on each one.
	var now time.Time
	if ev.Kind == event.KindExec || ev.Kind == event.KindFork || ev.Kind == event.KindExit || e.events&255 == 0 {
		now = e.opts.Now()
		if now.Sub(e.lastExpire) >= time.Second {
			e.table.Expire(now)
			e.lastExpire = now
		}
	}
	if n := ev.Net; n != nil && n.Class == "" {
		n.Class = e.Classify(n)
	}
	var en *proc.Entry
	switch ev.Kind {
	case event.KindExec:
		en = e.onExec(ev)
	case event.KindFork:
		en = e.onFork(ev)
	case event.KindExit:
		if ev.Process == nil {
			return
		}
		en = e.entryFor(ev.Process.PID, ev.Process)
		// Retention runs on the sensor's clock, not the event's.
		e.table.Exit(ev.Process.PID, now)
	case event.KindGPU:
		if ev.GPU == nil || ev.GPU.PID == 0 {
			return
		}
		en = e.entryFor(ev.GPU.PID, ev.Process)
		if en != nil && !en.Snap.GPUOwner {
			s := *en.Snap
			s.GPUOwner = true
			en.Snap, en.Thread = &s, nil
			e.gpuOwners++
		}
	default:
		if ev.Process == nil {
			return
		}
		en = e.entryFor(ev.Process.PID, ev.Process)
	}
	if en == nil {
		return
	}
	ev.Process = e.snapshotFor(en, ev.Process)
	ev.Container = e.containerOf(en)
}

// entryFor returns the table entry of pid, reading /proc once for a pid the
// table does not know, and re-resolving the container when the event's
// cgroup id differs from the snapshot's.
func (e *Enricher) entryFor(pid uint32, p *event.Process) *proc.Entry {
	en := e.table.Get(pid)
	if en == nil {
		en = e.unknown(pid, p)
	}
	if p != nil && p.CgroupID != 0 && p.CgroupID != en.Snap.CgroupID {
		// A process moved cgroup: a probe joining a container after
		// setns, or a runtime placing its child. (Or a process seeded
		// without an id, whose first event brings it.)
		if en.Snap.CgroupID != 0 {
			e.cgroupChanges++
		}
		s := *en.Snap
		s.CgroupID = p.CgroupID
		if e.fs != nil {
			if ns, err := e.fs.Namespaces(pid); err == nil {
				s.NS = ns
			}
		}
		en.Snap, en.Thread = &s, nil
	}
	return en
}

// unknown builds an entry for a pid first seen in an event: from /proc
// when it is still there, else from the event's partial data.
func (e *Enricher) unknown(pid uint32, p *event.Process) *proc.Entry {
	e.unknownPIDs++
	if e.fs != nil {
		if pr, err := e.fs.Process(pid); err == nil {
			return e.put(pr)
		}
		e.procReadFailures++
	}
	var s event.Process
	if p != nil {
		s = *p
	}
	s.PID, s.TID = pid, pid
	if s.ForkParent == 0 {
		s.ForkParent = s.PPID
	}
	s.Ancestors = e.lineage(s.PPID)
	en := e.table.Put(&s)
	en.Partial = true
	return en
}

// put installs a process read from /proc, with its lineage and container.
func (e *Enricher) put(pr *proc.Proc) *proc.Entry {
	s := pr.Snapshot()
	s.Ancestors = e.lineage(s.PPID)
	en := e.table.Put(s)
	e.attach(en, pr)
	return en
}

// lineage returns the ancestors of a child of ppid, first loading ppid and
// its own ancestors from /proc when the table lacks them (processes that
// started before the sensor and were evicted, or events that outran the
// fork that made them).
func (e *Enricher) lineage(ppid uint32) []event.Ancestor {
	e.ensure(ppid, proc.MaxLineage)
	return e.table.Lineage(ppid)
}

func (e *Enricher) ensure(pid uint32, budget int) {
	if pid == 0 || budget <= 0 || e.fs == nil || e.table.Peek(pid) != nil {
		return
	}
	pr, err := e.fs.Process(pid)
	if err != nil {
		e.procReadFailures++
		return
	}
	e.unknownPIDs++
	e.ensure(pr.PPID, budget-1)
	s := pr.Snapshot()
	s.Ancestors = e.table.Lineage(s.PPID)
	en := e.table.Put(s)
	e.attach(en, pr)
}

// onExec replaces the image of the process: exe, args and the rest come
// from the event; fork parent, start time and lineage stay. The event's
// Process becomes the snapshot (see Enrich).
func (e *Enricher) onExec(ev *event.Event) *proc.Entry {
	p := ev.Process
	if p == nil {
		return nil
	}
	old := e.table.Get(p.PID)
	s := p
	s.TID = p.PID
	s.ExecTime = ev.Time
	if old != nil && !old.Exited() && sameStart(old.Snap.StartTime, p.StartTime) {
		o := old.Snap
		s.ForkParent = o.ForkParent
		if s.StartTime.IsZero() {
			s.StartTime = o.StartTime
		}
		s.Ancestors = o.Ancestors
		s.GPUOwner = o.GPUOwner
		if s.PPID == 0 {
			s.PPID = o.PPID
		}
		if s.CgroupID == 0 {
			s.CgroupID = o.CgroupID
		}
		if s.NS == (event.Namespaces{}) {
			s.NS = o.NS
		}
		if old.Partial {
			s.Ancestors = e.lineage(s.PPID)
		}
		old.Snap, old.Thread, old.Partial = s, nil, false
		return old
	}
	if s.ForkParent == 0 {
		s.ForkParent = s.PPID
	}
	s.Ancestors = e.lineage(s.ForkParent)
	return e.table.Put(s)
}

// startSlack absorbs the difference between start times taken from the
// kernel's task and from /proc (clock ticks since boot): a pid is reused
// only after an exit, which normally arrives as an event, so the start time
// is a second line of defence against lost exits.
const startSlack = 2 * time.Second

// sameStart reports whether two start times can be the same process's.
func sameStart(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return true
	}
	d := a.Sub(b)
	return d < startSlack && d > -startSlack
}

// onFork installs the child as a copy of its parent.
func (e *Enricher) onFork(ev *event.Event) *proc.Entry {
	c := ev.Process
	if c == nil {
		return nil
	}
	parentPID := c.ForkParent
	if parentPID == 0 {
		parentPID = c.PPID
	}
	if c.PID == parentPID {
		return e.entryFor(c.PID, c) // a thread
	}
	if cur := e.table.Get(c.PID); cur != nil && !cur.Exited() && !c.StartTime.IsZero() &&
		sameStart(cur.Snap.StartTime, c.StartTime) {
		return cur // already known (seeded after the fork)
	}
	var parent *proc.Entry
	if parentPID != 0 {
		parent = e.entryFor(parentPID, nil)
	}
	// The child is the parent's copy with what the event says of it; the
	// event's Process becomes its snapshot (see Enrich).
	cp := *c
	s := c
	if parent != nil {
		*s = *parent.Snap
		s.GPUOwner = false
	}
	s.PID, s.TID, s.PPID, s.ForkParent = cp.PID, cp.PID, parentPID, parentPID
	if !cp.StartTime.IsZero() {
		s.StartTime = cp.StartTime
	} else {
		s.StartTime = ev.Time
	}
	if cp.UID != 0 || cp.EUID != 0 || parent == nil {
		s.UID, s.EUID = cp.UID, cp.EUID
	}
	if cp.Comm != "" {
		s.Comm = cp.Comm
	}
	if cp.CgroupID != 0 {
		s.CgroupID = cp.CgroupID
	}
	s.Ancestors = e.lineage(parentPID)
	en := e.table.Put(s)
	if parent != nil {
		if pd, ok := parent.Data.(*entryData); ok && pd.resolvedCgroup == s.CgroupID {
			en.Data = &entryData{ref: pd.ref, resolvedCgroup: pd.resolvedCgroup, pending: pd.pending}
		}
	}
	return en
}

// snapshotFor returns the snapshot to hang on an event: the process's own,
// or a cached variant for the thread or the changed comm or ids the event
// reports.
func (e *Enricher) snapshotFor(en *proc.Entry, p *event.Process) *event.Process {
	s := en.Snap
	if p == nil || p == s {
		return s
	}
	tid := p.TID
	if tid == 0 {
		tid = s.PID
	}
	comm := p.Comm
	if comm == "" {
		comm = s.Comm
	}
	if tid == s.TID && comm == s.Comm && p.UID == s.UID && p.EUID == s.EUID {
		return s
	}
	if tid == s.PID {
		// The main thread renamed itself or changed ids: that is the
		// process's new state.
		n := *s
		n.Comm, n.UID, n.EUID = comm, p.UID, p.EUID
		en.Snap, en.Thread = &n, nil
		return en.Snap
	}
	if t := en.Thread; t != nil && t.TID == tid && t.Comm == comm && t.UID == p.UID && t.EUID == p.EUID &&
		t.CgroupID == s.CgroupID && t.GPUOwner == s.GPUOwner {
		return t
	}
	n := *s
	n.TID, n.Comm, n.UID, n.EUID = tid, comm, p.UID, p.EUID
	en.Thread = &n
	return en.Thread
}

// attach resolves the container of a process read from /proc.
func (e *Enricher) attach(en *proc.Entry, p *proc.Proc) {
	ref, pending := e.resolve(en.Snap.CgroupID, en.Snap.NS, func() (string, proc.Cgroups) { return p.CgroupPath, p.Cgroups })
	en.Data = &entryData{ref: ref, resolvedCgroup: en.Snap.CgroupID, pending: pending}
}

// containerOf returns the current container snapshot of en's process.
func (e *Enricher) containerOf(en *proc.Entry) *event.Container {
	d, _ := en.Data.(*entryData)
	id := en.Snap.CgroupID
	if d == nil || d.resolvedCgroup != id || d.pending && e.pathKnown(id) {
		var ref *containerRef
		pending := false
		if id != 0 {
			ref = e.byCgroup[id]
		}
		if ref == nil {
			ref, pending = e.resolve(id, en.Snap.NS, func() (string, proc.Cgroups) {
				if e.fs != nil && !en.Exited() {
					if c, v2, _, err := e.fs.Cgroup(en.Snap.PID); err == nil {
						return v2, c
					}
				}
				return "", nil
			})
		}
		d = &entryData{ref: ref, resolvedCgroup: id, pending: pending}
		en.Data = d
	}
	if d.ref == nil {
		return nil
	}
	if !d.ref.complete && e.cri != nil {
		e.askCRI(d.ref, e.opts.Now())
	}
	return d.ref.cur
}

// pathKnown reports whether the path of cgroup id has become known.
func (e *Enricher) pathKnown(id uint64) bool {
	if id == 0 || e.resolver == nil {
		return false
	}
	_, err := e.resolver.Path(id)
	return err == nil
}

// resolve finds the container of a cgroup: by the path of its id (as the
// kernel reported it), else by a v1 path, else by namespaces. It returns
// nil for the host. pending says that the id's path is not known yet, so
// the answer is provisional and must not stick to the process.
//
// procCgroup reads the process's /proc/<pid>/cgroup, only when the id's
// path names no container: for the v1 paths (runtimes that place only v1
// cgroups), and for the v2 path where there is no id and that path is from
// the root of the hierarchy.
func (e *Enricher) resolve(id uint64, ns event.Namespaces, procCgroup func() (v2 string, cgs proc.Cgroups)) (ref *containerRef, pending bool) {
	if id != 0 {
		if ref, ok := e.byCgroup[id]; ok && ref != nil {
			return ref, false
		}
	}
	path := ""
	switch {
	case id != 0 && e.resolver != nil:
		p, err := e.resolver.Path(id)
		if err != nil {
			pending = true
			e.pendingCgroups++
		}
		path = p
	case id != 0:
		pending = true
	case !e.procPathsFull:
		pending = true // seeded in a cgroup namespace: the id comes with the first event
	}
	info := e.parser.Parse(path)
	if !info.Container {
		v2, cgs := procCgroup()
		if id == 0 && e.procPathsFull {
			path, info = v2, e.parser.Parse(v2)
		}
		// cgroup v1 hierarchies (v1-only hosts, or runtimes that place
		// only v1 cgroups) name containers too.
		for _, c := range cgs {
			if info.Container {
				break
			}
			if c.Hierarchy == 0 {
				continue
			}
			if i := e.parser.Parse(c.Path); i.Container {
				info, path = i, c.Path
				break
			}
		}
	}
	switch {
	case info.Container:
		ref = e.containerRef(info.ID, func() *event.Container {
			return &event.Container{ID: info.ID, Runtime: info.Runtime, CgroupPath: path, PodUID: info.PodUID}
		})
		if id != 0 && !pending {
			if len(e.byCgroup) >= maxContainers {
				clear(e.byCgroup)
				e.containerResets++
			}
			e.byCgroup[id] = ref
		}
	case e.hostNS.Mnt != 0 && ns.Mnt != 0 && ns.PID != 0 && ns.Mnt != e.hostNS.Mnt && ns.PID != e.hostNS.PID:
		// No container layout, but both the mount and the pid
		// namespace differ from the host's: a container of an unknown
		// runtime. (A mount namespace alone is not enough: systemd
		// units with PrivateTmp have one.)
		key := "mntns:" + strconv.FormatUint(uint64(ns.Mnt), 10)
		ref = e.containerRef(key, func() *event.Container {
			return &event.Container{ID: event.Unknown, Runtime: event.Unknown, CgroupPath: path}
		})
		ref.complete = true
	}
	return ref, pending
}

func (e *Enricher) containerRef(key string, mk func() *event.Container) *containerRef {
	if ref := e.byID[key]; ref != nil {
		return ref
	}
	if len(e.byID) >= maxContainers {
		clear(e.byID)
		e.containerResets++
	}
	c := mk()
	c.StartTime = e.opts.Now()
	if e.opts.GPUAssignments != nil {
		c.GPUs = e.opts.GPUAssignments.GPUsFor(c)
	}
	ref := &containerRef{cur: c, complete: c.ID == event.Unknown}
	e.byID[key] = ref
	e.containersSeen++
	return ref
}

// askCRI requests pod metadata for an incomplete container, at most once a
// second; the answer arrives in onCRI.
func (e *Enricher) askCRI(ref *containerRef, now time.Time) {
	if e.cri == nil || now.Sub(ref.lastAsk) < time.Second {
		return
	}
	ref.lastAsk = now
	if m, ok := e.cri.Get(ref.cur.ID); ok {
		e.applyCRILocked(ref, m)
	}
}

// onCRI runs on the CRI client's goroutine.
func (e *Enricher) onCRI(m cri.Meta) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ref := e.byID[m.ID]; ref != nil {
		e.applyCRILocked(ref, m)
	}
}

func (e *Enricher) applyCRILocked(ref *containerRef, m cri.Meta) {
	if !m.Found {
		// The runtime does not know it (a container of another runtime):
		// stop asking on every event. A later listing that finds it still
		// arrives through onCRI.
		ref.complete = true
		return
	}
	e.criUpdates++
	c := *ref.cur
	c.Name, c.Image, c.Pod, c.Namespace = m.Name, m.Image, m.PodName, m.PodNamespace
	if m.PodUID != "" {
		c.PodUID = m.PodUID
	}
	if len(m.Labels) > 0 {
		c.Labels = m.Labels
	}
	if c.Runtime == event.Unknown && e.cri != nil {
		if rt := e.cri.RuntimeName(); rt != "" {
			c.Runtime = rt
		}
	}
	if e.opts.GPUAssignments != nil {
		c.GPUs = e.opts.GPUAssignments.GPUsFor(&c)
	}
	ref.cur = &c
	ref.complete = true
}

// Lookup returns the current process and container snapshots of pid,
// reading /proc if the table does not know it. It works without Start (as
// for a one-shot `sensor gpus`), reading /proc on demand. The container is nil for a
// host process; both are nil for a pid that is gone and unknown.
func (e *Enricher) Lookup(pid uint32) (*event.Process, *event.Container) {
	e.mu.Lock()
	defer e.mu.Unlock()
	en := e.table.Peek(pid)
	if en == nil {
		if err := e.openLocked(); err != nil {
			return nil, nil
		}
		pr, err := e.fs.Process(pid)
		if err != nil {
			return nil, nil
		}
		en = e.put(pr)
	}
	return en.Snap, e.containerOf(en)
}

// Classify returns the class of destination address a (see netclass).
func (e *Enricher) Classify(ev *event.Net) string {
	if ev.Protocol == "unix" {
		return event.ClassUnix
	}
	return e.classes.Classify(ev.DAddr)
}

// Counters returns the enricher's counters: events, table size and
// evictions, /proc reads, containers and the CRI and netlink clients'.
func (e *Enricher) Counters() map[string]uint64 {
	e.mu.Lock()
	m := map[string]uint64{
		"enrich_events":             e.events,
		"enrich_unknown_pids":       e.unknownPIDs,
		"enrich_proc_read_failures": e.procReadFailures,
		"enrich_cgroup_changes":     e.cgroupChanges,
		"enrich_gpu_owners":         e.gpuOwners,
		"enrich_containers_seen":    e.containersSeen,
		"enrich_container_resets":   e.containerResets,
		"enrich_cri_updates":        e.criUpdates,
		"enrich_cgroups_pending":    e.pendingCgroups,
		"proc_table_size":           uint64(e.table.Len()),
		"proc_table_evicted":        e.table.Evicted(),
		"proc_table_expired":        e.table.Expired(),
	}
	c, r := e.cri, e.resolver
	e.mu.Unlock()
	if r != nil {
		rc := r.Counters()
		m["cgroup_index_entries"], m["cgroup_index_resets"] = rc.Entries, rc.Resets
		m["cgroup_learned"], m["cgroup_forgotten"] = rc.Learned, rc.Forgotten
		m["cgroup_handle_lookups"], m["cgroup_walks"], m["cgroup_misses"] = rc.Handles, rc.Walks, rc.Misses
	}
	maps.Copy(m, e.classes.Counters())
	if c != nil {
		maps.Copy(m, c.Counters())
	}
	return m
}
