package export

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/kestrel-sec/kestrel/internal/event"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

// hostileEvents puts a, b and c (arbitrary bytes) into every name the
// kernel or a container controls: a finding whose evidence is an open and a
// syscall, a unix connect, and a status.
func hostileEvents(a, b, c string) []*event.Event {
	proc := &event.Process{PID: 7, Comm: a, Exe: b, Cwd: c, Args: []string{a, b, c},
		Env:       []event.EnvVar{{Name: "LD_PRELOAD", Value: a}, {Name: c, Value: b}},
		Ancestors: []event.Ancestor{{PID: 1, Exe: b, Comm: a}}, Truncated: event.TruncArgs}
	ctr := &event.Container{ID: a, Runtime: "containerd", CgroupPath: b, Pod: c, Namespace: a, Name: b, Image: c,
		Labels: map[string]string{a: b}, GPUs: []string{c}}
	open := &event.Event{Kind: event.KindOpen, Time: fixedTime, Seq: 1, Process: proc, Container: ctr,
		File: &event.File{Path: "/models/" + a, RawPath: b, Size: -1, Syscall: "openat", Truncated: event.TruncPath}}
	sys := &event.Event{Kind: event.KindSyscall, Time: fixedTime, Seq: 2, Process: proc,
		Sys: &event.Syscall{Name: "mount", Path: a, Path2: b, Arg: c, Arg2: 3, Truncated: event.TruncPath}}
	return []*event.Event{
		open, sys,
		{Kind: event.KindFinding, Time: fixedTime, Seq: 3, Process: proc, Container: ctr,
			Finding: &event.Finding{Rule: "EXF-001", Title: a, Severity: event.SevCritical, MITRE: []string{b}, Description: c,
				Explanation: "read " + a, Count: 1, Attrs: map[string]string{"file": a, "dest": "10.0.0.1:443"},
				Evidence: []*event.Event{open, sys}}},
		{Kind: event.KindConnect, Time: fixedTime, Seq: 4, Process: proc, Net: &event.Net{Protocol: "unix", UnixPath: c, Class: event.ClassUnix}},
		{Kind: event.KindStatus, Time: fixedTime, Seq: 5, Status: &event.Status{Message: a, Programs: []string{b},
			Fields: map[string]string{"nvml": c}, Counters: map[string]uint64{a: 1}}},
	}
}

// exactFields is what must come back byte for byte from the wire: every
// name that has a bytes twin.
func exactFields(ev *event.Event) map[string]any {
	m := map[string]any{}
	ev.RawStrings(func(field, raw string) { m["raw:"+field] = raw })
	if p := ev.Process; p != nil {
		m["comm"], m["exe"], m["cwd"], m["args"], m["env"], m["anc"], m["trunc"] = p.Comm, p.Exe, p.Cwd, p.Args, p.Env, p.Ancestors, p.Truncated
	}
	if c := ev.Container; c != nil {
		m["cid"], m["cg"], m["pod"], m["ns"], m["cname"], m["image"] = c.ID, c.CgroupPath, c.Pod, c.Namespace, c.Name, c.Image
	}
	if f := ev.File; f != nil {
		m["path"], m["raw"], m["ftrunc"] = f.Path, f.RawPath, f.Truncated
	}
	if s := ev.Sys; s != nil {
		m["spath"], m["spath2"], m["sarg"], m["sarg2"], m["strunc"] = s.Path, s.Path2, s.Arg, s.Arg2, s.Truncated
	}
	if n := ev.Net; n != nil {
		m["unix"] = n.UnixPath
	}
	if f := ev.Finding; f != nil {
		m["expl"], m["attr.file"] = f.Explanation, f.Attrs["file"]
		for i, e := range f.Evidence {
			m["evidence"+string(rune('0'+i))] = exactFields(e)
		}
	}
	return m
}

// checkWire is the property: the wire form of any event marshals (proto3
// refuses invalid UTF-8 in a string, which ended every subscriber's stream),
// every string on it is valid UTF-8, the names come back exact, and the JSON
// and OCSF renderings are valid UTF-8 JSON.
func checkWire(t *testing.T, ev *event.Event) {
	t.Helper()
	p := EventToProto(ev)
	wire, err := proto.Marshal(p)
	if err != nil {
		t.Fatalf("marshal %s event: %v", ev.Kind, err)
	}
	var back sensorv1.Event
	if err := proto.Unmarshal(wire, &back); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	got, err := EventFromProto(&back)
	if err != nil {
		t.Fatalf("EventFromProto: %v", err)
	}
	if w, g := exactFields(ev), exactFields(got); !reflect.DeepEqual(w, g) {
		t.Fatalf("names changed on the wire:\n got %q\nwant %q", g, w)
	}
	j, err := json.Marshal(ev)
	if err != nil || !utf8.Valid(j) || !json.Valid(j) {
		t.Fatalf("JSON line: valid UTF-8 %v, valid JSON %v, err %v", utf8.Valid(j), json.Valid(j), err)
	}
	if o, err := testEncoder().Encode(ev); err == nil && (!utf8.Valid(o) || !json.Valid(o)) {
		t.Fatalf("OCSF: valid UTF-8 %v, valid JSON %v", utf8.Valid(o), json.Valid(o))
	}
}

// Hostile names (issue 14): a file name that is not valid UTF-8 reaches the
// wire as readable text plus its exact bytes, in every place a name goes.
func TestInvalidUTF8NamesSurviveTheWire(t *testing.T) {
	for _, ev := range hostileEvents("w\xff\xfe.safetensors", "/usr/bin/\xc3(", "\x1b]0;pwned\x07\n\xed\xa0\x80") {
		t.Run(ev.Kind.String(), func(t *testing.T) {
			checkWire(t, ev)
			p := EventToProto(ev)
			if f := p.GetFile(); f != nil {
				if string(f.GetExact().GetPath()) != ev.File.Path || f.GetPath() != "/models/w\uFFFD\uFFFD.safetensors" {
					t.Errorf("file path %q, exact %q", f.GetPath(), f.GetExact().GetPath())
				}
				if got := f.GetTruncated(); len(got) != 1 || got[0] != "path" {
					t.Errorf("file.truncated = %v; want [path]", got)
				}
			}
			if pr := p.GetProcess(); pr != nil && len(pr.GetExact().GetArgs()) != 3 {
				t.Errorf("exact.args has %d entries; want all 3", len(pr.GetExact().GetArgs()))
			}
			// OCSF keeps the exact bytes in unmapped.raw_b64.
			if ev.Kind == event.KindOpen {
				o, err := testEncoder().Encode(ev)
				if err != nil {
					t.Fatal(err)
				}
				var m struct {
					Unmapped struct {
						Raw map[string][]byte `json:"raw_b64"`
					} `json:"unmapped"`
				}
				if err := json.Unmarshal(o, &m); err != nil {
					t.Fatal(err)
				}
				if got := string(m.Unmapped.Raw["file.path"]); got != ev.File.Path {
					t.Errorf("OCSF unmapped.raw_b64[file.path] = %q; want %q", got, ev.File.Path)
				}
			}
		})
	}
	// Valid names carry no bytes twin.
	p := EventToProto(hostileEvents("a", "/b", "c")[0])
	if p.GetFile().GetExact() != nil || p.GetProcess().GetExact() != nil || p.GetContainer().GetExact() != nil {
		t.Errorf("valid names got an exact message: %v", p)
	}
}

func FuzzEventToProto(f *testing.F) {
	f.Add("model.safetensors", "/usr/bin/python3", "/work")
	f.Add("w\xff\xfe", "\xc3", "\xed\xa0\x80\x00")
	f.Add("\x1b[2J\r", "\u202e", "")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		for _, ev := range hostileEvents(a, b, c) {
			checkWire(t, ev)
		}
	})
}
