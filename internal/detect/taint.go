package detect

import (
	"strconv"
	"strings"
	"time"

	"github.com/kestrel-sec/kestrel/internal/detect/model"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// EXF-001 taint: who read model weights without owning them, where that
// taint spread (files written, children, pipeline peers, the container),
// and the triggers it raises when the tainted data meets an egress.

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

// highBytes is what a send must reach before it can be the weights leaving
// rather than an API call, a webhook or a checksum (see modelScale). Below
// it, a tainted egress is low.
func (s *taintSrc) highBytes() uint64 { return modelScale(s.maxSize) }

// modelScale is the volume that may be a model of size bytes leaving: 10 %
// of it, between 64 KiB and 1 MiB (1 MiB when the size is unknown).
func modelScale(size int64) uint64 {
	if size <= 0 {
		return exf001HighCap
	}
	return min(max(uint64(size)/10, exf001HighFloor), exf001HighCap)
}

// Taint propagation paths.
const (
	viaRead      = "read"      // the process read model weights itself
	viaFile      = "file"      // it read a file a tainted process wrote
	viaFork      = "fork"      // it was forked by a tainted process
	viaPipeline  = "pipeline"  // a sibling with an overlapping lifetime was tainted
	viaContainer = "container" // a process of its container read weights
	viaPod       = "pod"       // a process of another container of its pod read weights
	viaHeld      = "held"      // it holds a model file (or a tainted copy) by fd or mapping
)

// Taint by held files and by pod is judged on model-scale sends only: the
// sender never opened weights, so only the volume says it carries them.
func heldOrPod(via string) bool { return via == viaHeld || via == viaPod }

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

// exfTrigger is an EXF-001 conclusion waiting to be emitted by the rule.
type exfTrigger struct {
	ev     *event.Event
	src    *taintSrc
	sender *event.Process
	via    string
	cond   string // egress, runtime_socket, transfer_tool
	dest   string
	class  string
	bytes  uint64
	// destBytes are the tainted bytes to the destination's prefix from
	// the container, over every socket (at least bytes).
	destBytes uint64
	sev       event.Severity
	stage     string
	origin    string  // the socket's event.Origin*
	sock      sockKey // the socket and destination of an egress trigger
	deadline  time.Time
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

// podKey names a pod: by its UID when the enricher knows it, or by its
// network namespace (which the containers of a pod share, and no two pods
// do) for a container whose pod is not known. One of the fields is set.
type podKey struct {
	uid string
	net uint32
}

// podTaint is the taint a container left on its pod.
type podTaint struct {
	src   *taintSrc
	since time.Time
	cid   string // the container it came from
}

// podKeys returns the keys of the pod of process p in container c; zero
// keys are unknown. The host network namespace is no pod's.
func (a *aiState) podKeys(p *event.Process, c *event.Container) [2]podKey {
	var k [2]podKey
	if c == nil {
		return k
	}
	if c.PodUID != "" && c.PodUID != event.Unknown {
		k[0].uid = c.PodUID
	}
	if n := p.NS.Net; n != 0 && n != a.s.HostNS.Net {
		k[1].net = n
	}
	return k
}

// podTaintOf returns the active taint another container of the pod of p
// left, and that container's id.
func (a *aiState) podTaintOf(p *event.Process, c *event.Container, now time.Time) (*taintSrc, string) {
	if c == nil || a.pods.Len() == 0 {
		return nil, ""
	}
	for _, k := range a.podKeys(p, c) {
		if k == (podKey{}) {
			continue
		}
		if t, ok := a.pods.Peek(k); ok && t.cid != c.ID && t.src != nil && !t.src.dropped && now.Sub(t.since) <= a.window {
			return t.src, t.cid
		}
	}
	return nil, ""
}

// heldSource asks the kernel whether p holds a model file, or a file a
// tainted process wrote, by descriptor or mapping: an fd inherited from the
// model server or passed over a unix socket, weights mapped before the
// sensor started, a reader that waited past exfil_window. Asked only when
// p sends model-scale bytes outside the allowlist, at most once per
// holdingsEvery per process and under the engine's rate limit. A hit
// taints p (and its container and pod) with a confirmed source.
func (a *aiState) heldSource(st *State, p *event.Process, c *event.Container, now time.Time) *taintSrc {
	r := a.proc(p, c)
	if !r.heldAt.IsZero() && now.Sub(r.heldAt) < holdingsEvery {
		return nil
	}
	r.heldAt = now
	held := st.facts.holdings(p.PID, now)
	a.heldQueries++
	var src *taintSrc
	for _, h := range held {
		ref := fileRef{key: model.KeyOf(h.Dev, h.Inode, h.Path), path: h.Path, size: h.Size}
		hit := false
		if pt, ok := a.paths.Peek(pathKey{dev: h.Dev, ino: h.Inode}); ok && h.Inode != 0 && pt.src != nil && !pt.src.dropped {
			// A copy a tainted process wrote: the original weights name it.
			for i := 0; i < pt.src.n; i++ {
				if src == nil {
					src = &taintSrc{reader: p.PID, readerExe: p.Exe, cid: cidOf(c), at: now, maxSize: -1, confirmed: true}
				}
				src.add(pt.src.files[i])
			}
			ref.path += " (copy)"
			hit = true
		} else if e, ok := a.reg.Get(ref.key); ok && h.Inode != 0 {
			if ref.size < 0 {
				ref.size = e.Size
			}
			hit = true
		} else if ok, _ := a.match.IsModel("", h.Path, h.Size); ok {
			hit = true
		}
		if !hit {
			continue
		}
		if h.FD >= 0 {
			ref.path += " (held, fd " + itoa(uint64(h.FD)) + ")"
		} else {
			ref.path += " (mapped)"
		}
		if src == nil {
			src = &taintSrc{reader: p.PID, readerExe: p.Exe, cid: cidOf(c), at: now, maxSize: -1, confirmed: true}
		}
		src.add(ref)
	}
	if src == nil {
		return nil
	}
	a.sources++
	a.heldHits++
	a.taint(r, p, c, src, viaHeld, p.PID, now)
	a.watchHeld(p.PID, src, now)
	return src
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
		if owner || a.loaderExempt(st, p, c) {
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
	a.taint(r, p, c, pt.src, viaFile, pt.by, now)
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
	a.taint(r, p, c, src, viaRead, p.PID, now)
	a.watchHeld(p.PID, src, now)
}

// renewal is a taint source whose reader may still hold its files when its
// exfil_window ends.
type renewal struct {
	pid uint32
	src *taintSrc
	due time.Time
}

// watchHeld remembers to ask, before the taint of reader pid expires,
// whether it still holds the files of src.
func (a *aiState) watchHeld(pid uint32, src *taintSrc, now time.Time) {
	for i := range a.renew {
		if a.renew[i].pid == pid {
			a.renew[i] = renewal{pid: pid, src: src, due: now.Add(a.window - renewMargin)}
			return
		}
	}
	if len(a.renew) >= maxRenew {
		a.renewDrops++
		return
	}
	a.renew = append(a.renew, renewal{pid: pid, src: src, due: now.Add(a.window - renewMargin)})
}

// renewHeld keeps the taint of readers that still hold a tainted file by
// descriptor or mapping (the kernel is asked, rate-limited, shortly before
// the window ends): data that is held is not stale. A reader that exited,
// took another taint or let go of the files is forgotten. Asked from Flush,
// before the sender's bytes flow: a sender that reads, sends and exits in a
// few milliseconds is gone from /proc by the time its connect is judged.
func (a *aiState) renewHeld(st *State, now time.Time) {
	keep := a.renew[:0]
	for _, w := range a.renew {
		r := a.procs.Ptr(w.pid)
		switch {
		case r == nil || r.src != w.src || w.src.dropped:
			continue
		case now.Before(w.due):
			keep = append(keep, w)
			continue
		}
		held, ok := st.facts.holdingsOK(w.pid, now)
		if !ok {
			keep = append(keep, w) // refused by the rate limit: next flush
			continue
		}
		if !holdsAny(held, w.src) {
			continue
		}
		r.srcSince = now
		if cs := a.ctrs.Ptr(r.cid); cs != nil && cs.src == w.src {
			cs.srcSince = now
		}
		w.due = now.Add(a.window - renewMargin)
		a.renewed++
		keep = append(keep, w)
	}
	clear(a.renew[len(keep):])
	a.renew = keep
}

// holdsAny reports whether held names one of the files of src.
func holdsAny(held []HeldFile, src *taintSrc) bool {
	for _, h := range held {
		k := model.KeyOf(h.Dev, h.Inode, h.Path)
		for i := 0; i < src.n; i++ {
			if src.files[i].key == k {
				return true
			}
		}
	}
	return false
}

// taint gives r (process p) the taint src, and its container and pod too.
func (a *aiState) taint(r *aiProc, p *event.Process, c *event.Container, src *taintSrc, via string, from uint32, now time.Time) {
	pid := p.PID
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
		for _, k := range a.podKeys(p, c) {
			if k != (podKey{}) {
				a.pods.Put(k, podTaint{src: src, since: now, cid: c.ID})
			}
		}
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
		if d := &a.deferred[i]; d.src == s && d.sock == t.sock && d.stage == t.stage ||
			t.sock.cookie != 0 && d.sock == t.sock {
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
			if t.sock.cookie != 0 {
				if sk, ok := a.socks.Peek(t.sock); ok && sk.bytes > t.bytes {
					t.bytes = sk.bytes
					switch {
					case t.bytes >= t.src.criticalBytes():
						t.sev, t.stage = event.SevCritical, "critical"
					case t.bytes >= t.src.highBytes() && t.sev < event.SevHigh:
						t.sev, t.stage = event.SevHigh, "high"
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
