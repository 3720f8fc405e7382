package event

import (
	"encoding/json"
	"net/netip"
	"regexp"
	"testing"
	"time"
)

// The --tail -o json contract (docs/output.md): every line has kind, time in
// RFC 3339 with nanoseconds, a process object and a container that is null on
// the host.
func TestJSONContract(t *testing.T) {
	ts := time.Date(2026, 11, 26, 3, 4, 5, 6, time.UTC)
	proc := &Process{PID: 10, PPID: 1, Comm: "curl", Exe: "/usr/bin/curl", Args: []string{"curl", "-T", "x"},
		Ancestors: []Ancestor{{PID: 1, Exe: "/sbin/init"}}}
	ctr := &Container{ID: "abc", Runtime: "containerd"}
	tests := []struct {
		name string
		ev   *Event
		want map[string]any // top-level fields that must have these values
		has  []string       // nested paths that must exist
	}{
		{"open", &Event{Kind: KindOpen, Time: ts, Process: proc, File: &File{Path: "/m/x.gguf", RawPath: "x.gguf", Flags: 0x241, Result: -13, Size: -1}},
			map[string]any{"kind": "open", "time": "2026-11-26T03:04:05.000000006Z", "container": nil},
			[]string{"file.path", "file.raw_path", "file.flags", "file.result", "process.ancestors"}},
		{"egress", &Event{Kind: KindEgress, Time: ts, Process: proc, Container: ctr,
			Net: &Net{Protocol: "tcp", DAddr: netip.MustParseAddr("10.0.0.1"), DPort: 443, Class: ClassExternal, BytesSent: 42}},
			map[string]any{"kind": "egress"},
			[]string{"net.protocol", "net.daddr", "net.dport", "net.class", "net.bytes_sent", "container.id", "container.pod"}},
		{"accept", &Event{Kind: KindAccept, Time: ts, Process: proc, Container: ctr,
			Net: &Net{Protocol: "tcp", SAddr: netip.MustParseAddr("10.0.0.5"), SPort: 8080, DAddr: netip.MustParseAddr("203.0.113.9"),
				DPort: 51000, Class: ClassExternal, Fd: 7, Origin: OriginAccept, Via: ViaIOUring}},
			map[string]any{"kind": "accept"},
			[]string{"net.protocol", "net.saddr", "net.sport", "net.daddr", "net.dport", "net.fd", "net.origin", "net.via"}},
		{"raw egress", &Event{Kind: KindEgress, Time: ts, Process: proc,
			Net: &Net{Protocol: "raw", IPProto: 255, DAddr: netip.MustParseAddr("198.51.100.1"), Class: ClassExternal,
				BytesSent: 1400, Origin: OriginDatagram, Fd: -1}},
			map[string]any{"kind": "egress"},
			[]string{"net.protocol", "net.ip_proto", "net.origin", "net.bytes_sent"}},
		{"finding", &Event{Kind: KindFinding, Time: ts, Process: proc, Container: ctr,
			Finding: &Finding{Rule: "EXF-001", Severity: SevCritical, Title: "t", MITRE: []string{"T1041"}, Explanation: "e",
				Evidence: []*Event{{Kind: KindOpen, Time: ts, Process: proc, File: &File{Path: "/m", Size: -1}}}}},
			map[string]any{"kind": "finding", "rule": "EXF-001", "severity": "critical"},
			[]string{"mitre", "evidence", "process.pid", "process.ppid", "process.comm", "process.exe", "process.args", "process.uid"}},
		{"gpu", &Event{Kind: KindGPU, Time: ts, Process: proc, GPU: &GPU{UUID: "GPU-1", Index: 0, PID: 10, UsedBytes: 1 << 30}},
			map[string]any{"kind": "gpu"}, []string{"gpu.uuid", "gpu.index", "gpu.pid", "gpu.used_bytes"}},
		{"status", &Event{Kind: KindStatus, Time: ts, Status: &Status{Ready: true}},
			map[string]any{"kind": "status", "ready": true}, nil},
	}
	rfc := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if !rfc.MatchString(m["time"].(string)) {
				t.Errorf("time %q is not RFC 3339 with nanoseconds", m["time"])
			}
			if _, ok := m["process"]; !ok {
				t.Errorf("no process key: %s", b)
			}
			for k, v := range tt.want {
				if got, ok := m[k]; !ok || (v != nil && got != v) || (v == nil && got != nil) {
					t.Errorf("%s = %v; want %v (%s)", k, got, v, b)
				}
			}
			for _, path := range tt.has {
				if !hasPath(m, path) {
					t.Errorf("missing %s in %s", path, b)
				}
			}
		})
	}
}

func hasPath(m map[string]any, path string) bool {
	var cur any = m
	for _, part := range regexp.MustCompile(`\.`).Split(path, -1) {
		mm, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = mm[part]; !ok {
			return false
		}
	}
	return true
}

func TestOpenFlagString(t *testing.T) {
	for flags, want := range map[uint32]string{
		0:       "O_RDONLY",
		0x241:   "O_WRONLY|O_CREAT|O_TRUNC",
		0x80002: "O_RDWR|O_CLOEXEC",
	} {
		if got := OpenFlagString(flags); got != want {
			t.Errorf("OpenFlagString(%#x) = %q; want %q", flags, got, want)
		}
	}
}
