package detect

import (
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// quietMix is a synthetic mix of enriched events that produce no finding:
// the everyday traffic of an inference node (server execs and probes,
// weight and log opens, allowed connects, egress reports, forks, exits,
// benign syscalls, GPU updates, host activity).
func quietMix() []*event.Event {
	c := ctr("simctr-infer-bench")
	c.Image = "vllm/vllm-openai:v0.9"
	host := func(b pb) pb { return b.ns(hostNS).caps(0) }
	srv := proc(200, "/usr/bin/python3.11", "python3", "-m", "vllm.entrypoints.openai.api_server").caps(0).owner().anc(an(199, "/usr/bin/containerd-shim-runc-v2"))
	worker := proc(201, "/usr/bin/python3.11", "python3", "-c", "from multiprocessing.spawn import spawn_main; spawn_main()").caps(0).anc(an(200, "/usr/bin/python3.11"))
	probe := proc(202, "/usr/bin/dash", "sh", "-c", "curl -fsS -m 2 http://127.0.0.1:8000/health > /dev/null").caps(0).anc(an(190, "/usr/bin/runc"))
	curl := proc(203, "/usr/bin/curl", "curl", "-fsS", "-m", "2", "http://127.0.0.1:8000/health").caps(0).anc(an(202, "/usr/bin/dash"))
	egress := connEv(srv, c, "10.200.1.1", 8080, event.ClassNode)
	egress.Kind = event.KindEgress
	egress.Net.BytesSent = 1 << 20
	return []*event.Event{
		execEv(srv, c),
		execEv(worker, c),
		execEv(probe, c),
		execEv(curl, c),
		openEv(srv, c, "/tmp/h/models/llama/model-00001-of-00002.safetensors", "", rd, 7),
		openEv(srv, c, "/tmp/h/logs/app/server.log", "", event.OWronly|event.OAppend|event.OCreat, 8),
		openEv(worker, c, "/etc/hosts", "", rd, 9),
		openEv(worker, c, "net:[4026532103]", "/proc/self/ns/net", rd, 10),
		openEv(curl, c, "/dev/nvidia0", "", rdw, 11),
		connEv(curl, c, "127.0.0.1", 8000, event.ClassLoopback),
		unixEv(worker, c, "/run/nscd/socket"),
		egress,
		{Kind: event.KindFork, Process: worker.p, Container: c},
		sysEv(probe, c, event.Syscall{Name: "dup", Fd: 4, Fd2: 1}),
		sysEv(worker, c, event.Syscall{Name: "mount", Path: "tmpfs", Path2: "/run", Arg: "tmpfs"}),
		{Kind: event.KindGPU, Process: srv.p, Container: c, GPU: &event.GPU{Change: event.GPUUpdate, PID: 200, UsedBytes: 2 << 30}},
		execEv(host(proc(300, "/usr/bin/ls", "ls", "-l")), nil),
		openEv(host(proc(300, "/usr/bin/ls")), nil, "/etc/passwd", "", rd, 3),
		openEv(host(proc(301, "/usr/bin/bash")), nil, "/proc/sys/kernel/core_pattern", "", rd, 3),
		{Kind: event.KindExit, Process: curl.p, Container: c, Exit: &event.Exit{}},
	}
}

func TestQuietMixIsQuietAndAllocationFree(t *testing.T) {
	e := newTestEngine(t, nil)
	mix := quietMix()
	for _, ev := range mix {
		ev.Time = t0
	}
	var n int
	sink := func(f *event.Event) {
		n++
		t.Errorf("unexpected finding: %s %s", f.Finding.Rule, f.Finding.Explanation)
	}
	for _, ev := range mix { // warm the state tables
		e.Process(ev, sink)
	}
	allocs := testing.AllocsPerRun(200, func() {
		for _, ev := range mix {
			e.Process(ev, sink)
		}
	})
	if n != 0 {
		t.Fatalf("%d findings from the quiet mix", n)
	}
	if allocs != 0 {
		t.Fatalf("%.1f allocations per pass over %d quiet events; want 0", allocs, len(mix))
	}
}

// BenchmarkProcess measures the engine on the quiet mix: ns/event and
// allocs/event without findings (target: >= 1M events/s/core, 0 allocs).
func BenchmarkProcess(b *testing.B) {
	e := newTestEngine(b, nil)
	mix := quietMix()
	for _, ev := range mix {
		ev.Time = t0
		e.Process(ev, nil)
	}
	// The machine is shared: besides wall time, report the CPU time of
	// this thread per event, which other load does not inflate.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	cpu0 := threadCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Process(mix[i%len(mix)], nil)
	}
	b.StopTimer()
	cpu := threadCPU() - cpu0
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	if f := e.Counters()["detect_findings"]; f != 0 {
		b.Fatalf("%d findings from the quiet mix", f)
	}
}

// threadCPU returns the CPU time the calling OS thread has used.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProcessByKind splits the quiet mix by event kind, to show where
// the time goes (exec events meet the most rules).
func BenchmarkProcessByKind(b *testing.B) {
	mix := quietMix()
	for _, k := range []event.Kind{event.KindExec, event.KindOpen, event.KindConnect, event.KindEgress, event.KindSyscall} {
		var sub []*event.Event
		for _, ev := range mix {
			if ev.Kind == k {
				sub = append(sub, ev)
			}
		}
		b.Run(k.String(), func(b *testing.B) {
			e := newTestEngine(b, nil)
			for _, ev := range mix {
				ev.Time = t0
				e.Process(ev, nil)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			cpu0 := threadCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.Process(sub[i%len(sub)], nil)
			}
			b.StopTimer()
			b.ReportMetric(float64((threadCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/event")
			if f := e.Counters()["detect_findings"]; f != 0 {
				b.Fatalf("%d findings", f)
			}
		})
	}
}

// BenchmarkProcessFinding measures the finding path: a burst folded into
// one aggregate (allocation is allowed here).
func BenchmarkProcessFinding(b *testing.B) {
	e := newTestEngine(b, nil)
	ev := openEv(proc(11, "/bin/sh"), ctr("simctr-infer-a2"), "/proc/sys/kernel/core_pattern", "", wr, 1)
	ev.Time = t0
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e.Process(ev, func(*event.Event) {})
	}
}
