package detect

import (
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/detect/model"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// The misses and false alarms measured in issue 12, one test each: the
// events were all there, and the rules judged them wrong.

// fakeProc is a ProcView over fixed answers; it counts its calls.
type fakeProc struct {
	held map[uint32][]HeldFile
	// gone lists pids that exit after their first Holdings answer.
	gone  map[uint32]bool
	ns    map[uint32]map[uint32]uint32
	ids   map[uint32]ProcIdentity
	calls map[string]int
}

func newFakeProc() *fakeProc {
	return &fakeProc{held: map[uint32][]HeldFile{}, gone: map[uint32]bool{}, ns: map[uint32]map[uint32]uint32{},
		ids: map[uint32]ProcIdentity{}, calls: map[string]int{}}
}

func (f *fakeProc) Holdings(pid uint32) ([]HeldFile, error) {
	f.calls["holdings"]++
	h := f.held[pid]
	if f.gone[pid] {
		delete(f.held, pid)
	}
	return h, nil
}

func (f *fakeProc) NamespacePIDs(ns uint32) (map[uint32]uint32, error) {
	f.calls["ns"]++
	m := f.ns[ns]
	if f.gone[ns] {
		delete(f.ns, ns)
	}
	return m, nil
}

func (f *fakeProc) Identity(pid uint32) (ProcIdentity, error) {
	f.calls["identity"]++
	return f.ids[pid], nil
}

// newProcEngine is the harness engine with a ProcView.
func newProcEngine(t testing.TB, view ProcView, mod func(*config.DetectConfig)) *Engine {
	t.Helper()
	c := harnessConfig()
	if mod != nil {
		mod(&c)
	}
	reg, err := model.NewRegistry(&model.RegistryOptions{NoHash: true})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(c, &Options{HostNS: hostNS, Proc: view,
		AI: &AIOptions{Registry: reg, StaticAlloc: harnessAlloc, Node: "node-a"}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// heldLlama is the harness llama file as mopen names it, held by fd 7.
var heldLlama = HeldFile{Dev: 2049, Inode: 11, Size: 8 * mib, Path: llamaFile, FD: 7}

// send20MB is a connect and the byte reports of 20 MB to the exfil sink.
func send20MB(b pb, c *event.Container, d time.Duration, cookie uint64) []*event.Event {
	return []*event.Event{
		at(d, cookieConn(b, c, "10.200.2.2", 9000, event.ClassExternal, cookie)),
		at(d+time.Second, egressEv(b, c, "10.200.2.2", 9000, event.ClassExternal, cookie, 4*mib, false)),
		at(d+2*time.Second, egressEv(b, c, "10.200.2.2", 9000, event.ClassExternal, cookie, 20*mib, true)),
	}
}

// wantEXF001 fails unless EXF-001 fired critical with the given taint path
// and a model_files attribute that names path.
func wantEXF001(t *testing.T, out []*event.Event, via, path string) *event.Finding {
	t.Helper()
	f := rulesFired(out)["EXF-001"]
	if f == nil || f.Severity != event.SevCritical {
		t.Fatalf("EXF-001 not critical:\n%s", firedList(out))
	}
	if via != "" && f.Attrs["taint_via"] != via {
		t.Errorf("taint_via = %q; want %q (%s)", f.Attrs["taint_via"], via, f.Explanation)
	}
	if !strings.Contains(f.Attrs["model_files"], path) {
		t.Errorf("model_files = %q; want %s", f.Attrs["model_files"], path)
	}
	return f
}

func TestIssue12ExfilMisses(t *testing.T) {
	c := ctr("simctr-infer-i12")
	srv := proc(900, "/usr/bin/python3.11", "python3", "/srv/server.py").caps(0)

	t.Run("reader waits past exfil_window holding the file open", func(t *testing.T) {
		fp := newFakeProc()
		e := newProcEngine(t, fp, nil)
		py := proc(901, "/usr/bin/python3.11", "python3", "-c", "f = open(...); time.sleep(200); send(f.read())")
		fp.held[901] = []HeldFile{heldLlama}
		evs := append([]*event.Event{at(0, execEv(py, c)), at(time.Second, mopen(py, c, llamaFile, "", rd, 8*mib, 11))},
			send20MB(py, c, 200*time.Second, 1)...) // exfil_window is 120 s
		out := run(e, evs...)
		wantEXF001(t, out, viaHeld, llamaFile+" (held, fd 7)")
	})

	t.Run("reader's argv[0] claims to be a package tool", func(t *testing.T) {
		e := newProcEngine(t, nil, nil)
		py := proc(902, "/usr/bin/python3.11", "pip", "download", "x") // exec -a pip python3 -c ...
		evs := append([]*event.Event{at(0, execEv(py, c)), at(time.Second, mopen(py, c, llamaFile, "", rd, 8*mib, 11)),
			at(2*time.Second, exitEv(proc(950, "/bin/true"), c))}, send20MB(py, c, 3*time.Second, 2)...)
		out := run(e, evs...)
		wantEXF001(t, out, viaRead, llamaFile)
	})

	t.Run("binary copied to a runtime-sounding name inside the container", func(t *testing.T) {
		e := newProcEngine(t, nil, nil)
		for _, exe := range []string{"/tmp/runc", "/usr/local/bin/containerd-shim-runc-v2", "/usr/bin/nvidia-ctk"} {
			b := proc(903, exe, baseName(exe))
			evs := append([]*event.Event{at(0, execEv(b, c)), at(time.Second, mopen(b, c, llamaFile, "", rd, 8*mib, 11))},
				send20MB(b, c, 61*time.Second, 3)...)
			out := run(e, evs...)
			wantEXF001(t, out, "", llamaFile)
			e = newProcEngine(t, nil, nil)
		}
	})

	t.Run("child of the model server sends through an inherited fd", func(t *testing.T) {
		fp := newFakeProc()
		e := newProcEngine(t, fp, nil)
		child := proc(904, "/usr/bin/python3.11", "python3", "/srv/server.py").caps(0).anc(an(900, "/usr/bin/python3.11"))
		fp.held[904] = []HeldFile{heldLlama}
		fp.gone[904] = true
		evs := append([]*event.Event{
			at(0, execEv(srv, c)), at(time.Second, gpuStart(srv, c, 0, "GPU-0")),
			at(2*time.Second, mopen(srv.owner(), c, llamaFile, "", rd, 8*mib, 11)),
			at(3*time.Second, forkEv(child, c)),
		}, send20MB(child, c, 4*time.Second, 4)...)
		var out []*event.Event
		for _, ev := range evs {
			e.Process(ev, func(f *event.Event) { out = append(out, f) })
		}
		asked := fp.calls["holdings"]
		e.Flush(t0.Add(time.Hour), func(f *event.Event) { out = append(out, f) })
		f := wantEXF001(t, out, viaHeld, llamaFile+" (held, fd 7)")
		if f.Attrs["sender_pid"] != "904" {
			t.Errorf("sender_pid = %s; want the child 904", f.Attrs["sender_pid"])
		}
		// The owner's own sends are GPU-006's, not a taint: it was not asked.
		// The child was asked at its connect, before the bytes flowed: a
		// sender that exits as it closes is gone when the close report
		// comes.
		if asked != 1 {
			t.Errorf("Holdings called %d times before the flush; want once (the child)", asked)
		}
	})

	t.Run("an exec'd child of the server is asked at its exec, before it sends and exits", func(t *testing.T) {
		fp := newFakeProc()
		e := newProcEngine(t, fp, nil)
		child := proc(905, "/usr/bin/python3.11", "python3", "-c", "send(os.pread(3, ...))").caps(0).anc(an(900, "/usr/bin/python3.11"))
		fp.held[905] = []HeldFile{heldLlama}
		fp.gone[905] = true // only the first question finds it alive
		evs := append([]*event.Event{
			at(0, execEv(srv, c)), at(time.Second, gpuStart(srv, c, 0, "GPU-0")),
			at(2*time.Second, mopen(srv.owner(), c, llamaFile, "", rd, 8*mib, 11)),
			at(3*time.Second, execEv(child, c)),
		}, send20MB(child, c, 10*time.Second, 9)...)
		out := run(e, evs...)
		wantEXF001(t, out, viaHeld, llamaFile+" (held, fd 7)")
	})

	t.Run("a second container of the same pod does the sending", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			a, b *event.Container
		}{
			{"pod uid", podCtr("simctr-infer-i12a"), podCtr("simctr-infer-i12b")},
			{"shared network namespace", ctr("simctr-infer-i12a"), ctr("simctr-infer-i12b")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newProcEngine(t, nil, nil)
				if tc.a.PodUID != "" {
					tc.b.PodUID = tc.a.PodUID
				}
				cat := proc(905, "/usr/bin/cat", "cat", llamaFile)
				side := proc(906, "/usr/bin/python3.11", "python3", "-c", "relay")
				if tc.a.PodUID != "" { // pod known: separate network namespaces would not matter
					side = side.ns(event.Namespaces{Mnt: 4026532401, PID: 4026532402, Net: 4026532403})
				}
				evs := append([]*event.Event{
					at(0, execEv(cat, tc.a)), at(time.Second, mopen(cat, tc.a, llamaFile, "", rd, 8*mib, 11)),
					at(2*time.Second, exitEv(cat, tc.a)),
				}, send20MB(side, tc.b, 3*time.Second, 5)...)
				out := run(e, evs...)
				f := wantEXF001(t, out, viaPod, llamaFile)
				if f.Attrs["reader_container"] != tc.a.ID || f.Attrs["container"] != tc.b.ID {
					t.Errorf("reader container %s, sender container %s; want %s and %s", f.Attrs["reader_container"],
						f.Attrs["container"], tc.a.ID, tc.b.ID)
				}
			})
		}
	})

	t.Run("a reader that holds the file keeps its taint past exfil_window; one that let go does not", func(t *testing.T) {
		for _, holds := range []bool{true, false} {
			fp := newFakeProc()
			e := newProcEngine(t, fp, nil)
			py := proc(920, "/usr/bin/python3.11", "python3", "-c", "hold, wait, send")
			if holds {
				fp.held[920] = []HeldFile{heldLlama}
			}
			fp.gone[920] = true // it sends and exits at once: its connect finds nothing in /proc
			var out []*event.Event
			sink := func(f *event.Event) { out = append(out, f) }
			e.Process(at(0, mopen(py, c, llamaFile, "", rd, 8*mib, 11)), sink)
			for s := time.Duration(1); s <= 200; s++ { // the pipeline flushes every second
				e.Flush(t0.Add(s*time.Second), sink)
			}
			for _, ev := range send20MB(py, c, 201*time.Second, 30) {
				e.Process(ev, sink)
			}
			e.Process(at(204*time.Second, exitEv(py, c)), sink)
			e.Flush(t0.Add(time.Hour), sink)
			f := rulesFired(out)["EXF-001"]
			switch {
			case holds && (f == nil || f.Severity != event.SevCritical):
				t.Errorf("holding: EXF-001 = %v; want critical\n%s", f, firedList(out))
			case !holds && f != nil:
				t.Errorf("let go: EXF-001 fired: %s", f.Explanation)
			}
			if holds && e.Counters()["detect_taint_held_renewed"] == 0 {
				t.Errorf("no renewal counted")
			}
		}
	})

	t.Run("file opened before the sensor started", func(t *testing.T) {
		fp := newFakeProc()
		e := newProcEngine(t, fp, nil)
		// No open event: the weights were mapped before the sensor came up.
		old := proc(907, "/usr/bin/python3.11", "python3", "/srv/old.py")
		fp.held[907] = []HeldFile{{Dev: 2049, Inode: 31, Size: 8 * mib, Path: hfBlob, FD: -1},
			{Dev: 2049, Inode: 40, Size: 2 * mib, Path: "/usr/lib/x86_64-linux-gnu/libc.so.6", FD: -1}}
		out := run(e, send20MB(old, c, 0, 6)...)
		wantEXF001(t, out, viaHeld, hfBlob+" (mapped)")
	})

	t.Run("the weights leave in 16 connections of 512 KiB", func(t *testing.T) {
		e := newProcEngine(t, nil, nil)
		py := proc(909, "/usr/bin/python3.11", "python3", "-c", "chunks")
		evs := []*event.Event{at(0, mopen(py, c, llamaFile, "", rd, 8*mib, 11)),
			at(time.Millisecond, mopen(py, c, "/dev/shm/x", "", wr, -1, 99))} // staged: confirmed
		for i := uint64(0); i < 16; i++ {
			d := time.Second + time.Duration(i)*100*time.Millisecond
			evs = append(evs, at(d, cookieConn(py, c, "10.200.2.2", 9000, event.ClassExternal, 100+i)),
				at(d+50*time.Millisecond, egressEv(py, c, "10.200.2.2", 9000, event.ClassExternal, 100+i, 512<<10, true)))
		}
		out := run(e, evs...)
		f := wantEXF001(t, out, viaRead, llamaFile)
		if f.Attrs["bytes_to_destination"] == "" {
			t.Errorf("critical finding does not name the bytes over all connections: %v", f.Attrs)
		}
	})

	t.Run("a sender that holds nothing is not asked twice within holdingsEvery", func(t *testing.T) {
		fp := newFakeProc()
		e := newProcEngine(t, fp, nil)
		up := proc(908, "/usr/bin/python3.11", "python3", "upload.py")
		out := run(e, append(send20MB(up, c, 0, 7), send20MB(up, c, 3*time.Second, 8)...)...)
		if f := rulesFired(out)["EXF-001"]; f != nil {
			t.Errorf("EXF-001 without any weights: %s", f.Explanation)
		}
		if fp.calls["holdings"] != 1 {
			t.Errorf("Holdings called %d times; want 1", fp.calls["holdings"])
		}
		if got := e.Counters()["detect_taint_held_queries"]; got != 1 {
			t.Errorf("detect_taint_held_queries = %d; want 1", got)
		}
	})
}

func TestIssue12ExfilFalseAlarms(t *testing.T) {
	c := ctr("simctr-infer-i12")
	t.Run("entrypoint checksums its weights, later a 50-byte API call", func(t *testing.T) {
		e := newProcEngine(t, newFakeProc(), nil)
		sum := proc(910, "/usr/bin/sha256sum", "sha256sum", llamaFile)
		api := proc(911, "/usr/bin/curl", "curl", "-s", "-d", `{"ready":true}`, "https://api.example.com/v1/ready")
		out := run(e,
			at(0, execEv(sum, c)), at(time.Millisecond, mopen(sum, c, llamaFile, "", rd, 8*mib, 11)),
			at(time.Second, exitEv(sum, c)),
			at(30*time.Second, execEv(api, c)),
			at(31*time.Second, cookieConn(api, c, "10.200.2.2", 443, event.ClassExternal, 9)),
			at(32*time.Second, egressEv(api, c, "10.200.2.2", 443, event.ClassExternal, 9, 50, true)),
		)
		for _, f := range out {
			if f.Finding.Severity > event.SevLow {
				t.Errorf("%s %s: %s", f.Finding.Rule, f.Finding.Severity, f.Finding.Explanation)
			}
		}
	})
	t.Run("the checksum itself is sent (64 bytes)", func(t *testing.T) {
		e := newProcEngine(t, newFakeProc(), nil)
		sh := proc(912, "/usr/bin/python3.11", "python3", "verify_and_report.py")
		out := run(e,
			at(0, mopen(sh, c, llamaFile, "", rd, 8*mib, 11)),
			at(61*time.Second, cookieConn(sh, c, "10.200.2.2", 443, event.ClassExternal, 10)),
			at(62*time.Second, egressEv(sh, c, "10.200.2.2", 443, event.ClassExternal, 10, 64, true)),
		)
		f := rulesFired(out)["EXF-001"]
		if f == nil || f.Severity != event.SevLow {
			t.Fatalf("EXF-001 = %v; want one low finding (the correlation, without model-scale bytes):\n%s", f, firedList(out))
		}
	})
}

func TestIssue12GPU004AcrossPIDNamespace(t *testing.T) {
	// A process in the server's container (its own PID namespace, where the
	// server is pid 1) reads /proc/1/maps and /proc/1/mem of the GPU owner
	// and calls process_vm_readv on it.
	c := ctr("simctr-infer-i12")
	attack := func(srv, py pb) []*event.Event {
		return []*event.Event{
			at(0, execEv(srv, c)), at(time.Second, gpuStart(srv, c, 0, "GPU-0")),
			at(2*time.Second, openEv(py, c, "/proc/1/maps", "", rd, 3)),
			at(3*time.Second, openEv(py, c, "/proc/1/mem", "", rd, 4)),
			at(4*time.Second, sysEv(py, c, event.Syscall{Name: "process_vm_readv", Target: 1})),
		}
	}
	check := func(t *testing.T, out []*event.Event) {
		t.Helper()
		conds := map[string]bool{}
		for _, f := range findingsOf(out, "GPU-004") {
			if f.Attrs["target_pid"] != "900" {
				t.Errorf("target_pid = %s; want the host pid 900", f.Attrs["target_pid"])
			}
			conds[f.Attrs["condition"]] = true
		}
		for _, want := range []string{"maps", "maps_and_mem", "process_vm_readv"} {
			if !conds[want] {
				t.Errorf("no GPU-004 %s finding:\n%s", want, firedList(out))
			}
		}
	}
	t.Run("the server's namespace pid came with its events", func(t *testing.T) {
		srv := proc(900, "/usr/bin/python3.11", "python3", "/srv/server.py")
		srv.p.NSPID = 1
		py := proc(930, "/usr/bin/python3.11", "python3", "-c", "scrape")
		py.p.NSPID = 57
		check(t, run(newProcEngine(t, nil, nil), attack(srv, py)...))
	})
	t.Run("the kernel names the namespace's members", func(t *testing.T) {
		fp := newFakeProc()
		fp.ns[ctrNS.PID] = map[uint32]uint32{1: 900, 57: 930}
		srv := proc(900, "/usr/bin/python3.11", "python3", "/srv/server.py")
		py := proc(930, "/usr/bin/python3.11", "python3", "-c", "scrape")
		e := newProcEngine(t, fp, nil)
		check(t, run(e, attack(srv, py)...))
		// One scan answers the three questions (it stays fresh for a second).
		if fp.calls["ns"] > 3 || e.Counters()["detect_proc_calls"] == 0 {
			t.Errorf("%d namespace scans, %d calls counted", fp.calls["ns"], e.Counters()["detect_proc_calls"])
		}
	})
	t.Run("the owner's namespace pid is learned when NVML lists it", func(t *testing.T) {
		// The namespace scans find nothing once the owner is listed (its
		// neighbours, and the reader, are gone when the reader's events are
		// judged): the owner's pid was kept from the scan at its GPU event.
		fp := newFakeProc()
		fp.ns[ctrNS.PID] = map[uint32]uint32{1: 900}
		srv := proc(900, "/usr/bin/python3.11", "python3", "/srv/server.py")
		py := proc(930, "/usr/bin/python3.11", "python3", "-c", "scrape")
		e := newProcEngine(t, fp, nil)
		var out []*event.Event
		sink := func(f *event.Event) { out = append(out, f) }
		for i, ev := range attack(srv, py) {
			if i == 2 {
				delete(fp.ns, ctrNS.PID)
			}
			ev.Time = ev.Time.Add(time.Duration(i) * 2 * time.Second) // past each scan's freshness
			e.Process(ev, sink)
		}
		e.Flush(t0.Add(time.Hour), sink)
		check(t, out)
	})
	t.Run("without a way to map the pid, /proc/1 is not the host's pid 1", func(t *testing.T) {
		srv := proc(1, "/sbin/init").ns(hostNS)
		py := proc(930, "/usr/bin/python3.11", "python3", "-c", "scrape")
		out := run(newProcEngine(t, nil, nil), at(0, gpuStart(srv, nil, 0, "GPU-0")),
			at(time.Second, openEv(py, c, "/proc/1/mem", "", rd, 4)))
		if fs := findingsOf(out, "GPU-004"); len(fs) != 0 {
			t.Errorf("GPU-004 on an unmapped namespace pid: %s", fs[0].Explanation)
		}
	})
}

func TestIssue12EscapesSeenNotCalled(t *testing.T) {
	// A hostPID container (host PID namespace, own mount namespace and
	// cgroup) pokes a host process the engine never saw an event of: the
	// kernel places it (ProcView identity).
	fp := newFakeProc()
	fp.ids[1234] = ProcIdentity{CgroupID: 1, NS: hostNS}
	c := side("i12")
	py := proc(940, "/usr/bin/python3.11", "python3", "-c", "inject").ns(hostPIDNS)
	py.p.CgroupID = 7777
	out := run(newProcEngine(t, fp, nil),
		at(0, sysEv(py, c, event.Syscall{Name: "ptrace", Flags: 16, Target: 1234})),
		at(time.Second, sysEv(py, c, event.Syscall{Name: "ptrace", Flags: 5, Target: 1234})),
		at(2*time.Second, openEv(py, c, "/proc/1234/mem", "", rdw, 5)),
		at(3*time.Second, sysEv(py.cwd("/"), c, event.Syscall{Name: "chroot", Path: "proc/1234/root"})),
		at(4*time.Second, sysEv(py, c, event.Syscall{Name: "mknod", Path: "/tmp/d", Flags: sIFBLK | 0o600, Arg2: 259 << 8})),
		at(5*time.Second, sysEv(py, c, event.Syscall{Name: "mount", Path: "/tmp/d", Path2: "/mnt", Arg: "squashfs"})),
	)
	conds := map[string]event.Severity{}
	for _, f := range out {
		k := f.Finding.Rule + "/" + f.Finding.Attrs["condition"]
		conds[k] = sevMax(conds[k], f.Finding.Severity)
		if f.Finding.Rule == "ESC-011" && f.Finding.Attrs["target"] != "the host" {
			t.Errorf("ESC-011 target %q; want the host: %s", f.Finding.Attrs["target"], f.Finding.Explanation)
		}
	}
	for k, sev := range map[string]event.Severity{"ESC-011/ptrace": event.SevCritical,
		"ESC-011/proc_mem_write": event.SevCritical, "ESC-005/chroot": event.SevCritical,
		"ESC-007/mknod": event.SevCritical, "ESC-007/mount_syscall": event.SevCritical} {
		if conds[k] != sev {
			t.Errorf("%s: %s; want %s\n%s", k, conds[k], sev, firedList(out))
		}
	}
}

// side is a sidecar container of the harness.
func side(s string) *event.Container { return ctr("simctr-sidecar-" + s) }

func TestIssue12GPUFalseAlarms(t *testing.T) {
	t.Run("GPU-006: the GPU server posts 200 bytes to a webhook, no allowlist configured", func(t *testing.T) {
		noAllow := func(c *config.DetectConfig) {
			c.EgressAllowlist = map[string][]string{"*": {"127.0.0.0/8", "::1/128"}} // deploy/sensor.yaml
		}
		e := newProcEngine(t, nil, noAllow)
		c := ctr("simctr-infer-hook")
		srv := proc(960, "/usr/bin/python3.11", "python3", "-m", "vllm.entrypoints.openai.api_server")
		out := run(e, at(0, execEv(srv, c)), at(time.Second, gpuStart(srv, c, 0, "GPU-0")),
			at(2*time.Second, mopen(srv.owner(), c, llamaFile, "", rd, 8*mib, 11)),
			at(3*time.Second, cookieConn(srv.owner(), c, "10.200.2.2", 443, event.ClassExternal, 20)),
			at(4*time.Second, egressEv(srv.owner(), c, "10.200.2.2", 443, event.ClassExternal, 20, 200, true)))
		f := rulesFired(out)["GPU-006"]
		if f == nil || f.Severity != event.SevLow || f.Attrs["egress_allowlist"] != "none configured" {
			t.Fatalf("GPU-006 = %v; want low, no allowlist configured:\n%s", f, firedList(out))
		}
		// Model-scale bytes on the same kind of socket are high; the volume
		// threshold critical.
		e = newProcEngine(t, nil, noAllow)
		out = run(e, at(0, execEv(srv, c)), at(time.Second, gpuStart(srv, c, 0, "GPU-0")),
			at(2*time.Second, mopen(srv.owner(), c, llamaFile, "", rd, 8*mib, 11)),
			at(3*time.Second, cookieConn(srv.owner(), c, "10.200.2.2", 443, event.ClassExternal, 21)),
			at(4*time.Second, egressEv(srv.owner(), c, "10.200.2.2", 443, event.ClassExternal, 21, mib, false)),
			at(5*time.Second, egressEv(srv.owner(), c, "10.200.2.2", 443, event.ClassExternal, 21, 5*mib, true)))
		var stages []string
		for _, f := range findingsOf(out, "GPU-006") {
			if f.Attrs["aggregate"] == "" {
				stages = append(stages, f.Severity.String())
			}
		}
		if strings.Join(stages, ",") != "low,high,critical" {
			t.Errorf("GPU-006 severities %v; want low, high, critical:\n%s", stages, firedList(out))
		}
		// Where the operator listed the workload's destinations, a connect
		// elsewhere stays high.
		e = newProcEngine(t, nil, nil)
		out = run(e, at(0, execEv(srv, c)), at(time.Second, gpuStart(srv, c, 0, "GPU-0")),
			at(3*time.Second, cookieConn(srv.owner(), c, "10.200.2.2", 443, event.ClassExternal, 22)))
		if f := rulesFired(out)["GPU-006"]; f == nil || f.Severity != event.SevHigh {
			t.Errorf("GPU-006 with an allowlist = %v; want high", f)
		}
	})

	t.Run("GPU-005: a Hugging Face download lands in the blob store", func(t *testing.T) {
		e := newProcEngine(t, nil, nil)
		c := ctr("simctr-infer-hf")
		repo := "/tmp/h/hf/hub/models--acme--new-7b"
		blob := repo + "/blobs/" + strings.Repeat("ab", 32)
		cfgBlob := repo + "/blobs/" + strings.Repeat("cd", 20)
		dl := proc(970, "/usr/bin/python3.11", "python3", "-m", "huggingface_hub.commands.huggingface_cli", "download", "acme/new-7b")
		out := run(e,
			at(0, execEv(dl, c)),
			at(time.Millisecond, mopen(dl, c, blob+".incomplete", "", wr, -1, 80)),
			at(time.Second, sysEv(dl, c, event.Syscall{Name: "rename", Path: blob + ".incomplete", Path2: blob})),
			at(time.Second+time.Millisecond, sysEv(dl, c, event.Syscall{Name: "symlink", Path: "../../blobs/" + strings.Repeat("ab", 32),
				Path2: repo + "/snapshots/0123abcd/model.safetensors"})),
			at(2*time.Second, mopen(dl, c, cfgBlob+".incomplete", "", wr, -1, 81)),
			at(2*time.Second+time.Millisecond, sysEv(dl, c, event.Syscall{Name: "rename", Path: cfgBlob + ".incomplete", Path2: cfgBlob})),
			at(2*time.Second+2*time.Millisecond, sysEv(dl, c, event.Syscall{Name: "symlink", Path: "../../blobs/" + strings.Repeat("cd", 20),
				Path2: repo + "/snapshots/0123abcd/config.json"})),
			// A cross-device move copies instead of renaming.
			at(3*time.Second, mopen(dl, c, repo+"/blobs/"+strings.Repeat("ef", 32), "", wr, -1, 82)),
		)
		if fs := findingsOf(out, "GPU-005"); len(fs) != 0 {
			t.Errorf("GPU-005 on a download: %s", fs[0].Explanation)
		}
	})

	t.Run("GPU-005: the same moves over a served model are tampering", func(t *testing.T) {
		e := newProcEngine(t, nil, nil)
		c := ctr("simctr-infer-hf")
		srv := proc(971, "/usr/bin/python3.11", "python3", "/srv/server.py")
		x := proc(972, "/usr/bin/python3.11", "python3", "-c", "swap")
		out := run(e,
			at(0, execEv(srv, c)), at(time.Second, gpuStart(srv, c, 0, "GPU-0")),
			at(2*time.Second, mopen(srv.owner(), c, hfBlob, hfSnap, rd, 8*mib, 31)),
			at(3*time.Second, sysEv(x, c, event.Syscall{Name: "rename", Path: "/tmp/evil.tmp", Path2: hfBlob})),
			at(4*time.Second, sysEv(x, c, event.Syscall{Name: "symlink", Path: "../../blobs/" + strings.Repeat("0", 40), Path2: hfSnap})),
			at(5*time.Second, sysEv(x, c, event.Syscall{Name: "rename", Path: "/tmp/evil.pt", Path2: "/tmp/h/models/llama-3-8b-instruct/pytorch_model.bin"})),
		)
		conds := map[string]bool{}
		for _, f := range findingsOf(out, "GPU-005") {
			conds[f.Attrs["condition"]+" "+f.Attrs["path"]] = true
		}
		for _, want := range []string{"rename onto " + hfBlob, "symlink onto " + hfSnap,
			"rename onto /tmp/h/models/llama-3-8b-instruct/pytorch_model.bin"} {
			if !conds[want] {
				t.Errorf("no GPU-005 %q:\n%s", want, firedList(out))
			}
		}
	})
}
