package export

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kestrel-sec/kestrel/internal/event"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

// Every event survives event → proto → wire → proto → event unchanged, so
// `sensor --tail` shows what the daemon's own feed has.
func TestEventProtoRoundTrip(t *testing.T) {
	fixtures := ocsfFixtures()
	fixtures["gpu"] = &event.Event{Kind: event.KindGPU, Time: fixedTime, Seq: 3, Process: &event.Process{PID: 5},
		GPU: &event.GPU{Change: event.GPUStart, UUID: "GPU-1", Index: 2, MIG: "MIG-9", Name: "H200", PID: 5, UsedBytes: 1 << 34}}
	fixtures["lost"] = &event.Event{Kind: event.KindLost, Time: fixedTime, Lost: &event.Lost{Source: "kernel_ringbuf", Count: 9}}
	fixtures["status"] = &event.Event{Kind: event.KindStatus, Time: fixedTime, Status: &event.Status{Ready: true, Message: "ok",
		Programs: []string{"exec"}, Fields: map[string]string{"nvml": "ok"}, Counters: map[string]uint64{"events": 4}}}
	fixtures["fork_rich_process"] = &event.Event{Kind: event.KindFork, Time: fixedTime, Seq: 4, Process: &event.Process{
		PID: 1, TID: 2, PPID: 3, ForkParent: 4, UID: 5, EUID: 6, Comm: "c", Exe: "/e", Args: []string{"a"}, Cwd: "/w",
		Env: []event.EnvVar{{Name: "LD_PRELOAD", Value: "/x.so"}}, StartTime: fixedTime, ExecTime: fixedTime.Add(time.Second),
		CgroupID: 7, NS: event.Namespaces{Mnt: 1, PID: 2, Net: 3, User: 4, UTS: 5, IPC: 6, Cgroup: 7}, CapEff: 0x1ff, CapPrm: 0x3ff,
		TTY: true, GPUOwner: true, ExeMemfd: true, Ancestors: []event.Ancestor{{PID: 3, Exe: "/p", Comm: "p"}, {PID: 2, Comm: "kthreadd"}}}}
	fixtures["open_identity"] = &event.Event{Kind: event.KindOpen, Time: fixedTime, Seq: 5, Process: &event.Process{PID: 6},
		File: &event.File{Path: ".../d/mem", RawPath: "/tmp/m", PathSource: event.PathKernel, Flags: 2, Result: 4, Size: 0,
			Inode: 9, Dev: 0x16, Syscall: "openat", Via: event.ViaIOUring, Match: event.MatchKnob | event.MatchName,
			Knob: event.KnobProcMem, Type: event.FileTypeRegular, TargetPID: 700, Truncated: event.TruncPath | event.TruncRawPath, Repeats: 3}}
	fixtures["open_device"] = &event.Event{Kind: event.KindOpen, Time: fixedTime, Process: &event.Process{PID: 6},
		File: &event.File{Path: "/tmp/d", RawPath: "/tmp/d", PathSource: event.PathKernel, Result: 4, Size: 0,
			Syscall: "open_by_handle_at", Match: event.MatchDevice | event.MatchCall, Type: event.FileTypeBlock, Rdev: 0x800}}
	fixtures["syscall_io_uring"] = &event.Event{Kind: event.KindSyscall, Time: fixedTime, Process: &event.Process{PID: 6},
		Sys: &event.Syscall{Name: "rename", Path: "/models/a", Path2: "/tmp/b", Via: event.ViaIOUring, Truncated: event.TruncPath}}
	for name, ev := range fixtures {
		t.Run(name, func(t *testing.T) {
			wire, err := proto.Marshal(EventToProto(ev))
			if err != nil {
				t.Fatal(err)
			}
			var p sensorv1.Event
			if err := proto.Unmarshal(wire, &p); err != nil {
				t.Fatal(err)
			}
			got, err := EventFromProto(&p)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := ev.MarshalJSON()
			back, _ := got.MarshalJSON()
			if string(want) != string(back) {
				t.Errorf("round trip changed the event:\n got %s\nwant %s", back, want)
			}
			if ev.Process != nil && !reflect.DeepEqual(normalize(ev.Process), normalize(got.Process)) {
				t.Errorf("process changed:\n got %+v\nwant %+v", got.Process, ev.Process)
			}
		})
	}
}

func normalize(p *event.Process) event.Process {
	q := *p
	q.StartTime, q.ExecTime = q.StartTime.UTC(), q.ExecTime.UTC()
	return q
}

func TestEventFromProtoRejectsGarbage(t *testing.T) {
	tests := []struct {
		name string
		p    *sensorv1.Event
		want string
	}{
		{"nil", nil, "nil event"},
		{"unknown kind", &sensorv1.Event{Kind: 77}, "kind"},
		{"bad address", &sensorv1.Event{Kind: sensorv1.EventKind_EVENT_KIND_CONNECT, Payload: &sensorv1.Event_Net{Net: &sensorv1.Net{Daddr: "10.0.0.300"}}}, "net.daddr"},
		{"port out of range", &sensorv1.Event{Kind: sensorv1.EventKind_EVENT_KIND_CONNECT, Payload: &sensorv1.Event_Net{Net: &sensorv1.Net{Dport: 70000}}}, "port"},
		{"bad severity", &sensorv1.Event{Kind: sensorv1.EventKind_EVENT_KIND_FINDING, Payload: &sensorv1.Event_Finding{Finding: &sensorv1.Finding{Severity: 12}}}, "severity"},
		{"bad evidence", &sensorv1.Event{Kind: sensorv1.EventKind_EVENT_KIND_FINDING, Payload: &sensorv1.Event_Finding{Finding: &sensorv1.Finding{
			Severity: sensorv1.Severity_SEVERITY_HIGH, Evidence: []*sensorv1.Event{{Kind: 99}}}}}, "evidence[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := EventFromProto(tt.p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func FuzzEventFromProto(f *testing.F) {
	for _, ev := range ocsfFixtures() {
		b, _ := proto.Marshal(EventToProto(ev))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p sensorv1.Event
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		ev, err := EventFromProto(&p)
		if err != nil {
			return
		}
		// What decodes must render in both output formats without panicking.
		ev.MarshalJSON()
		testEncoder().Encode(ev)
	})
}

// The export package stays on its floor (docs/architecture.md): it imports event and
// config of ours, the generated proto, and never another middle package or
// cilium/ebpf.
func TestImportsStayOnTheFloor(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	const mod = "github.com/kestrel-sec/kestrel/"
	allowed := map[string]bool{mod + "internal/event": true, mod + "internal/config": true, mod + "proto/sensor/v1": true}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, mod) && !allowed[path] {
				t.Errorf("%s imports %s: export may import only event, config and the proto", f, path)
			}
			if strings.HasPrefix(path, "github.com/cilium/ebpf") {
				t.Errorf("%s imports %s: export must not depend on cilium/ebpf", f, path)
			}
		}
	}
}
