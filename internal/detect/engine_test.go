package detect

import (
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// requiredRules is the rule list of issue 5; each must be registered with
// complete metadata.
var requiredRules = []string{
	"ESC-001", "ESC-002", "ESC-003", "ESC-004", "ESC-005", "ESC-006", "ESC-007", "ESC-008", "ESC-009", "ESC-010",
	"NVT-001", "NVT-002", "NVT-003", "NVT-004",
	"EXE-001", "EXE-002", "EXE-003", "EXE-004",
	"CRED-001", "CRED-002", "CRED-003",
	"C2-001",
}

func TestCatalogMetadata(t *testing.T) {
	e := newTestEngine(t, nil)
	byID := map[string]Meta{}
	for _, m := range e.Catalog() {
		byID[m.ID] = m
	}
	for _, id := range requiredRules {
		m, ok := byID[id]
		if !ok {
			t.Errorf("%s is not registered", id)
			continue
		}
		if !config.IsRuleID(m.ID) {
			t.Errorf("%s: id does not look like a rule id", id)
		}
		if m.Title == "" || len(m.MITRE) == 0 || m.Description == "" || len(m.Kinds) == 0 {
			t.Errorf("%s: missing title, MITRE ids, description or kinds: %+v", id, m)
		}
		if m.Severity < event.SevInfo || m.Severity > event.SevCritical {
			t.Errorf("%s: severity %d is not a severity", id, m.Severity)
		}
		for _, mid := range m.MITRE {
			if !strings.HasPrefix(mid, "T1") && !strings.HasPrefix(mid, "AML.T") {
				t.Errorf("%s: %q is neither an ATT&CK nor an ATLAS id", id, mid)
			}
		}
	}
}

func TestAggregation(t *testing.T) {
	e := newTestEngine(t, func(c *config.DetectConfig) { c.AggregateIdle = c.AggregateWindow })
	c := ctr("simctr-infer-agg")
	var out []*event.Event
	sink := func(f *event.Event) { out = append(out, f) }
	for i := 0; i < 5; i++ {
		ev := openEv(proc(uint32(10+i), "/bin/sh"), c, "/proc/sys/kernel/core_pattern", "", wr, 1)
		ev.Time = t0.Add(time.Duration(i) * time.Second)
		e.Process(ev, sink)
	}
	if len(out) != 1 || out[0].Finding.Count != 1 {
		t.Fatalf("burst gave %d findings before the window closed; want 1 with count 1:\n%s", len(out), firedList(out))
	}
	// A different key (another knob) is its own finding.
	ev := openEv(proc(20, "/bin/sh"), c, "/proc/sysrq-trigger", "", wr, 1)
	ev.Time = t0.Add(6 * time.Second)
	e.Process(ev, sink)
	if len(out) != 2 {
		t.Fatalf("another key was folded in: %d findings", len(out))
	}
	e.Flush(t0.Add(2*time.Minute), sink)
	if len(out) != 3 {
		t.Fatalf("after flush %d findings; want 3 (two firsts and one follow-up):\n%s", len(out), firedList(out))
	}
	fu := out[2].Finding
	if fu.Rule != "ESC-002" || fu.Count != 4 || fu.Attrs["aggregate"] != "follow-up" || len(fu.Evidence) != 4 {
		t.Fatalf("follow-up = %+v; want ESC-002 count 4 with 4 evidence events", fu)
	}
	if !strings.Contains(fu.Explanation, "4 occurrence(s) since the first") {
		t.Errorf("follow-up explanation %q does not give the count", fu.Explanation)
	}
	cs := e.Counters()
	if cs["detect_findings"] != 2 || cs["detect_followups"] != 1 || cs["detect_suppressed"] != 4 {
		t.Errorf("counters = %v", cs)
	}
	// After the window a repeat is a new finding.
	ev = openEv(proc(30, "/bin/sh"), c, "/proc/sys/kernel/core_pattern", "", wr, 1)
	ev.Time = t0.Add(3 * time.Minute)
	e.Process(ev, sink)
	if len(out) != 4 || out[3].Finding.Count != 1 {
		t.Fatalf("repeat after the window: %d findings", len(out))
	}
}

func TestAggregationIdleFollowUp(t *testing.T) {
	e := newTestEngine(t, nil) // aggregate_idle 2s, aggregate_window 60s
	c := ctr("simctr-infer-agg")
	var out []*event.Event
	sink := func(f *event.Event) { out = append(out, f) }
	at := func(d time.Duration) {
		ev := openEv(proc(10, "/bin/sh"), c, "/proc/sys/kernel/core_pattern", "", wr, 1)
		ev.Time = t0.Add(d)
		e.Process(ev, sink)
	}
	at(0)
	at(100 * time.Millisecond)
	at(200 * time.Millisecond)
	e.Flush(t0.Add(time.Second), sink)
	if len(out) != 1 {
		t.Fatalf("follow-up before the burst paused: %d findings", len(out))
	}
	e.Flush(t0.Add(3*time.Second), sink)
	if len(out) != 2 || out[1].Finding.Count != 2 || len(out[1].Finding.Evidence) != 2 {
		t.Fatalf("no prompt follow-up after the pause:\n%s", firedList(out))
	}
	// The window is still open: a later repeat is counted, not re-emitted.
	at(10 * time.Second)
	if len(out) != 2 {
		t.Fatalf("repeat inside the window emitted a new finding:\n%s", firedList(out))
	}
	e.Flush(t0.Add(13*time.Second), sink)
	if len(out) != 3 || out[2].Finding.Count != 1 || len(out[2].Finding.Evidence) != 1 {
		t.Fatalf("second follow-up = %+v", out[len(out)-1].Finding)
	}
	e.Flush(t0.Add(2*time.Minute), sink)
	if len(out) != 3 {
		t.Fatalf("closing the window re-reported counted repeats:\n%s", firedList(out))
	}
}

func TestEscalationIsNotFolded(t *testing.T) {
	e := newTestEngine(t, nil)
	c := ctr("simctr-sidecar-a4")
	var out []*event.Event
	sink := func(f *event.Event) { out = append(out, f) }
	e.Process(openEv(proc(31, "/bin/cat").ns(hostPIDNS), c, "/etc/hostname", "/proc/1/root/etc/hostname", rd, 3), sink)
	e.Process(openEv(proc(32, "/bin/cat").ns(hostPIDNS), c, "/etc/hostname", "/proc/1/root/etc/hostname", rd, 3), sink)
	e.Process(openEv(proc(33, "/usr/bin/head").ns(hostPIDNS), c, "/etc/shadow", "/proc/1/root/etc/shadow", rd, 3), sink)
	if len(out) != 3 || out[2].Finding.Severity != event.SevCritical || out[1].Finding.Attrs["aggregate"] != "follow-up" {
		t.Fatalf("escalation folded or lost; findings:\n%s", firedList(out))
	}
}

func TestAggregationFlushOnLaterEvent(t *testing.T) {
	e := newTestEngine(t, nil)
	c := ctr("simctr-infer-x")
	var out []*event.Event
	sink := func(f *event.Event) { out = append(out, f) }
	for i := 0; i < 3; i++ {
		ev := openEv(proc(10, "/bin/sh"), c, "/proc/sys/kernel/core_pattern", "", wr, 1)
		ev.Time = t0.Add(time.Duration(i) * time.Second)
		e.Process(ev, sink)
	}
	// A later unrelated event past the window closes it without Flush.
	ev := execEv(proc(11, "/bin/true").caps(0), ctr("simctr-other"))
	ev.Time = t0.Add(90 * time.Second)
	e.Process(ev, sink)
	if len(out) != 2 || out[1].Finding.Count != 2 {
		t.Fatalf("got %d findings; want first + follow-up with count 2:\n%s", len(out), firedList(out))
	}
}

func TestAggregatesBounded(t *testing.T) {
	e := newTestEngine(t, func(c *config.DetectConfig) { c.MaxAggregates = 4 })
	var out []*event.Event
	sink := func(f *event.Event) { out = append(out, f) }
	for i := 0; i < 20; i++ {
		c := ctr("simctr-infer-" + itoa(uint64(i)))
		for j := 0; j < 2; j++ {
			e.Process(openEv(proc(10, "/bin/sh"), c, "/proc/sys/kernel/core_pattern", "", wr, 1), sink)
		}
	}
	// The first container's repeat was folded in, then its window was
	// evicted: that emitted its follow-up, so nothing is lost.
	if got := e.Counters()["detect_aggregates_open"]; got > 4 {
		t.Fatalf("%d aggregates open; want <= 4", got)
	}
	firsts, follow := 0, 0
	for _, f := range out {
		if f.Finding.Attrs["aggregate"] == "follow-up" {
			follow++
		} else {
			firsts++
		}
	}
	if firsts != 20 || follow != 16 {
		t.Fatalf("firsts=%d follow-ups=%d; want 20 and 16 (the 4 still open are not flushed)", firsts, follow)
	}
}

func TestConfigSwitches(t *testing.T) {
	off := false
	sample := func() []*event.Event {
		c := ctr("simctr-infer-a2")
		c.Image = "registry.local/agent:1"
		return evs(openEv(proc(11, "/bin/sh"), c, "/proc/sys/kernel/core_pattern", "", wr, 1))
	}
	for _, tc := range []struct {
		name     string
		mod      func(*config.DetectConfig)
		fire     bool
		sev      event.Severity
		counter  string
		wantSeen uint64
	}{
		{"default", nil, true, event.SevCritical, "", 0},
		{"disabled", func(c *config.DetectConfig) { c.Rules = map[string]config.RuleConfig{"ESC-002": {Enabled: &off}} }, false, 0, "", 0},
		{"severity override", func(c *config.DetectConfig) {
			c.Rules = map[string]config.RuleConfig{"ESC-002": {Severity: "low"}}
		}, true, event.SevLow, "", 0},
		{"allow_exe", func(c *config.DetectConfig) {
			c.Rules = map[string]config.RuleConfig{"ESC-002": {AllowExe: []string{"^/bin/sh$"}}}
		}, false, 0, "detect_rule_allowlisted_ESC-002", 1},
		{"allow_cgroup", func(c *config.DetectConfig) {
			c.Rules = map[string]config.RuleConfig{"ESC-002": {AllowCgroup: []string{"^/simctr-infer-"}}}
		}, false, 0, "detect_allowlisted", 1},
		{"image allowlist for the rule", func(c *config.DetectConfig) {
			c.ContainerImageAllowlist = map[string][]string{"ESC-002": {"^registry.local/agent:"}}
		}, false, 0, "detect_allowlisted", 1},
		{"image allowlist for another rule", func(c *config.DetectConfig) {
			c.ContainerImageAllowlist = map[string][]string{"ESC-001": {"^registry.local/agent:"}}
		}, true, event.SevCritical, "", 0},
		{"image allowlist for all rules", func(c *config.DetectConfig) {
			c.ContainerImageAllowlist = map[string][]string{"*": {"agent"}}
		}, false, 0, "detect_allowlisted", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEngine(t, tc.mod)
			f, fired := rulesFired(run(e, sample()...))["ESC-002"]
			if fired != tc.fire {
				t.Fatalf("fired = %v; want %v", fired, tc.fire)
			}
			if fired && f.Severity != tc.sev {
				t.Errorf("severity = %s; want %s", f.Severity, tc.sev)
			}
			if tc.counter != "" && e.Counters()[tc.counter] != tc.wantSeen {
				t.Errorf("counter %s = %d; want %d", tc.counter, e.Counters()[tc.counter], tc.wantSeen)
			}
		})
	}
}

func TestSeverityOverridePinsEscalation(t *testing.T) {
	e := newTestEngine(t, func(c *config.DetectConfig) {
		c.Rules = map[string]config.RuleConfig{"ESC-005": {Severity: "medium"}}
	})
	out := run(e, openEv(proc(31, "/usr/bin/head").ns(hostPIDNS), ctr("simctr-sidecar-a4"), "/etc/shadow", "/proc/1/root/etc/shadow", rd, 3))
	if f := rulesFired(out)["ESC-005"]; f == nil || f.Severity != event.SevMedium {
		t.Fatalf("ESC-005 = %+v; want medium (config pins the escalation)", f)
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*config.DetectConfig)
		want string
	}{
		{"unknown rule", func(c *config.DetectConfig) { c.Rules = map[string]config.RuleConfig{"ESC-999": {}} }, "rules.ESC-999: unknown rule id"},
		{"unknown rule in image allowlist", func(c *config.DetectConfig) {
			c.ContainerImageAllowlist = map[string][]string{"XYZ-001": {"x"}}
		}, "container_image_allowlist.XYZ-001"},
		{"bad severity", func(c *config.DetectConfig) { c.Rules = map[string]config.RuleConfig{"ESC-001": {Severity: "urgent"}} }, "rules.ESC-001.severity"},
		{"bad regex", func(c *config.DetectConfig) { c.GPUChildAllowlist = []string{"("} }, "gpu_child_allowlist[0]"},
		{"bad destination", func(c *config.DetectConfig) { c.EgressAllowlist = map[string][]string{"*": {"nope"}} }, "egress_allowlist.*[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := harnessConfig()
			tc.mod(&c)
			_, err := New(c, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v; want one naming %q", err, tc.want)
			}
			if err := CheckConfig(c); err == nil {
				t.Fatalf("CheckConfig accepted it")
			}
		})
	}
}

func TestDuplicateRuleRejected(t *testing.T) {
	_, err := New(harnessConfig(), &Options{ExtraRules: []func(*Settings) Rule{newESC001}})
	if err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("New with a duplicate rule: %v", err)
	}
}

func TestEvidenceIsACopy(t *testing.T) {
	e := newTestEngine(t, nil)
	ev := openEv(proc(11, "/bin/sh"), ctr("simctr-infer-a2"), "/proc/sys/kernel/core_pattern", "", wr, 1)
	var out []*event.Event
	e.Process(ev, func(f *event.Event) { out = append(out, f) })
	ev.File.Path = "/reused/by/the/pipeline"
	if len(out) != 1 || out[0].Finding.Evidence[0].File.Path != "/proc/sys/kernel/core_pattern" {
		t.Fatalf("evidence changed with the reused event: %+v", out)
	}
	if out[0].Kind != event.KindFinding || out[0].Container == nil || out[0].Process == nil {
		t.Fatalf("finding event lacks kind, process or container: %+v", out[0])
	}
}

func TestFindingsWithoutSinkAreCounted(t *testing.T) {
	e := newTestEngine(t, nil)
	e.Process(openEv(proc(11, "/bin/sh"), ctr("simctr-infer-a2"), "/proc/sys/kernel/core_pattern", "", wr, 1), nil)
	if got := e.Counters()["detect_findings_without_out"]; got != 1 {
		t.Fatalf("findings without a sink = %d; want 1", got)
	}
}

func TestStateBounded(t *testing.T) {
	e := newTestEngine(t, func(c *config.DetectConfig) { c.StateSize = 64 })
	for i := 0; i < 1000; i++ {
		c := ctr("simctr-x-" + itoa(uint64(i)))
		e.Process(execEv(proc(uint32(1000+i), "/bin/true").caps(0), c), nil)
		e.Process(openEv(proc(uint32(1000+i), "/bin/true").caps(0), c, "/tmp/f"+itoa(uint64(i)), "", wr, 3), nil)
	}
	s := e.State()
	if s.containers.Len() > 64 || s.procs.Len() > 64 || s.written.Len() > 64 {
		t.Fatalf("state grew past its bound: containers=%d procs=%d written=%d", s.containers.Len(), s.procs.Len(), s.written.Len())
	}
	if e.Counters()["detect_state_evictions"] == 0 {
		t.Fatalf("evictions not counted")
	}
}

func TestExitForgetsProcess(t *testing.T) {
	e := newTestEngine(t, nil)
	c := ctr("simctr-infer-x")
	e.Process(gpuEv(77, c), nil)
	if !e.State().IsGPUOwner(77) {
		t.Fatal("gpu start did not register the owner")
	}
	e.Process(&event.Event{Kind: event.KindExit, Process: &event.Process{PID: 77, TID: 77}, Exit: &event.Exit{}}, nil)
	if e.State().IsGPUOwner(77) {
		t.Fatal("exit did not drop the owner")
	}
	if !e.State().IsGPUContainer(c) {
		t.Fatal("container that had an owner is not a GPU container")
	}
}

func TestLRU(t *testing.T) {
	var evicted []int
	l := NewLRU[int, string](3, func(k int, _ string) { evicted = append(evicted, k) })
	l.Put(1, "a")
	l.Put(2, "b")
	l.Put(3, "c")
	l.Get(1) // 2 is now the oldest
	l.Put(4, "d")
	if _, ok := l.Peek(2); ok || len(evicted) != 1 || evicted[0] != 2 {
		t.Fatalf("evicted %v; want [2]", evicted)
	}
	l.Delete(3)
	l.Put(5, "e")
	if l.Len() != 3 || len(evicted) != 1 {
		t.Fatalf("len %d evicted %v after delete+put", l.Len(), evicted)
	}
	var order []int
	l.Range(func(k int, _ string) bool { order = append(order, k); return true })
	if want := []int{1, 4, 5}; len(order) != 3 || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Fatalf("order oldest first = %v; want %v", order, want)
	}
	if k, _, _ := l.Oldest(); k != 1 {
		t.Fatalf("oldest = %d; want 1", k)
	}
}
