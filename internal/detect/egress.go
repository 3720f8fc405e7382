package detect

import (
	"net/netip"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Egress accounting of the model-weight rules: bytes per socket to
// destinations outside the allowlist (EXF-001's trigger) and per
// (container, destination prefix) bucket (EXF-003).

// sockKey names a socket and its destination: the kernel counts bytes per
// socket and destination (one unconnected socket sends to many; a
// re-connected one starts over), and so does the state here.
type sockKey struct {
	cookie uint64
	addr   netip.Addr
	port   uint16
}

func sockKeyOf(n *event.Net) sockKey { return sockKey{n.Cookie, n.DAddr, n.DPort} }

// aiSock is one socket of interest, per destination: to a destination that
// is not allowlisted for its container.
type aiSock struct {
	pid   uint32
	cid   string
	addr  netip.Addr
	port  uint16
	class string
	// serving is set for a socket the model server accepted (its owner, its
	// lineage or a parent of an owner): answering clients is its job, and
	// those bytes do not count for EXF-003.
	serving bool
	// reports counts the egress reports seen for it.
	reports  uint32
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
	// tainted counts the bytes of sockets that carried EXF-001 taint: the
	// weights sent in many small connections add up.
	tainted uint64
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
	// An egress whose destination the kernel did not see (a raw send whose
	// packet was dropped before the wire) still carried the bytes: judged
	// as a destination outside the allowlist.
	if !n.DAddr.IsValid() && ev.Kind != event.KindEgress {
		return
	}
	if ev.Kind == event.KindEgress && n.DAddr.IsValid() {
		a.inv.peer(p, c, st.IsGPUOwner(p.PID) || p.GPUOwner, n)
	}
	if n.Class == event.ClassLoopback || n.DAddr.IsLoopback() || n.DAddr.IsValid() && a.s.EgressAllowed(c, n.DAddr, n.DPort) {
		return
	}
	k := sockKeyOf(n)
	sk := a.socks.Ptr(k)
	if sk == nil || n.Cookie == 0 {
		v := aiSock{pid: p.PID, cid: cid, addr: n.DAddr, port: n.DPort, class: n.Class}
		v.serving = n.Origin == event.OriginAccept && a.modelServer(st, p, c)
		if n.Cookie != 0 {
			sk = a.socks.Put(k, v)
		} else {
			sk = &v
		}
	}
	if ev.Kind == event.KindEgress {
		sk.reports++
	}
	if n.BytesSent > sk.bytes {
		sk.bytes = n.BytesSent
	}
	var b *bucket
	delta := sk.bytes - sk.counted
	if c != nil && !sk.serving && n.DAddr.IsValid() {
		b = a.count(c, sk, now)
	}
	// EXF-001: a tainted sender, any sender in a tainted container or pod,
	// a tainted socket, or a sender that holds weights by fd or mapping.
	src, via, _ := a.taintOf(p.PID, now)
	if src == nil {
		if src = a.containerTaint(cid, now); src != nil {
			via = viaContainer
		}
	}
	if src == nil && sk.exfSrc != nil && !sk.exfSrc.dropped {
		src, via = sk.exfSrc, "socket"
	}
	if src == nil && ev.Kind == event.KindConnect && !a.isOwner(st, p) && a.mayHold(st, p, c) &&
		!a.loaderExempt(st, p, c) {
		// Asked before the bytes flow: a sender that sends and exits at once
		// is gone from /proc when its close report arrives.
		if src = a.heldSource(st, p, c, now); src != nil {
			via = viaHeld
		}
	}
	if src == nil && sk.bytes >= a.heldQueryBytes() {
		if src, _ = a.podTaintOf(p, c, now); src != nil {
			via = viaPod
		} else if !a.isOwner(st, p) && !a.loaderExempt(st, p, c) {
			if src = a.heldSource(st, p, c, now); src != nil {
				via = viaHeld
			}
		}
	}
	if src == nil {
		return
	}
	// The severity follows the bytes sent against the weights read: a
	// 50-byte API call after a checksum of the weights is not them leaving.
	// Tainted bytes to one destination add up over sockets (chunks).
	sent := sk.bytes
	if b != nil {
		b.tainted += delta
		sent = max(sent, b.tainted)
	}
	sev, stage := event.SevLow, "low"
	switch {
	case sent >= src.criticalBytes():
		sev, stage = event.SevCritical, "critical"
	case sent >= src.highBytes():
		sev, stage = event.SevHigh, "high"
	case heldOrPod(via):
		return
	}
	sk.exfSrc = src
	switch {
	case sev > sk.exfLevel:
	case n.Closed && sk.exfLevel > 0 && grew(sk.exfBytes, sk.bytes):
		stage = "final"
	default:
		return
	}
	dest := "unknown destination"
	if n.DAddr.IsValid() {
		dest = netip.AddrPortFrom(n.DAddr, n.DPort).String()
	}
	t := exfTrigger{ev: ev, src: src, sender: p, via: via, cond: "egress",
		dest: dest, class: n.Class, bytes: sk.bytes, destBytes: sent,
		sev: sev, stage: stage, origin: n.Origin, sock: k}
	sk.exfLevel, sk.exfBytes = sev, sk.bytes
	a.trigger(t)
}

// modelServer reports whether p belongs to the model server's process tree
// in its container: a GPU owner, a descendant of one, or the parent of one
// (an API front end that spawns the GPU workers). Kernel facts: NVML's
// owners and the fork tree.
func (a *aiState) modelServer(st *State, p *event.Process, c *event.Container) bool {
	if _, ok := gpuLineage(st, p, c); ok {
		return true
	}
	cid := cidOf(c)
	ks, ok := a.kids.Peek(p.PID)
	if !ok {
		return false
	}
	for i := 0; i < int(ks.n); i++ {
		if o, ok := st.GPUOwner(ks.pids[i]); ok && o.Container == cid {
			return true
		}
	}
	return false
}

// heldQueryBytes is the volume on one socket at which a sender with no
// taint is asked what it holds: model_min_bytes, between 64 KiB and 1 MiB.
func (a *aiState) heldQueryBytes() uint64 {
	return min(max(uint64(max(a.s.Config.ModelMinBytes, 0)), exf001HighFloor), exf001HighCap)
}

// modelScaleBytes is modelScale of the largest model file container cid
// opened.
func (a *aiState) modelScaleBytes(cid string) uint64 {
	cs, _ := a.ctrs.Peek(cid)
	return modelScale(cs.maxModel)
}

// mayHold reports whether p may hold model files it did not open itself,
// so that its connect outside the allowlist is worth asking about: it read
// weights before (its taint expired), or a fork-time ancestor in its
// container owns a GPU or opened model files (descriptors and mappings
// survive fork, and pass_fds survives exec).
func (a *aiState) mayHold(st *State, p *event.Process, c *event.Container) bool {
	if r, ok := a.procs.Peek(p.PID); ok && (r.src != nil || !r.firstModel.IsZero()) {
		return true
	}
	cid := cidOf(c)
	for _, an := range p.Ancestors {
		if o, ok := st.GPUOwner(an.PID); ok && o.Container == cid {
			return true
		}
		if r, ok := a.procs.Peek(an.PID); ok && r.cid == cid && !r.firstModel.IsZero() {
			return true
		}
	}
	return false
}

// isOwner reports whether p owns GPU memory now or did (ownership is
// sticky: a server that freed its memory still owns its weights).
func (a *aiState) isOwner(st *State, p *event.Process) bool {
	if p.GPUOwner || st.IsGPUOwner(p.PID) {
		return true
	}
	r, ok := a.procs.Peek(p.PID)
	return ok && !r.ownerSince.IsZero()
}

// grew reports whether now exceeds was by more than 10 %.
func grew(was, now uint64) bool { return now > was && now-was > was/10 }

// count adds the socket's new bytes to its EXF-003 bucket and returns the
// bucket (nil for an address with no prefix).
func (a *aiState) count(c *event.Container, sk *aiSock, now time.Time) *bucket {
	bits := 24
	if sk.addr.Is6() && !sk.addr.Is4In6() {
		bits = 64
	}
	pfx, err := sk.addr.Unmap().Prefix(bits)
	if err != nil {
		return nil
	}
	k := bucketKey{cid: c.ID, prefix: pfx}
	b := a.buckets.Ptr(k)
	if b == nil || now.Sub(b.start) > exf003Window {
		b = a.buckets.Put(k, bucket{start: now})
	}
	b.bytes += sk.bytes - sk.counted
	sk.counted = sk.bytes
	return b
}
