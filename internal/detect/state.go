package detect

import (
	"net/netip"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// State is the engine-maintained state shared by rules. Every table is an
// LRU bounded by detect.state_size; evictions are counted in Counters.
//
// The engine updates it before the rules see an event, so a rule sees the
// state including the current event (a container's first exec has already
// set its entrypoint). Rules only read it unless a field says otherwise.
//
// Extension point for issue 6 (model registry, taint, per-destination
// egress bytes): add fields here, initialise them in newState, and keep
// them bounded the same way.
type State struct {
	hostNS event.Namespaces
	// curID and cur cache the container of the event being evaluated:
	// most rules ask for it, and the pointer stays valid until the next
	// event (rules never add containers).
	curID      string
	cur        *ContainerState
	containers *LRU[string, ContainerState]
	procs      *LRU[uint32, procState]
	gpuOwners  *LRU[uint32, OwnerState]
	written    *LRU[writtenKey, time.Time]
	connects   *LRU[uint32, Connect]
	sockets    *LRU[uint32, recentSockets]
	shells     *LRU[uint32, ShellExec]
	// facts asks the kernel (Options.Proc) what events did not say.
	facts *procFacts
}

// ShellExec is the last shell a process started (keyed by its fork parent).
type ShellExec struct {
	Time      time.Time
	PID       uint32
	Exe       string
	Container string
}

// Connect is an outbound inet connect of a process, or an inbound
// connection it accepted from a remote peer.
type Connect struct {
	Time time.Time
	// Dst is the remote end: the destination, or the peer that connected in.
	Dst netip.AddrPort
	// Fd is the socket's descriptor in the process, or -1.
	Fd int32
	// Accepted is set for a connection the peer opened.
	Accepted bool
	Protocol string
}

// recentSockets are the last inet sockets of a process (connected or
// accepted, non-loopback), newest at c[n%2]; two, so that a DNS lookup
// between a connect and the dup of its socket does not hide it.
type recentSockets struct {
	c [2]Connect
	n uint8
}

// ContainerState is what the engine knows about one container.
type ContainerState struct {
	// FirstSeen is the time of the first event seen from the container.
	FirstSeen time.Time
	// Entrypoint is the pid of the first exec seen in the container, and
	// EntrypointExe its exe.
	Entrypoint    uint32
	EntrypointExe string
	// BaseNS are the namespaces of that first exec.
	BaseNS event.Namespaces
	// FirstGPUOwner is when a process of the container first owned GPU
	// memory; HadGPUOwner is set at the same moment.
	FirstGPUOwner time.Time
	HadGPUOwner   bool
	// CgroupMount is when the container last mounted a cgroup filesystem
	// (set by ESC-007, read by ESC-001).
	CgroupMount time.Time
	// BlockNodes are the last block device nodes the container made with
	// mknod (set and read by ESC-007), so that a mount of one under an
	// innocuous name is known for what it is.
	BlockNodes [4]string
	blockNext  uint8
	// Execs counts execs seen in the container.
	Execs uint64
	// PostureReported is set by ESC-010 once it has looked at the container.
	PostureReported bool
}

// OwnerState is a GPU-owning process.
type OwnerState struct {
	Since     time.Time
	Container string
}

type procState struct {
	container string
	exe       string
}

type writtenKey struct {
	container string
	path      string
}

func newState(size int, hostNS event.Namespaces, view ProcView) *State {
	return &State{
		facts:      newProcFacts(view, hostNS, size),
		hostNS:     hostNS,
		containers: NewLRU[string, ContainerState](size, nil),
		procs:      NewLRU[uint32, procState](size, nil),
		gpuOwners:  NewLRU[uint32, OwnerState](size, nil),
		written:    NewLRU[writtenKey, time.Time](size, nil),
		connects:   NewLRU[uint32, Connect](size, nil),
		sockets:    NewLRU[uint32, recentSockets](size, nil),
		shells:     NewLRU[uint32, ShellExec](size, nil),
	}
}

// HostNS returns the initial namespaces.
func (s *State) HostNS() event.Namespaces { return s.hostNS }

// Container returns the state of container id, or nil. The pointer is valid
// until the next event.
func (s *State) Container(id string) *ContainerState {
	if s.cur != nil && id == s.curID {
		return s.cur
	}
	return s.containers.Ptr(id)
}

// IsGPUOwner reports whether the host tgid pid owns GPU memory.
func (s *State) IsGPUOwner(pid uint32) bool {
	_, ok := s.gpuOwners.Peek(pid)
	return ok
}

// GPUOwner returns the ownership record of pid.
func (s *State) GPUOwner(pid uint32) (OwnerState, bool) { return s.gpuOwners.Peek(pid) }

// ProcessContainer returns the container id of a live host tgid as last
// seen ("" for the host) and whether the pid is known at all.
func (s *State) ProcessContainer(pid uint32) (string, bool) {
	p, ok := s.procs.Peek(pid)
	return p.container, ok
}

// WasWritten reports when path was opened for writing inside container
// (zero if not seen).
func (s *State) WasWritten(container, path string) time.Time {
	t, _ := s.written.Peek(writtenKey{container, path})
	return t
}

// IsGPUContainer reports gpu_container(c): the container was allocated GPUs
// or one of its processes owned GPU memory.
func (s *State) IsGPUContainer(c *event.Container) bool {
	if c == nil {
		return false
	}
	if len(c.GPUs) > 0 {
		return true
	}
	cs, ok := s.containers.Peek(c.ID)
	return ok && cs.HadGPUOwner
}

// StartedAt returns when container c started: its StartTime when the
// enricher knows it, else the first event the engine saw from it.
func (s *State) StartedAt(c *event.Container) time.Time {
	if c == nil {
		return time.Time{}
	}
	if !c.StartTime.IsZero() {
		return c.StartTime
	}
	cs, _ := s.containers.Peek(c.ID)
	return cs.FirstSeen
}

// maxGraceFactor bounds how long a GPU container that never becomes a GPU
// owner stays in its startup grace, in multiples of the grace.
const maxGraceFactor = 3

// InStartupGrace reports whether now is within grace of the start of c, or
// before c's first GPU owner appeared (whichever ends later), as
// startup_grace_s of the catalog says. A GPU container whose owner never
// appears leaves the grace after maxGraceFactor times grace, so that an
// attacker cannot stay inside it by never touching the GPU.
func (s *State) InStartupGrace(c *event.Container, now time.Time, grace time.Duration) bool {
	start := s.StartedAt(c)
	if start.IsZero() {
		return false
	}
	age := now.Sub(start)
	if age < grace {
		return true
	}
	cs, ok := s.containers.Peek(c.ID)
	if ok && !cs.HadGPUOwner && len(c.GPUs) > 0 && age < maxGraceFactor*grace {
		return true // allocated GPUs but no owner yet: still starting
	}
	return false
}

// observe updates the state with ev before the rules see it.
func (s *State) observe(ev *event.Event) {
	p := ev.Process
	c := ev.Container
	var cs *ContainerState
	s.cur, s.curID = nil, ""
	if c != nil && c.ID != "" {
		cs = s.containers.Ptr(c.ID)
		if cs == nil {
			cs = s.containers.Put(c.ID, ContainerState{FirstSeen: ev.Time})
		}
		s.cur, s.curID = cs, c.ID
	}
	switch ev.Kind {
	case event.KindExec, event.KindFork:
		if p == nil {
			break
		}
		var cid string
		if c != nil {
			cid = c.ID
		}
		s.facts.learn(p)
		if ps := s.procs.Ptr(p.PID); ps != nil {
			ps.container, ps.exe = cid, p.Exe
		} else {
			s.procs.Put(p.PID, procState{container: cid, exe: p.Exe})
		}
		if ev.Kind == event.KindExec && p.ForkParent != 0 && (isShell(exeBase(p)) || isShell(argv0Base(p))) {
			se := ShellExec{Time: ev.Time, PID: p.PID, Exe: p.Exe}
			if c != nil {
				se.Container = c.ID
			}
			if sp := s.shells.Ptr(p.ForkParent); sp != nil {
				*sp = se
			} else {
				s.shells.Put(p.ForkParent, se)
			}
		}
		if cs != nil && ev.Kind == event.KindExec {
			if cs.Execs == 0 {
				cs.Entrypoint, cs.EntrypointExe, cs.BaseNS = p.PID, p.Exe, p.NS
			}
			cs.Execs++
		}
	case event.KindExit:
		if p != nil && (p.TID == p.PID || p.TID == 0) {
			s.facts.forget(p)
			s.procs.Delete(p.PID)
			s.gpuOwners.Delete(p.PID)
			s.connects.Delete(p.PID)
			s.sockets.Delete(p.PID)
			s.shells.Delete(p.PID)
		}
	case event.KindGPU:
		g := ev.GPU
		if g == nil {
			break
		}
		switch g.Change {
		case event.GPUStop:
			s.gpuOwners.Delete(g.PID)
		default:
			if _, known := s.gpuOwners.Peek(g.PID); !known && p != nil && p.PID == g.PID {
				s.facts.learnOwner(p, ev.Time)
			}
			s.addOwner(g.PID, ev.Time, c)
		}
	case event.KindConnect, event.KindAccept:
		n := ev.Net
		if p == nil || n == nil || n.UnixPath != "" || !n.DAddr.IsValid() || n.DAddr.IsLoopback() ||
			n.Class == event.ClassLoopback || n.Result != 0 && n.Result != -115 {
			break
		}
		ci := Connect{Time: ev.Time, Dst: netip.AddrPortFrom(n.DAddr, n.DPort), Fd: n.Fd,
			Accepted: ev.Kind == event.KindAccept, Protocol: n.Protocol}
		if n.Fd >= 0 && (n.Protocol == "tcp" || n.Protocol == "udp") {
			rs := s.sockets.Ptr(p.PID)
			if rs == nil {
				rs = s.sockets.Put(p.PID, recentSockets{})
			}
			rs.n++
			rs.c[rs.n%2] = ci
		}
		if ev.Kind == event.KindConnect && n.Protocol == "tcp" {
			if cp := s.connects.Ptr(p.PID); cp != nil {
				*cp = ci
			} else {
				s.connects.Put(p.PID, ci)
			}
		}
	case event.KindOpen:
		if c != nil && ev.File != nil && ev.File.Result >= 0 && ev.File.IsWrite() && ev.File.Path != "" {
			s.written.Put(writtenKey{c.ID, ev.File.Path}, ev.Time)
		}
	}
	if p != nil && p.GPUOwner {
		s.addOwner(p.PID, ev.Time, c) // no-op for a known owner
	}
}

// HostPID maps pid as the process p names it (a ptrace or process_vm_*
// target, the <pid> of a /proc/<pid>/ path in its own procfs) to a host
// pid: the identity for processes in the host PID namespace, else through
// the (namespace, pid) pairs that events carried (Process.NSPID) or a scan
// of the namespace's members (ProcView, rate-limited). ok is false when it
// cannot be mapped.
func (s *State) HostPID(p *event.Process, pid uint32, now time.Time) (uint32, bool) {
	return s.facts.hostPID(p, pid, now)
}

// Outside reports whether the live host pid t is in another container
// than the process p of container c (a container process reaching out of
// its container): from the engine's process table when t produced events,
// else from the kernel (cgroup id and mount namespace; ProcView). where
// names the other side ("the host" or "container <id>"). ok is false when
// it cannot be decided. A process in its own PID namespace reaches only its
// namespace, which is its container or pod: never outside.
func (s *State) Outside(p *event.Process, c *event.Container, t uint32, now time.Time) (outside bool, where string, ok bool) {
	if c == nil || t == 0 || t == p.PID {
		return false, "", true
	}
	if cid, known := s.ProcessContainer(t); known {
		if cid == c.ID {
			return false, "", true
		}
		if cid == "" {
			return true, "the host", true
		}
		return true, "container " + cid, true
	}
	if s.hostNS.PID != 0 && p.NS.PID != 0 && p.NS.PID != s.hostNS.PID {
		return false, "", true
	}
	id, ok := s.facts.identity(t, now)
	if !ok {
		return false, "", false
	}
	if id.CgroupID != 0 && id.CgroupID == p.CgroupID || id.NS.Mnt != 0 && id.NS.Mnt == p.NS.Mnt {
		return false, "", true
	}
	if s.hostNS.Mnt != 0 && id.NS.Mnt == s.hostNS.Mnt {
		return true, "the host", true
	}
	return true, "another container", true
}

func (s *State) addOwner(pid uint32, t time.Time, c *event.Container) {
	if _, ok := s.gpuOwners.Peek(pid); ok {
		return
	}
	cid := ""
	if c != nil {
		cid = c.ID
	} else if ps, ok := s.procs.Peek(pid); ok {
		cid = ps.container
	}
	s.gpuOwners.Put(pid, OwnerState{Since: t, Container: cid})
	if cid != "" {
		if cs := s.containers.Ptr(cid); cs != nil && !cs.HadGPUOwner {
			cs.FirstGPUOwner, cs.HadGPUOwner = t, true
		}
	}
}

// LastConnect returns the last outbound (non-loopback TCP) connect of pid.
func (s *State) LastConnect(pid uint32) (Connect, bool) { return s.connects.Peek(pid) }

// SocketOnFd returns the recent non-loopback TCP or UDP socket of pid,
// connected or accepted, whose descriptor is fd.
func (s *State) SocketOnFd(pid uint32, fd int32) (Connect, bool) {
	rs, ok := s.sockets.Peek(pid)
	if !ok || fd < 0 {
		return Connect{}, false
	}
	for i := range 2 {
		if c := rs.c[(int(rs.n)-i)%2]; c.Fd == fd && !c.Time.IsZero() {
			return c, true
		}
	}
	return Connect{}, false
}

// LastShell returns the last shell started by a child of pid.
func (s *State) LastShell(pid uint32) (ShellExec, bool) { return s.shells.Peek(pid) }

// evictions sums the evictions of every table.
func (s *State) evictions() uint64 {
	return s.facts.byEvent.Evictions() + s.containers.Evictions() + s.procs.Evictions() + s.gpuOwners.Evictions() + s.written.Evictions() + s.connects.Evictions() + s.sockets.Evictions() + s.shells.Evictions()
}
