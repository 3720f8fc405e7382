package export

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export/ocsfschema"
)

// ocsfMatrix is live input for the schema validation: every event kind the
// encoder maps, every syscall name of the contract with success and
// failure, the variants each mapping branches on, findings of several rule
// families, container and host, IPv4, IPv6 and unix, and degenerate
// processes.
func ocsfMatrix() map[string]*event.Event {
	p, c := fixtureProcess(), fixtureContainer()
	bare := &event.Process{PID: 77, Comm: "kworker/0:1"} // an unknown process: pid and comm only
	thread := fixtureProcess()
	thread.TID = 31338
	kthread := fixtureProcess()
	kthread.Ancestors = []event.Ancestor{{PID: 2, Comm: "kthreadd"}}
	long := fixtureProcess()
	for i := range 40 {
		long.Ancestors = append(long.Ancestors, event.Ancestor{PID: uint32(5000 + i), Exe: fmt.Sprintf("/bin/a%d", i)})
	}
	odd := fixtureProcess()
	odd.Comm, odd.Exe = "x\x01y", "/tmp/\xff\xfe bad\"name\n"
	odd.Args = []string{"python3", "-c", "print('<&>')\n\tx\u2028"}
	bareCtr := &event.Container{ID: "", Runtime: event.Unknown} // the layout matched, the id did not
	mm := map[string]*event.Event{}
	add := func(name string, ev *event.Event) {
		ev.Time = fixedTime
		if ev.Seq == 0 {
			ev.Seq = uint64(len(mm) + 100)
		}
		mm[name] = ev
	}
	for _, ctr := range []struct {
		name string
		c    *event.Container
	}{{"host", nil}, {"ctr", c}, {"bare_ctr", bareCtr}} {
		x := ctr.name
		add(x+"/exec", &event.Event{Kind: event.KindExec, Process: p, Container: ctr.c})
		add(x+"/fork", &event.Event{Kind: event.KindFork, Process: p, Container: ctr.c})
		add(x+"/exit", &event.Event{Kind: event.KindExit, Process: p, Container: ctr.c, Exit: &event.Exit{Code: 1}})
		add(x+"/exit_signal", &event.Event{Kind: event.KindExit, Process: p, Container: ctr.c, Exit: &event.Exit{Code: 0, Signal: 9}})
		add(x+"/open", &event.Event{Kind: event.KindOpen, Process: p, Container: ctr.c,
			File: &event.File{Path: "/models/m.safetensors", RawPath: "m.safetensors", PathSource: event.PathKernel,
				Flags: event.ORdonly, Result: 5, Size: 1 << 34, Inode: 1234, Dev: 2049, Syscall: "openat"}})
		add(x+"/connect", &event.Event{Kind: event.KindConnect, Process: p, Container: ctr.c,
			Net: &event.Net{Protocol: "tcp", SAddr: netip.MustParseAddr("10.244.1.7"), SPort: 51234,
				DAddr: netip.MustParseAddr("10.9.9.9"), DPort: 443, Class: event.ClassExternal, Cookie: 9, Fd: 4}})
		add(x+"/finding", &event.Event{Kind: event.KindFinding, Process: p, Container: ctr.c,
			Finding: &event.Finding{Rule: "EXE-003", Title: "Interactive shell", Severity: event.SevMedium, MITRE: []string{"T1059.004"}}})
	}
	// Process shapes.
	add("exec/thread", &event.Event{Kind: event.KindExec, Process: thread})
	add("exec/kthread_parent", &event.Event{Kind: event.KindExec, Process: kthread})
	add("exec/deep_lineage", &event.Event{Kind: event.KindExec, Process: long, Container: c})
	add("exec/unknown_process", &event.Event{Kind: event.KindExec, Process: bare})
	add("exec/odd_strings", &event.Event{Kind: event.KindExec, Process: odd, Container: c})
	add("exec/static_pod", &event.Event{Kind: event.KindExec, Process: p, Container: &event.Container{ID: ctrA, Runtime: "containerd",
		PodUID: "8a4f2e0c9d1b7a6f5e4d3c2b1a0f9e8d", Pod: "kube-proxy-x", Namespace: "kube-system"}})
	add("exit/no_payload", &event.Event{Kind: event.KindExit, Process: bare})
	add("open/no_process", &event.Event{Kind: event.KindOpen,
		File: &event.File{Path: "/etc/shadow", RawPath: "/etc/shadow", Flags: event.ORdonly, Result: 3, Size: -1}})
	add("open/unseq", &event.Event{Kind: event.KindOpen, Seq: 0, Process: p,
		File: &event.File{Path: "/etc/hosts", Flags: event.ORdonly, Result: 3, Size: 10}})
	mm["open/unseq"].Seq = 0
	// Opens: failures, directories, writes, unresolved paths.
	for name, f := range map[string]*event.File{
		"eacces":     {Path: "/proc/sys/kernel/core_pattern", RawPath: "/proc/sys/kernel/core_pattern", Flags: event.OWronly | event.OTrunc, Result: -13, Size: -1},
		"enoent":     {Path: "/nope", RawPath: "/nope", Flags: event.ORdonly, Result: -2, Size: -1},
		"odd_errno":  {Path: "/x", RawPath: "/x", Flags: event.ORdonly, Result: -4095, Size: -1},
		"directory":  {Path: "/models", RawPath: "/models", Flags: event.ORdonly | event.ODirectry, Result: 4, Size: 4096},
		"device":     {Path: "/dev/nvidia0", RawPath: "/dev/nvidia0", Flags: event.ORdwr, Result: 4, Size: 0},
		"create":     {Path: "/tmp/x", RawPath: "x", PathSource: event.PathUser, Flags: event.OWronly | event.OCreat | event.OAppend, Mode: 0o644, Result: 3, Size: 0},
		"unresolved": {Path: "", RawPath: "rel/x", PathSource: event.PathUnresolved, Flags: event.ORdonly, Result: 3, Size: -1},
		"root":       {Path: "/", RawPath: "/", Flags: event.ORdonly | event.ODirectry, Result: 3, Size: -1},
	} {
		add("open/"+name, &event.Event{Kind: event.KindOpen, Process: p, Container: c, File: f})
	}
	// Network: families, protocols, outcomes, classes.
	v4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	for name, n := range map[string]*event.Net{
		"tcp4_refused": {Protocol: "tcp", SAddr: v4("10.0.0.5"), SPort: 40000, DAddr: v4("10.0.0.6"), DPort: 22, Class: event.ClassPod, Result: -111},
		"tcp4_unreach": {Protocol: "tcp", SAddr: v4("10.0.0.5"), SPort: 40000, DAddr: v4("10.0.0.6"), DPort: 22, Class: event.ClassNode, Result: -113},
		"tcp6_ok":      {Protocol: "tcp", SAddr: v4("2001:db8::5"), SPort: 40000, DAddr: v4("2001:db8::9"), DPort: 443, Class: event.ClassExternal},
		"v4_mapped":    {Protocol: "tcp", SAddr: v4("::ffff:10.0.0.5"), SPort: 1, DAddr: v4("::ffff:10.0.0.6"), DPort: 2, Class: event.ClassPod},
		"udp4":         {Protocol: "udp", DAddr: v4("10.96.0.10"), DPort: 53, Class: event.ClassPod},
		"udp6_local":   {Protocol: "udp", SAddr: v4("::1"), DAddr: v4("::1"), DPort: 8125, Class: event.ClassLoopback},
		"no_source":    {Protocol: "tcp", DAddr: v4("169.254.169.254"), DPort: 80, Class: event.ClassMetadata},
		"unix_path":    {Protocol: "unix", UnixPath: "/run/containerd/containerd.sock", Class: event.ClassUnix},
		"unix_abstr":   {Protocol: "unix", UnixPath: "@/containerd-shim/x.sock", Class: event.ClassUnix, Result: -111},
		"unix_nopath":  {Protocol: "unix", Class: event.ClassUnix},
		"no_dest":      {Protocol: "tcp", SAddr: v4("10.0.0.5"), SPort: 1, Class: event.ClassExternal},
	} {
		add("connect/"+name, &event.Event{Kind: event.KindConnect, Process: p, Container: c, Net: n})
	}
	add("egress/traffic", &event.Event{Kind: event.KindEgress, Process: p, Container: c, Net: &event.Net{Protocol: "tcp",
		SAddr: v4("10.0.0.5"), SPort: 40000, DAddr: v4("10.9.9.9"), DPort: 80, Class: event.ClassExternal, BytesSent: 1 << 40, Cookie: 5}})
	add("egress/closed_v6", &event.Event{Kind: event.KindEgress, Process: p, Net: &event.Net{Protocol: "udp",
		SAddr: v4("2001:db8::5"), SPort: 40000, DAddr: v4("2001:db8::9"), DPort: 443, Class: event.ClassExternal, BytesSent: 7, Closed: true}})
	add("accept/io_uring", &event.Event{Kind: event.KindAccept, Process: p, Container: c, Net: &event.Net{Protocol: "tcp",
		SAddr: v4("10.0.0.5"), SPort: 8080, DAddr: v4("203.0.113.9"), DPort: 51000, Class: event.ClassExternal, Cookie: 9, Fd: 7,
		Origin: event.OriginAccept, Via: event.ViaIOUring}})
	add("egress/accepted", &event.Event{Kind: event.KindEgress, Process: p, Container: c, Net: &event.Net{Protocol: "tcp",
		SAddr: v4("10.0.0.5"), SPort: 8080, DAddr: v4("203.0.113.9"), DPort: 51000, Class: event.ClassExternal, BytesSent: 8 << 30,
		Origin: event.OriginAccept}})
	add("egress/raw_datagram", &event.Event{Kind: event.KindEgress, Process: p, Net: &event.Net{Protocol: "raw", IPProto: 255,
		SAddr: v4("10.0.0.5"), DAddr: v4("198.51.100.1"), Class: event.ClassExternal, BytesSent: 1400, Origin: event.OriginDatagram}})
	add("egress/icmp_no_destination", &event.Event{Kind: event.KindEgress, Process: p, Net: &event.Net{Protocol: "icmp",
		SAddr: v4("0.0.0.0"), Class: event.Unknown, BytesSent: 64, Origin: event.OriginDatagram}})
	// Every syscall name of the contract, with success and failure, and
	// the arguments each mapping looks at.
	for _, name := range event.SyscallNames {
		for _, ret := range []int64{0, -1, -13} {
			s := &event.Syscall{Name: name, Ret: ret, Target: 4100, Path: "/host/etc", Path2: "/mnt/x", Arg: "ext4", Fd: 3, Fd2: 1}
			add(fmt.Sprintf("syscall/%s/%d", name, ret), &event.Event{Kind: event.KindSyscall, Process: p, Container: c, Sys: s})
		}
		add("syscall/"+name+"/bare", &event.Event{Kind: event.KindSyscall, Process: bare, Sys: &event.Syscall{Name: name}})
	}
	for _, req := range []uint64{0, 4, 5, 6, 13, 15, 16, 0x4205, 0x4206, 12345} {
		add(fmt.Sprintf("syscall/ptrace/req%d", req), &event.Event{Kind: event.KindSyscall, Process: p, Container: c,
			Sys: &event.Syscall{Name: "ptrace", Flags: req, Target: 4100}})
	}
	for _, sig := range []uint64{1, 2, 9, 15, 19, 10} {
		add(fmt.Sprintf("syscall/kill/sig%d", sig), &event.Event{Kind: event.KindSyscall, Process: p,
			Sys: &event.Syscall{Name: "kill", Flags: sig, Target: 1234, Ret: -1}})
	}
	for name, mode := range map[string]uint64{"chr": 0o20600, "blk": 0o60600, "fifo": 0o10600, "sock": 0o140600, "reg": 0o100600, "none": 0} {
		add("syscall/mknod/"+name, &event.Event{Kind: event.KindSyscall, Process: p, Container: c,
			Sys: &event.Syscall{Name: "mknod", Path: "/tmp/dev", Flags: mode, Arg2: 0x801}})
	}
	add("syscall/finit_module/path", &event.Event{Kind: event.KindSyscall, Process: p, Container: c,
		Sys: &event.Syscall{Name: "finit_module", Path: "/tmp/rootkit.ko", Fd: 3, Arg: "x=1"}})
	add("syscall/delete_module/name", &event.Event{Kind: event.KindSyscall, Process: p,
		Sys: &event.Syscall{Name: "delete_module", Arg: "nvidia_uvm", Ret: -16}})
	add("syscall/setns/ns", &event.Event{Kind: event.KindSyscall, Process: p, Container: c,
		Sys: &event.Syscall{Name: "setns", Fd: 3, Flags: 0x20000, NSInode: 4026531840}})
	add("syscall/dup/socket", &event.Event{Kind: event.KindSyscall, Process: p, Container: c,
		Sys: &event.Syscall{Name: "dup", Fd: 3, Fd2: 0, FdIsSocket: true}})
	add("syscall/unknown_name", &event.Event{Kind: event.KindSyscall, Process: p, Sys: &event.Syscall{Name: "io_uring_enter"}})
	// Findings: several rule families, severities, ATT&CK and ATLAS ids,
	// evidence of every kind, aggregates, unpublished ones.
	fx := ocsfFixtures()
	ev := []*event.Event{fx["file_open"], fx["network_connect"], fx["network_egress_v6"], fx["file_rename"], fx["process_exec"],
		{Kind: event.KindGPU, Time: fixedTime, Seq: 3, GPU: &event.GPU{UUID: "GPU-8f2c", UsedBytes: 1 << 30, PID: 31337}}}
	for i, f := range []*event.Finding{
		{Rule: "ESC-004", Title: "Container process enters host namespaces", Severity: event.SevCritical, MITRE: []string{"T1611"},
			Evidence: ev[3:4], Attrs: map[string]string{"ns": "mnt"}},
		{Rule: "NVT-001", Title: "NVIDIA hook with loader hijack", Severity: event.SevCritical, MITRE: []string{"T1574.006", "AML.T0010"}},
		{Rule: "GPU-002", Title: "Unexpected GPU memory owner", Severity: event.SevHigh, MITRE: []string{"T1496"}, Evidence: ev[5:]},
		{Rule: "EXF-001", Title: "Model weights sent out", Severity: event.SevHigh, MITRE: []string{"T1041", "AML.T0025"},
			Count: 12, Evidence: ev[:3], Description: "d", Explanation: "e"},
		{Rule: "CRED-002", Title: "IMDS contacted", Severity: event.SevLow, MITRE: []string{"T1552.005"}, Evidence: ev[1:2]},
		{Rule: "C2-001", Title: "Reverse shell", Severity: event.SevHigh, MITRE: []string{"T1059"}, Evidence: []*event.Event{nil, ev[4]}},
		{Rule: "GPU-008", Title: "Miner", Severity: event.SevInfo},
		{Rule: "X", Title: "no family, no severity"},
		{Rule: "EXE-002", Title: "Drift", Severity: event.Severity(9), MITRE: []string{" ", "T9999"}},
	} {
		for _, ctr := range []*event.Container{nil, c} {
			add(fmt.Sprintf("finding/%s/%d/%v", f.Rule, i, ctr != nil), &event.Event{Kind: event.KindFinding, Process: p, Container: ctr, Finding: f})
		}
	}
	add("finding/no_process", &event.Event{Kind: event.KindFinding, Finding: &event.Finding{Rule: "GPU-002", Title: "t", Severity: event.SevHigh}})
	add("finding/unseq", &event.Event{Kind: event.KindFinding, Process: p, Finding: &event.Finding{Rule: "ESC-001", Title: "t", Severity: event.SevHigh}})
	mm["finding/unseq"].Seq = 0
	return mm
}

// TestOCSFValidatesAgainstTheSchema validates the golden files and the
// encoder's output over ocsfMatrix against the official OCSF 1.8.0 schema.
// Run with -v to see the tally.
func TestOCSFValidatesAgainstTheSchema(t *testing.T) {
	schema, err := ocsfschema.OCSF180()
	if err != nil {
		t.Fatal(err)
	}
	for _, cls := range OCSFClasses() {
		if schema.Class(cls) == nil {
			t.Errorf("the encoder emits class %d, which the embedded schema subset lacks: regenerate it (internal/export/ocsfschema/ocsf-1.8.0/README.md)", cls)
		}
	}
	type tally struct{ events, errors, deprecated, warnings int }
	perClass := map[int]*tally{}
	var total tally
	check := func(name string, b []byte) {
		r := schema.Validate(b)
		tl := perClass[r.ClassUID]
		if tl == nil {
			tl = &tally{}
			perClass[r.ClassUID] = tl
		}
		tl.events++
		tl.errors += len(r.Errors)
		tl.deprecated += len(r.Deprecated)
		tl.warnings += len(r.Warnings)
		total.events++
		total.errors += len(r.Errors)
		total.deprecated += len(r.Deprecated)
		total.warnings += len(r.Warnings)
		for _, i := range r.All() {
			t.Errorf("%s: %s", name, i)
		}
	}
	golden, err := filepath.Glob(filepath.Join("testdata", "ocsf", "*.ocsf.json"))
	if err != nil || len(golden) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, g := range golden {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		check(g, b)
	}
	enc := testEncoder()
	matrix := ocsfMatrix()
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range matrix {
			if !yield(k) {
				return
			}
		}
	}) {
		ev := matrix[name]
		b, err := enc.Encode(ev)
		if err != nil {
			t.Errorf("%s: Encode: %v", name, err)
			continue
		}
		if got, want := classOf(b), OCSFClass(ev); got != want {
			t.Errorf("%s: class_uid %d; OCSFClass says %d", name, got, want)
		}
		check(name, b)
	}
	for _, cls := range OCSFClasses() {
		if perClass[cls] == nil {
			t.Errorf("no event of class %d was validated", cls)
		}
	}
	var lines []string
	for _, cls := range slices.Sorted(func(yield func(int) bool) {
		for k := range perClass {
			if !yield(k) {
				return
			}
		}
	}) {
		tl := perClass[cls]
		lines = append(lines, fmt.Sprintf("  class %d: %d events, %d errors, %d deprecated, %d warnings", cls, tl.events, tl.errors, tl.deprecated, tl.warnings))
	}
	t.Logf("OCSF %s validation: %d classes, %d events validated (%d golden files, %d encoded), %d errors, %d deprecated attributes, %d warnings\n%s",
		schema.Version, len(perClass), total.events, len(golden), len(matrix), total.errors, total.deprecated, total.warnings, strings.Join(lines, "\n"))
}

func classOf(b []byte) int {
	var v struct {
		ClassUID int `json:"class_uid"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return -1
	}
	return v.ClassUID
}
