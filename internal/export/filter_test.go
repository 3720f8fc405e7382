package export

import (
	"strings"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/event"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

func TestMatcher(t *testing.T) {
	hostExec := &event.Event{Kind: event.KindExec, Process: &event.Process{Comm: "bash", Exe: "/usr/bin/bash"}}
	ctrOpen := openEvent(ctrA, "/models/x.safetensors")
	ctrOpen.Container.Name = "vllm"
	ctrOpen.Container.Pod = "llm-0"
	ctrOpen.Container.Namespace = "inference"
	ctrOpen.Container.GPUs = []string{"GPU-aaaa"}
	critA := finding("ESC-001", event.SevCritical, ctrA)
	lowA := finding("EXE-003", event.SevLow, ctrA)
	gpuEv := &event.Event{Kind: event.KindGPU, Process: &event.Process{Comm: "python3"}, GPU: &event.GPU{UUID: "GPU-bbbb", MIG: "MIG-cccc"}}
	noExe := &event.Event{Kind: event.KindExec, Process: &event.Process{Comm: "kworker"}}
	lost := &event.Event{Kind: event.KindLost, Lost: &event.Lost{Source: "kernel_ringbuf", Count: 3}}

	tests := []struct {
		name    string
		fs      Filters
		match   []*event.Event
		nomatch []*event.Event
	}{
		{"empty matches all", Filters{}, []*event.Event{hostExec, ctrOpen, critA, gpuEv}, nil},
		{"kinds", Filters{Allow: []Filter{{Kinds: []event.Kind{event.KindOpen, event.KindGPU}}}}, []*event.Event{ctrOpen, gpuEv, lost}, []*event.Event{hostExec, critA}},
		{"severity floor excludes non-findings", Filters{Allow: []Filter{{MinSeverity: event.SevHigh}}}, []*event.Event{critA, lost}, []*event.Event{lowA, ctrOpen, hostExec}},
		{"lost passes a deny", Filters{Deny: []Filter{{}}}, []*event.Event{lost}, []*event.Event{hostExec, critA}},
		{"rule ids", Filters{Allow: []Filter{{Rules: []string{"EXE-003"}}}}, []*event.Event{lowA}, []*event.Event{critA, hostExec}},
		{"container id prefix", Filters{Allow: []Filter{{ContainerIDs: []string{ctrA[:12]}}}}, []*event.Event{ctrOpen, critA}, []*event.Event{hostExec, finding("X", event.SevHigh, ctrB)}},
		{"container regex on name", Filters{Allow: []Filter{{Container: "^vllm$"}}}, []*event.Event{ctrOpen}, []*event.Event{critA, hostExec}},
		{"pod and namespace", Filters{Allow: []Filter{{Pod: "^llm-", Namespace: "^inference$"}}}, []*event.Event{ctrOpen, critA}, []*event.Event{hostExec}},
		{"binary regex, comm fallback", Filters{Allow: []Filter{{Binary: "bash$|^kworker"}}}, []*event.Event{hostExec, noExe}, []*event.Event{ctrOpen}},
		{"gpu uuid via container or event or MIG", Filters{Allow: []Filter{{GPUs: []string{"GPU-aaaa", "MIG-cccc"}}}}, []*event.Event{ctrOpen, gpuEv}, []*event.Event{critA, hostExec}},
		{"host only", Filters{Allow: []Filter{{HostOnly: true}}}, []*event.Event{hostExec, gpuEv}, []*event.Event{ctrOpen, critA}},
		{"allow OR", Filters{Allow: []Filter{{HostOnly: true}, {Rules: []string{"ESC-001"}}}}, []*event.Event{hostExec, critA}, []*event.Event{ctrOpen, lowA}},
		{"allow minus deny", Filters{Allow: []Filter{{ContainerIDs: []string{ctrA}}}, Deny: []Filter{{Kinds: []event.Kind{event.KindOpen}}}}, []*event.Event{critA, lowA}, []*event.Event{ctrOpen, hostExec}},
		{"deny only", Filters{Deny: []Filter{{HostOnly: true}}}, []*event.Event{ctrOpen}, []*event.Event{hostExec}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Compile(tt.fs)
			if err != nil {
				t.Fatal(err)
			}
			for i, ev := range tt.match {
				if !m.Match(ev) {
					t.Errorf("match[%d] (%s) did not match", i, ev.Kind)
				}
			}
			for i, ev := range tt.nomatch {
				if m.Match(ev) {
					t.Errorf("nomatch[%d] (%s) matched", i, ev.Kind)
				}
			}
			// The wire round trip keeps the meaning.
			allow, deny := tt.fs.ToProto()
			fs2, err := FiltersFromProto(allow, deny)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := Compile(fs2)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range append(tt.match, tt.nomatch...) {
				if m.Match(ev) != m2.Match(ev) {
					t.Errorf("proto round trip changed the verdict on a %s event", ev.Kind)
				}
			}
		})
	}
	var nilM *Matcher
	if !nilM.Match(hostExec) || nilM.Match(nil) {
		t.Error("nil Matcher must match every non-nil event")
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		fs   Filters
		want string
	}{
		{Filters{Allow: []Filter{{Pod: "("}}}, "allow[0].pod_regex"},
		{Filters{Allow: []Filter{{}, {Namespace: "[z-a]"}}}, "allow[1].namespace_regex"},
		{Filters{Deny: []Filter{{Container: "a**"}}}, "deny[0].container_regex"},
		{Filters{Deny: []Filter{{Binary: strings.Repeat("a", 2000)}}}, "deny[0].binary_regex: regex is 2000 bytes"},
		{Filters{Allow: []Filter{{Kinds: []event.Kind{event.KindInvalid}}}}, "allow[0].kinds"},
		{Filters{Allow: []Filter{{Kinds: []event.Kind{200}}}}, "allow[0].kinds"},
		{Filters{Allow: []Filter{{MinSeverity: 9}}}, "allow[0].min_severity"},
		{Filters{Allow: []Filter{{Rules: []string{""}}}}, "allow[0].rule_ids"},
		{Filters{Allow: []Filter{{ContainerIDs: []string{"abc"}}}}, "allow[0].container_ids"},
		{Filters{Allow: []Filter{{GPUs: []string{""}}}}, "allow[0].gpu_uuids"},
	}
	for _, tt := range tests {
		_, err := Compile(tt.fs)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Compile(%+v) = %v; want an error containing %q", tt.fs, err, tt.want)
		}
	}
	if _, err := FiltersFromProto([]*sensorv1.Filter{{MinSeverity: 42}}, nil); err == nil || !strings.Contains(err.Error(), "allow[0].min_severity") {
		t.Errorf("FiltersFromProto bad severity: %v", err)
	}
}

func FuzzCompileFilter(f *testing.F) {
	f.Add("^llm-", "inference", "(", "/bin/.*sh$")
	f.Fuzz(func(t *testing.T, pod, ns, ctr, bin string) {
		m, err := Compile(Filters{Allow: []Filter{{Pod: pod, Namespace: ns, Container: ctr, Binary: bin}}})
		if err != nil {
			return
		}
		m.Match(finding("X", event.SevHigh, ctrA))
		m.Match(&event.Event{Kind: event.KindExec})
	})
}
