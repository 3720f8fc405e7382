package detect

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestStateBoundedUnder100kFiles: one container opens 100k distinct files —
// model files read by non-owners (taint sources), staged copies written by
// tainted processes (tainted paths), reads of those copies by new processes
// (propagation) and their sockets — and every table stays within its bound.
func TestStateBoundedUnder100kFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("100k events")
	}
	const size = 1024
	e := newAIEngine(t, nil, func(c *config.DetectConfig) { c.StateSize = size })
	a := e.ai
	c := ctr("simctr-infer-flood")
	dst := netip.MustParseAddr("10.200.2.2")
	sink := func(*event.Event) {}
	var mid uint64
	const files = 100_000
	ev := &event.Event{}
	for i := 0; i < files; i++ {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		pid := uint32(10_000 + i/4)
		p := &event.Process{PID: pid, TID: pid, ForkParent: 9_999, PPID: 9_999, Exe: "/usr/bin/python3"}
		f := &event.File{Size: 2 << 20, Inode: uint64(1_000_000 + i), Dev: 2049, Result: 3}
		switch i % 4 {
		case 0: // a new process reads a distinct model file
			*ev = event.Event{Kind: event.KindFork, Time: now, Process: p, Container: c}
			e.Process(ev, sink)
			f.Path = fmt.Sprintf("/tmp/h/models/m%d/model.safetensors", i)
		case 1: // it stages a copy
			f.Path, f.Flags, f.Size = fmt.Sprintf("/dev/shm/copy-%d", i), wr, -1
		case 2: // and reads a distinct non-model file
			f.Path = fmt.Sprintf("/srv/data/%d.txt", i)
			f.Size = 100
		case 3: // and sends
			*ev = event.Event{Kind: event.KindEgress, Time: now, Process: p, Container: c,
				Net: &event.Net{Protocol: "tcp", DAddr: dst, DPort: 443, Class: event.ClassExternal,
					Cookie: uint64(i), BytesSent: 1 << 20, Closed: true}}
			e.Process(ev, sink)
			*ev = event.Event{Kind: event.KindExit, Time: now, Process: p, Container: c, Exit: &event.Exit{}}
			e.Process(ev, sink)
			continue
		}
		f.RawPath = f.Path
		*ev = event.Event{Kind: event.KindOpen, Time: now, Process: p, Container: c, File: f}
		e.Process(ev, sink)
		if i == files/2 {
			mid = heapInUse()
		}
	}
	e.Flush(t0.Add(time.Hour), sink)
	end := heapInUse()
	for name, n := range map[string]int{"procs": a.procs.Len(), "kids": a.kids.Len(), "containers": a.ctrs.Len(), "paths": a.paths.Len(),
		"sockets": a.socks.Len(), "buckets": a.buckets.Len(), "state procs": e.state.procs.Len(),
		"written": e.state.written.Len()} {
		if n > size {
			t.Errorf("%s holds %d entries; bound %d", name, n, size)
		}
	}
	if n := a.reg.Len(); n > 4096 {
		t.Errorf("model registry holds %d files; bound 4096", n)
	}
	if len(a.deferred) > maxDeferred {
		t.Errorf("%d deferred triggers; bound %d", len(a.deferred), maxDeferred)
	}
	cs := e.Counters()
	if cs["detect_ai_state_evictions"] == 0 || cs["model_evicted"] == 0 {
		t.Errorf("no evictions counted: %v", cs)
	}
	// The second 50k files must not grow the heap beyond noise.
	if end > mid && end-mid > 4<<20 {
		t.Errorf("heap grew by %d bytes over the second 50k files (%d -> %d)", end-mid, mid, end)
	}
	t.Logf("tables: procs %d paths %d sockets %d registry %d; heap %d -> %d bytes; evictions %d, model evictions %d",
		a.procs.Len(), a.paths.Len(), a.socks.Len(), a.reg.Len(), mid, end, cs["detect_ai_state_evictions"], cs["model_evicted"])
}

// correlationMix returns a pool of enriched events that exercises the
// correlation state: per unit, a process forks and execs, a GPU owner loads
// weights, a non-owner reads weights (a taint source) in one unit of eight,
// stages a copy, a sibling reads it, sockets go to allowlisted and (one unit
// in 32) outside destinations with egress reports, and processes exit.
func correlationMix(units int) []*event.Event {
	var out []*event.Event
	ctrs := make([]*event.Container, 64)
	for i := range ctrs {
		ctrs[i] = ctr(fmt.Sprintf("simctr-infer-mix%d", i))
	}
	allowed := netip.MustParseAddr("10.200.1.1")
	outside := netip.MustParseAddr("10.200.2.2")
	for u := 0; u < units; u++ {
		c := ctrs[u%len(ctrs)]
		base := uint32(20_000 + u*4)
		owner := &event.Process{PID: base, TID: base, ForkParent: 1, Exe: "/usr/bin/python3.11",
			Args: []string{"python3", "-m", "vllm.entrypoints.openai.api_server"}}
		worker := &event.Process{PID: base + 1, TID: base + 1, ForkParent: 1, Exe: "/usr/bin/python3.11",
			Args: []string{"python3", "worker.py"}}
		sib := &event.Process{PID: base + 2, TID: base + 2, ForkParent: 1, Exe: "/usr/bin/curl",
			Args: []string{"curl", "http://10.200.1.1:8080/"}}
		weights := fmt.Sprintf("/tmp/h/models/m%d/model-%05d.safetensors", u%512, u%4096)
		open := func(p *event.Process, path string, flags uint32, size int64, ino uint64) *event.Event {
			return &event.Event{Kind: event.KindOpen, Process: p, Container: c,
				File: &event.File{Path: path, RawPath: path, Flags: flags, Result: 4, Size: size, Inode: ino, Dev: 2049}}
		}
		net := func(p *event.Process, k event.Kind, addr netip.Addr, cookie, bytes uint64, closed bool) *event.Event {
			cl := event.ClassNode
			if addr == outside {
				cl = event.ClassExternal
			}
			port := uint16(8080)
			if addr == outside {
				port = 9000
			}
			return &event.Event{Kind: k, Process: p, Container: c, Net: &event.Net{Protocol: "tcp", DAddr: addr,
				DPort: port, Class: cl, Cookie: cookie, BytesSent: bytes, Closed: closed, Fd: -1}}
		}
		out = append(out,
			&event.Event{Kind: event.KindFork, Process: owner, Container: c},
			&event.Event{Kind: event.KindExec, Process: owner, Container: c},
			&event.Event{Kind: event.KindGPU, Process: owner, Container: c,
				GPU: &event.GPU{Change: event.GPUStart, PID: owner.PID, UUID: "GPU-0", UsedBytes: 1 << 30}},
			open(owner, weights, rd, 8<<20, uint64(u%4096)+1),
			open(owner, "/usr/lib/x86_64-linux-gnu/libcuda.so.1", rd, 30<<20, 9),
			&event.Event{Kind: event.KindFork, Process: worker, Container: c},
			&event.Event{Kind: event.KindExec, Process: worker, Container: c},
			&event.Event{Kind: event.KindFork, Process: sib, Container: c},
			&event.Event{Kind: event.KindExec, Process: sib, Container: c},
		)
		if u%8 == 0 { // a non-owner reads weights and stages a copy; the sibling reads it
			stage := fmt.Sprintf("/tmp/stage-%d", u)
			out = append(out,
				open(worker, weights, rd, 8<<20, uint64(u%4096)+1),
				open(worker, stage, wr, -1, uint64(100_000+u)),
				open(sib, stage, rd, 8<<20, uint64(100_000+u)),
			)
		}
		dst := allowed
		if u%32 == 0 {
			dst = outside
		}
		cookie := uint64(u) + 1
		out = append(out,
			open(worker, "/etc/hosts", rd, 200, 7),
			net(sib, event.KindConnect, dst, cookie, 0, false),
			net(sib, event.KindEgress, dst, cookie, 1<<20, false),
			net(sib, event.KindEgress, dst, cookie, 3<<20, true),
			net(owner, event.KindEgress, allowed, cookie+1<<32, 4096, true),
			&event.Event{Kind: event.KindExit, Process: sib, Container: c, Exit: &event.Exit{}},
			&event.Event{Kind: event.KindExit, Process: worker, Container: c, Exit: &event.Exit{}},
		)
		if u%4 == 3 {
			out = append(out, &event.Event{Kind: event.KindExit, Process: owner, Container: c, Exit: &event.Exit{}})
		}
	}
	return out
}

// BenchmarkCorrelation runs the engine with the correlation state over a
// synthetic mix (see correlationMix); one op is one event. Run it with
// -benchtime=1000000x for the 1e6-event figure. It reports ns/event (wall
// and this thread's CPU), allocs/event, findings per 1e6 events, the heap held by the engine once
// built (state-MiB) and what the run added to it (held-MiB).
func BenchmarkCorrelation(b *testing.B) {
	pool := correlationMix(4096)
	before := heapInUse()
	e := newAIEngine(b, nil, nil)
	built := heapInUse()
	var findings int
	sink := func(*event.Event) { findings++ }
	// The machine is shared: report this thread's CPU time per event too.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	cpu0 := threadCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := pool[i%len(pool)]
		ev.Time = t0.Add(time.Duration(i) * time.Microsecond)
		e.Process(ev, sink)
	}
	b.StopTimer()
	b.ReportMetric(float64((threadCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/event")
	e.Flush(t0.Add(time.Duration(b.N)*time.Microsecond+time.Hour), sink)
	after := heapInUse()
	b.ReportMetric(float64(findings)*1e6/float64(b.N), "findings/1e6ev")
	b.ReportMetric(float64(built-before)/(1<<20), "state-MiB")
	held := 0.0
	if after > built {
		held = float64(after-built) / (1 << 20)
	}
	b.ReportMetric(held, "held-MiB")
	runtime.KeepAlive(pool)
	runtime.KeepAlive(e)
}
