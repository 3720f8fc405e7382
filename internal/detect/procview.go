package detect

import (
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// What rules ask the kernel about at a trigger: the event stream says what
// a process did, not what it holds now (an fd inherited at fork or passed
// over a unix socket, a file opened before the sensor started), nor which
// host process a namespace-relative pid names.

// HeldFile is a regular file a process holds open or mapped.
type HeldFile struct {
	// Dev and Inode are in the encoding of event.File.
	Dev, Inode uint64
	// Size is the file size, or for a mapping the extent mapped (a lower
	// bound); -1 when unknown.
	Size int64
	// Path is the name the kernel prints for it: evidence, not identity.
	Path string
	// FD is the descriptor, or -1 for a mapping.
	FD int32
}

// ProcIdentity is where a live process is: its cgroup id and namespaces.
type ProcIdentity struct {
	CgroupID uint64
	NS       event.Namespaces
}

// ProcView answers, from the kernel's view of live processes (procfs in the
// sensor), what a rule needs at a trigger and no event carried. The engine
// calls it from its own goroutine, only on triggers, under a rate limit
// (procRate), and counts every call, refusal and error.
type ProcView interface {
	// Holdings lists the regular files pid holds by descriptor or mapping.
	// A partial list may come with an error.
	Holdings(pid uint32) ([]HeldFile, error)
	// NamespacePIDs maps, for the PID namespace with inode pidNS, each
	// member's pid in that namespace to its host pid.
	NamespacePIDs(pidNS uint32) (map[uint32]uint32, error)
	// Identity returns the cgroup id and namespaces of the live host pid.
	Identity(pid uint32) (ProcIdentity, error)
}

// Bounds of the questions to ProcView.
const (
	procRate      = 20 // calls per second, sustained
	procBurst     = 40
	holdingsEvery = 5 * time.Second  // per process: one Holdings call per this much
	nsScanFresh   = time.Second      // a namespace scan this young answers a miss
	nsScanStale   = 30 * time.Second // a scan this old still answers when the rate limit refuses a new one
	maxNSScans    = 64               // namespaces whose scans are kept
)

// nsKey is a pid in a PID namespace.
type nsKey struct{ ns, pid uint32 }

// nsScan is the result of one NamespacePIDs call.
type nsScan struct {
	at   time.Time
	pids map[uint32]uint32
}

// procFacts wraps a ProcView with the rate limit, the caches and the
// counters. A nil view answers nothing (the questions are counted as
// unanswered), so the rules degrade to what events say.
type procFacts struct {
	view   ProcView
	hostNS event.Namespaces
	tokens float64
	last   time.Time
	// byEvent maps (pid namespace, pid) to host pids learned from events
	// (Process.NSPID); scans holds NamespacePIDs results.
	byEvent *LRU[nsKey, uint32]
	scans   *LRU[uint32, nsScan]

	calls, limited, errs, unanswered uint64
}

func newProcFacts(view ProcView, hostNS event.Namespaces, size int) *procFacts {
	return &procFacts{view: view, hostNS: hostNS, tokens: procBurst,
		byEvent: NewLRU[nsKey, uint32](size, nil), scans: NewLRU[uint32, nsScan](maxNSScans, nil)}
}

// allow takes a token of the rate limit at now.
func (f *procFacts) allow(now time.Time) bool {
	if f.view == nil {
		f.unanswered++
		return false
	}
	if !f.last.IsZero() && now.After(f.last) {
		f.tokens = min(procBurst, f.tokens+now.Sub(f.last).Seconds()*procRate)
	}
	if now.After(f.last) {
		f.last = now
	}
	if f.tokens < 1 {
		f.limited++
		return false
	}
	f.tokens--
	f.calls++
	return true
}

// learn records the namespace pid of p, from an event.
func (f *procFacts) learn(p *event.Process) {
	if p.NSPID == 0 || p.NS.PID == 0 || p.NS.PID == f.hostNS.PID {
		return
	}
	k := nsKey{p.NS.PID, p.NSPID}
	if v := f.byEvent.Ptr(k); v != nil {
		*v = p.PID
		return
	}
	f.byEvent.Put(k, p.PID)
}

// learnOwner records the namespace pid of a new GPU owner: the target of
// every GPU-004 question, which its own container names by that pid. When
// the event does not carry it, one scan of the owner's namespace (rate
// limited) finds it while the owner is surely alive.
func (f *procFacts) learnOwner(p *event.Process, now time.Time) {
	if p.NSPID != 0 || p.NS.PID == 0 || p.NS.PID == f.hostNS.PID || f.hostNS.PID == 0 {
		f.learn(p)
		return
	}
	sc, have := f.scans.Peek(p.NS.PID)
	if !have || now.Sub(sc.at) >= nsScanFresh {
		if !f.allow(now) {
			return
		}
		m, err := f.view.NamespacePIDs(p.NS.PID)
		if err != nil {
			f.errs++
			return
		}
		sc = nsScan{at: now, pids: m}
		f.scans.Put(p.NS.PID, sc)
	}
	for nspid, host := range sc.pids {
		if host == p.PID {
			f.byEvent.Put(nsKey{p.NS.PID, nspid}, host)
			return
		}
	}
}

// forget drops the mapping of an exited process.
func (f *procFacts) forget(p *event.Process) {
	if p.NSPID != 0 && p.NS.PID != 0 {
		if v, ok := f.byEvent.Peek(nsKey{p.NS.PID, p.NSPID}); ok && v == p.PID {
			f.byEvent.Delete(nsKey{p.NS.PID, p.NSPID})
		}
	}
}

// hostPID maps pid, as the process p names it (ptrace and process_vm_*
// targets, /proc/<pid>/ of its own procfs), to a host pid. A process in the
// host PID namespace (or one whose namespace is unknown) names host pids.
// ok is false when the pid cannot be mapped.
func (f *procFacts) hostPID(p *event.Process, pid uint32, now time.Time) (uint32, bool) {
	if pid == 0 {
		return 0, false
	}
	if f.hostNS.PID == 0 || p.NS.PID == 0 || p.NS.PID == f.hostNS.PID {
		return pid, true
	}
	if pid == p.NSPID {
		return p.PID, true
	}
	if v, ok := f.byEvent.Peek(nsKey{p.NS.PID, pid}); ok {
		return v, true
	}
	sc, have := f.scans.Peek(p.NS.PID)
	if have && now.Sub(sc.at) < nsScanFresh {
		v, ok := sc.pids[pid]
		return v, ok
	}
	if f.allow(now) {
		m, err := f.view.NamespacePIDs(p.NS.PID)
		if err != nil {
			f.errs++
		} else {
			sc, have = nsScan{at: now, pids: m}, true
			f.scans.Put(p.NS.PID, sc)
		}
	}
	if !have || now.Sub(sc.at) > nsScanStale {
		return 0, false
	}
	v, ok := sc.pids[pid]
	return v, ok
}

// holdings lists what pid holds, under the rate limit.
func (f *procFacts) holdings(pid uint32, now time.Time) []HeldFile {
	h, _ := f.holdingsOK(pid, now)
	return h
}

// holdingsOK is holdings that also says whether the question was asked
// (false: refused by the rate limit, or no ProcView).
func (f *procFacts) holdingsOK(pid uint32, now time.Time) ([]HeldFile, bool) {
	if !f.allow(now) {
		return nil, false
	}
	h, err := f.view.Holdings(pid)
	if err != nil {
		f.errs++
	}
	return h, true
}

// identity returns where the live host pid is, under the rate limit.
func (f *procFacts) identity(pid uint32, now time.Time) (ProcIdentity, bool) {
	if !f.allow(now) {
		return ProcIdentity{}, false
	}
	id, err := f.view.Identity(pid)
	if err != nil {
		f.errs++
		return ProcIdentity{}, false
	}
	return id, true
}

func (f *procFacts) counters(m map[string]uint64) {
	m["detect_proc_calls"] = f.calls
	m["detect_proc_rate_limited"] = f.limited
	m["detect_proc_errors"] = f.errs
	m["detect_proc_unanswered"] = f.unanswered
}
