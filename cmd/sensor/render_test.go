package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// terminalSafe reports what in a rendered line could reach the terminal
// raw: any control character (C0, DEL, C1), a non-printable rune, invalid
// UTF-8, or a newline other than the final one.
func terminalSafe(line string) string {
	body, ok := strings.CutSuffix(line, "\n")
	if !ok {
		return "no final newline"
	}
	if !utf8.ValidString(body) {
		return "invalid UTF-8"
	}
	for _, r := range body {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || !strconv.IsPrint(r) {
			return "raw " + event.EscapeText(string(r))
		}
	}
	return ""
}

// The terminal-injection vectors of issue 13, through the real renderer:
// each event must print exactly one line with the escapes visible.
func TestHumanRendererHostileNames(t *testing.T) {
	ts := time.Date(2026, 11, 26, 3, 4, 5, 6e6, time.Local)
	ctr := &event.Container{ID: "simctr-attacker", Runtime: "containerd"}
	proc := func(exe string, args ...string) *event.Process {
		return &event.Process{PID: 31337, Comm: "sh", Exe: exe, Args: append([]string{"sh"}, args...)}
	}
	open := func(path string) *event.Event {
		return &event.Event{Kind: event.KindOpen, Time: ts, Process: proc("/bin/sh"), Container: ctr,
			File: &event.File{Path: path, RawPath: path, Result: 3}}
	}
	exec := func(exe string, args ...string) *event.Event {
		return &event.Event{Kind: event.KindExec, Time: ts, Process: proc(exe, args...), Container: ctr}
	}
	forged := "03:04:05.007 status   all clear [host]"
	tests := []struct {
		name string
		ev   *event.Event
		want string // must appear in the line, escaped
	}{
		{"newline forges a line (file name)", open("/tmp/x\n" + forged),
			`/tmp/x\n03:04:05.007 status   all clear [host]`},
		{"clear screen (file name)", open("/tmp/\x1b[2J\x1b[Hx"), `/tmp/\x1b[2J\x1b[Hx`},
		{"OSC window title (exe name)", exec("/tmp/\x1b]0;owned\x07sh"), `/tmp/\x1b]0;owned\ash`},
		{"carriage-return overwrite (argv)", exec("/bin/sh", "-c", "id\r"+forged), `"id\r03:04:05.007 status   all clear [host]"`},
		{"cursor moves (argv)", exec("/bin/sh", "x\x1b[1A\x1b[2K"), `"x\x1b[1A\x1b[2K"`},
		{"C1 CSI (file name)", open("/tmp/\u009b2Jx"), `/tmp/\u009b2Jx`},
		{"bidi override (exe name)", exec("/tmp/evil\u202ehs.txt"), `/tmp/evil\u202ehs.txt`},
		{"invalid UTF-8 (file name)", open("/models/\xff\xfe.safetensors"), `/models/\xff\xfe.safetensors`},
		{"line separator (container and pod)", &event.Event{Kind: event.KindExec, Time: ts, Process: proc("/bin/true"),
			Container: &event.Container{ID: "c\u2028[host]", Pod: "p\x1b[0m", Namespace: "n\r"}}, `[c\u2028[host] n\r/p\x1b[0m]`},
		{"multi-line command line in a finding", &event.Event{Kind: event.KindFinding, Time: ts, Process: proc("/bin/sh"), Container: ctr,
			Finding: &event.Finding{Rule: "ESC-002", Title: "t", Severity: event.SevCritical,
				Explanation: "ran sh -c 'echo |/tmp/x > /proc/sys/kernel/core_pattern\nexit'"}},
			`core_pattern\nexit'`},
		{"unix socket path", &event.Event{Kind: event.KindConnect, Time: ts, Process: proc("/bin/sh"), Container: ctr,
			Net: &event.Net{Protocol: "unix", UnixPath: "/run/\x1b[31mx.sock", Class: "unix"}}, `/run/\x1b[31mx.sock`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := newHumanRenderer(&b, false).Render(tt.ev); err != nil {
				t.Fatal(err)
			}
			line := b.String()
			if bad := terminalSafe(line); bad != "" {
				t.Fatalf("line %q: %s reaches the terminal", line, bad)
			}
			if !strings.Contains(line, tt.want) {
				t.Errorf("line %q; want it to show %s", line, tt.want)
			}
		})
	}
}

// Every string field of every payload, set to a hostile value, renders
// as one terminal-safe line: a field added later cannot skip the escaping
// unnoticed.
func TestHumanRendererEscapesEveryField(t *testing.T) {
	const hostile = "h\n\r\x1b[2J\x1b]0;t\x07\u009b\u202e\u2028\xff"
	ts := time.Date(2026, 11, 26, 3, 4, 5, 6e6, time.Local)
	for k := event.KindExec; k.String() != "invalid"; k++ {
		ev := &event.Event{Kind: k, Time: ts}
		fillStrings(reflect.ValueOf(ev).Elem(), hostile)
		ev.Kind, ev.Time = k, ts
		ev.Net.DAddr = netip.MustParseAddr("10.0.0.1")
		for _, colour := range []bool{false, true} {
			var b bytes.Buffer
			if err := newHumanRenderer(&b, colour).Render(ev); err != nil {
				t.Fatal(err)
			}
			line := b.String()
			if colour {
				line = stripOurColours(line)
			}
			if bad := terminalSafe(line); bad != "" {
				t.Errorf("%s (colour %v): line %q: %s reaches the terminal", k, colour, line, bad)
			}
		}
	}
}

// stripOurColours removes the renderer's own SGR sequences.
func stripOurColours(s string) string {
	for _, c := range []string{colours.reset, colours.dim, colours.bold, colours.red, colours.green,
		colours.yellow, colours.blue, colours.magenta, colours.cyan} {
		s = strings.ReplaceAll(s, c, "")
	}
	return s
}

// fillStrings sets every string reachable from v (fields, slices, maps,
// pointers to structs, which it allocates) to s, and every slice of structs
// to one element.
func fillStrings(v reflect.Value, s string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Pointer:
		if v.Type().Elem().Kind() != reflect.Struct || v.Type().Elem().PkgPath() != "github.com/kestrel-sec/kestrel/internal/event" {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fillStrings(v.Elem(), s)
	case reflect.Struct:
		if v.Type().PkgPath() != "github.com/kestrel-sec/kestrel/internal/event" {
			return // time.Time, netip.Addr
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fillStrings(v.Field(i), s)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Pointer {
			return // evidence: not printed on the line
		}
		sl := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fillStrings(sl.Index(i), s)
		}
		v.Set(sl)
	case reflect.Map:
		if v.Type().Key().Kind() == reflect.String && v.Type().Elem().Kind() == reflect.String {
			m := reflect.MakeMap(v.Type())
			m.SetMapIndex(reflect.ValueOf(s), reflect.ValueOf(s))
			v.Set(m)
		}
	}
}

// The bill of materials prints container-chosen paths and names too.
func TestBOMTextEscapes(t *testing.T) {
	inv := &event.Inventory{Node: "n", GPUs: []event.InventoryGPU{{UUID: "GPU-1", Name: "H100\x1b[2J", Owners: []event.InventoryOwner{
		{Process: &event.Process{PID: 7, Exe: "/tmp/\x1b]0;t\x07py", Args: []string{"py", "a\nb"}},
			Container: &event.Container{ID: "c\rx"},
			Models:    []event.ModelFile{{Path: "/m/\nforged model line", Size: 3, SHA256: "ab"}}},
	}}}}
	var b bytes.Buffer
	writeBOM(&b, inv)
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if line == "" {
			continue
		}
		if bad := terminalSafe(line); bad != "" {
			t.Errorf("bom line %q: %s reaches the terminal", line, bad)
		}
	}
	if got := strings.Count(b.String(), "\n"); got != 4 {
		t.Errorf("bom printed %d lines; want 4 (node, GPU, owner, model):\n%s", got, b.String())
	}
}

// The JSON outputs an operator reads on a terminal (--tail -o json and
// -o ocsf, `sensor gpus -o json`, `sensor bom -o json`) carry hostile names
// as \u escapes: C1 controls and bidi overrides, which JSON allows raw, must
// not reach the terminal. The JSON value is the same.
func TestJSONOutputsAreTerminalSafe(t *testing.T) {
	exe := "/tmp/evil\u202egpj.sh\u009b2J\u0085\x7f"
	proc := &event.Process{PID: 7, Comm: "sh\u2066", Exe: exe, Args: []string{"sh", "-c", "x\u200by"}}
	ev := &event.Event{Kind: event.KindExec, Time: time.Unix(1, 0), Process: proc}
	inv := &event.Inventory{Node: "n\u0085", GPUs: []event.InventoryGPU{{UUID: "GPU-1", Owners: []event.InventoryOwner{{Process: proc}}}}}
	outputs := map[string]func(w *bytes.Buffer) error{
		"tail -o json": func(w *bytes.Buffer) error {
			p := newPrinter(w, io.Discard, "json", true, nil)
			p.print(ev)
			return p.err
		},
		"tail -o ocsf": func(w *bytes.Buffer) error {
			p := newPrinter(w, io.Discard, "ocsf", true, nil)
			p.print(ev)
			return p.err
		},
		"gpus -o json": func(w *bytes.Buffer) error { return writeJSONDoc(w, bomJSON(inv), "") },
		"bom -o json":  func(w *bytes.Buffer) error { return writeJSONDoc(w, bomJSON(inv), "  ") },
	}
	for name, write := range outputs {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out := b.String()
		if !json.Valid(b.Bytes()) || !strings.HasSuffix(out, "}\n") {
			t.Errorf("%s: not one JSON document and a newline: %q", name, out)
		}
		for _, r := range strings.TrimSuffix(out, "\n") {
			if r == '\n' && name == "bom -o json" {
				continue
			}
			if r < 0x20 || r == 0x7f || !strconv.IsPrint(r) {
				t.Errorf("%s: %U reaches the terminal raw: %q", name, r, out)
				break
			}
		}
		if !strings.Contains(out, `/tmp/evil\u202egpj.sh\u009b2J\u0085\u007f`) {
			t.Errorf("%s: the exe is not written with \\u escapes: %s", name, out)
		}
	}
}
