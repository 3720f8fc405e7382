package detect

import (
	"cmp"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/kestrel-sec/kestrel/internal/detect/model"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// Bounds of the inventory.
const (
	maxInvGPUs      = 1024 // GPUs and MIG instances
	maxInvOwners    = 256  // owners per GPU
	maxInvLoaders   = 1024 // process snapshots of model loaders kept for Unowned
	maxInvPeerSets  = 4096 // actors (containers, host owners) with egress peers
	maxInvCookieMem = 16384
)

// inventory is the runtime AI bill of materials the engine maintains: GPUs
// and their owners from gpu events, egress peers from egress events, and
// snapshots of the processes that loaded model files. The model files come
// from the registry. It is written by the engine goroutine and read by
// Engine.Inventory from any goroutine, under mu.
type inventory struct {
	mu      sync.Mutex
	node    string
	gpus    map[gpuID]*invGPU
	loaders *LRU[uint32, invLoader]
	peers   *LRU[actor, *peerSet]
	cookies *LRU[sockKey, uint64] // last cumulative bytes per socket and destination
	dropped uint64                // GPUs, owners and peers not kept
}

type invGPU struct {
	event.InventoryGPU
	owners map[uint32]*event.InventoryOwner
}

type invLoader struct {
	p *event.Process
	c *event.Container
}

type peerKey struct {
	addr  netip.Addr
	port  uint16
	proto string
}

type peerSet struct {
	m map[peerKey]*event.Peer
}

func newInventory(node string, size int) *inventory {
	if node == "" {
		node, _ = os.Hostname()
	}
	return &inventory{
		node:    node,
		gpus:    make(map[gpuID]*invGPU),
		loaders: NewLRU[uint32, invLoader](min(size, maxInvLoaders), nil),
		peers:   NewLRU[actor, *peerSet](min(size, maxInvPeerSets), nil),
		cookies: NewLRU[sockKey, uint64](min(size, maxInvCookieMem), nil),
	}
}

// gpuID identifies a GPU or MIG instance: by UUID when known, else by index.
type gpuID struct {
	uuid, mig string
	index     int
}

func gpuKey(g *event.GPU) gpuID {
	if g.UUID != "" || g.MIG != "" {
		return gpuID{uuid: g.UUID, mig: g.MIG, index: -1}
	}
	return gpuID{index: g.Index}
}

// gpu applies a gpu event.
func (inv *inventory) gpu(ev *event.Event) {
	g := ev.GPU
	inv.mu.Lock()
	defer inv.mu.Unlock()
	k := gpuKey(g)
	x := inv.gpus[k]
	if x == nil {
		if len(inv.gpus) >= maxInvGPUs {
			inv.dropped++
			return
		}
		x = &invGPU{InventoryGPU: event.InventoryGPU{UUID: g.UUID, Index: g.Index, Name: g.Name, MIG: g.MIG},
			owners: make(map[uint32]*event.InventoryOwner)}
		inv.gpus[k] = x
	}
	if g.Name != "" {
		x.Name = g.Name
	}
	if g.PID == 0 {
		return
	}
	if g.Change == event.GPUStop {
		delete(x.owners, g.PID)
		return
	}
	o := x.owners[g.PID]
	if o == nil {
		if len(x.owners) >= maxInvOwners {
			inv.dropped++
			return
		}
		o = &event.InventoryOwner{}
		x.owners[g.PID] = o
	}
	if ev.Process != nil && ev.Process.PID == g.PID {
		o.Process = ev.Process
	} else if o.Process == nil {
		o.Process = &event.Process{PID: g.PID, TID: g.PID}
	}
	if ev.Container != nil {
		o.Container = ev.Container
	}
	o.UsedBytes = g.UsedBytes
}

// exit forgets an exited process as an owner.
func (inv *inventory) exit(pid uint32) {
	inv.mu.Lock()
	for _, g := range inv.gpus {
		delete(g.owners, pid)
	}
	inv.mu.Unlock()
}

// indexOf returns the index of the GPU or MIG instance with uuid.
func (inv *inventory) indexOf(uuid string) (int, bool) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for _, g := range inv.gpus {
		if g.UUID == uuid || g.MIG == uuid {
			return g.Index, true
		}
	}
	return 0, false
}

// loader remembers the snapshot of a process that opened a model file.
func (inv *inventory) loader(p *event.Process, c *event.Container) {
	inv.mu.Lock()
	inv.loaders.Put(p.PID, invLoader{p: p, c: c})
	inv.mu.Unlock()
}

// actor keys egress peers: a container, or a host process.
type actor struct {
	pid uint32
	cid string
}

func actorKey(pid uint32, cid string) actor {
	if cid != "" {
		return actor{cid: cid}
	}
	return actor{pid: pid}
}

// peer records an egress report of a container process or a host GPU owner.
func (inv *inventory) peer(p *event.Process, c *event.Container, owner bool, n *event.Net) {
	if c == nil && !owner {
		return
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	var delta uint64
	if n.Cookie != 0 {
		k := sockKeyOf(n)
		last, _ := inv.cookies.Peek(k)
		if n.BytesSent > last {
			delta = n.BytesSent - last
		}
		if n.Closed {
			inv.cookies.Delete(k)
		} else {
			inv.cookies.Put(k, max(last, n.BytesSent))
		}
	} else {
		delta = n.BytesSent
	}
	key := actorKey(p.PID, cidOf(c))
	ps, ok := inv.peers.Get(key)
	if !ok {
		ps = &peerSet{m: make(map[peerKey]*event.Peer)}
		inv.peers.Put(key, ps)
	}
	pk := peerKey{n.DAddr, n.DPort, n.Protocol}
	x := ps.m[pk]
	if x == nil {
		if len(ps.m) >= maxPeersPerActor {
			inv.dropped++
			return
		}
		x = &event.Peer{Addr: n.DAddr, Port: n.DPort, Protocol: n.Protocol, Class: n.Class}
		ps.m[pk] = x
	}
	x.BytesSent += delta
}

// peersOf returns the peers of an actor, sorted; mu must be held.
func (inv *inventory) peersOf(pid uint32, cid string) []event.Peer {
	ps, ok := inv.peers.Peek(actorKey(pid, cid))
	if !ok {
		return nil
	}
	out := make([]event.Peer, 0, len(ps.m))
	for _, p := range ps.m {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b event.Peer) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol))
	})
	return out
}

// Inventory returns the runtime AI bill of materials of this node: each GPU
// (or MIG instance) seen in gpu events, its owning processes with their
// process and container snapshots and used bytes, the model files each owner
// loaded (with size and sha256 once hashed), and the egress peers seen from
// the owner's container (or from the owner, on the host). Model files opened
// only by processes that own no GPU are listed under Unowned, per loader.
//
// It is safe for concurrent use with Process: the gRPC server and
// `sensor bom` call it from their own goroutines. The result is a copy.
func (e *Engine) Inventory() *event.Inventory {
	return e.ai.inventory(time.Now())
}

func (a *aiState) inventory(now time.Time) *event.Inventory {
	entries := a.reg.Entries()
	inv := a.inv
	out := &event.Inventory{Node: inv.node, Time: now.UTC()}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	owned := make(map[model.Key]bool)
	for _, g := range inv.gpus {
		ig := g.InventoryGPU
		ig.Owners = nil
		for pid, o := range g.owners {
			io := *o
			cid := cidOf(o.Container)
			io.Models = filesOf(entries, pid, cid, owned)
			io.Peers = inv.peersOf(pid, cid)
			ig.Owners = append(ig.Owners, io)
		}
		slices.SortFunc(ig.Owners, func(x, y event.InventoryOwner) int { return cmp.Compare(x.Process.PID, y.Process.PID) })
		out.GPUs = append(out.GPUs, ig)
	}
	slices.SortFunc(out.GPUs, func(x, y event.InventoryGPU) int {
		return cmp.Or(cmp.Compare(x.Index, y.Index), cmp.Compare(x.MIG, y.MIG), cmp.Compare(x.UUID, y.UUID))
	})
	type loaderKey struct {
		pid uint32
		cid string
	}
	groups := map[loaderKey]*event.InventoryOwner{}
	var order []loaderKey
	for i := range entries {
		en := &entries[i]
		if owned[en.Key] {
			continue
		}
		k := loaderKey{en.FirstLoader.PID, en.FirstLoader.ContainerID}
		o := groups[k]
		if o == nil {
			o = &event.InventoryOwner{Process: &event.Process{PID: k.pid, TID: k.pid, Exe: en.FirstLoader.Exe}}
			if l, ok := inv.loaders.Peek(k.pid); ok && cidOf(l.c) == k.cid {
				o.Process, o.Container = l.p, l.c
			}
			o.Peers = inv.peersOf(k.pid, k.cid)
			groups[k] = o
			order = append(order, k)
		}
		o.Models = append(o.Models, en.ModelFile())
	}
	for _, k := range order {
		out.Unowned = append(out.Unowned, *groups[k])
	}
	slices.SortFunc(out.Unowned, func(x, y event.InventoryOwner) int { return cmp.Compare(x.Process.PID, y.Process.PID) })
	return out
}

// filesOf returns the files of entries that process pid of container cid
// owns or loaded, marking them owned.
func filesOf(entries []model.Entry, pid uint32, cid string, owned map[model.Key]bool) []event.ModelFile {
	var out []event.ModelFile
	for i := range entries {
		en := &entries[i]
		if en.UsedBy(pid, cid) {
			out = append(out, en.ModelFile())
			owned[en.Key] = true
		}
	}
	return out
}
