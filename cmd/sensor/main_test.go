package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export"
)

func TestBadInputExitsTwoWithOneLine(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badYAML, []byte("capture:\n  ring_bufer_bytes: 4096\n"), 0o600)
	badValue := filepath.Join(dir, "badval.yaml")
	os.WriteFile(badValue, []byte("capture:\n  ring_buffer_bytes: 1000\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--tial"}, "flag provided but not defined: -tial"},
		{"bad output", []string{"--tail", "-o", "xml"}, `-o "xml"`},
		{"filter without tail", []string{"--severity", "high"}, "need --tail"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"missing config", []string{"--tail", "--config", filepath.Join(dir, "nope.yaml")}, "no such file"},
		{"unknown key", []string{"--tail", "--config", badYAML}, "ring_bufer_bytes"},
		{"bad value", []string{"--tail", "--config", badValue}, "ring_buffer_bytes"},
		{"bad severity", []string{"--tail", "--in-process", "--severity", "urgent"}, `--severity "urgent"`},
		{"bad kind", []string{"--tail", "--in-process", "--kind", "opne"}, `--kind "opne"`},
		{"exclude without tail", []string{"--exclude-kind", "open"}, "need --tail"},
		{"bad exclude kind", []string{"--tail", "--in-process", "--exclude-kind", "opne"}, `--exclude-kind "opne"`},
		{"bad exclude regex", []string{"--tail", "--in-process", "--exclude-binary", "(py"}, `--exclude-binary "(py": error parsing regexp`},
		{"empty exclude pod", []string{"--tail", "--in-process", "--exclude-pod", ""}, "--exclude-pod: empty regex"},
		{"bad log format", []string{"--log-format", "xml"}, `--log-format: "xml" is not one of text, json`},
		{"bad metrics address", []string{"--metrics-listen", "2112"}, `--metrics-listen: "2112" is not host:port`},
		{"bad health address", []string{"--health-listen", "9876"}, `--health-listen: "9876" is not host:port`},
		{"tcp listen without tls", []string{"--tcp-listen=[::1]:8443"}, "export.tcp_listen: TCP is served only with mutual TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			if code != 2 {
				t.Fatalf("exit code %d; want 2 (stderr %q)", code, errb.String())
			}
			msg := errb.String()
			if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tt.want) {
				t.Fatalf("stderr %q; want one line containing %q", msg, tt.want)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "sensor --tail") {
		t.Fatalf("--help: code %d, out %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"--version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "sensor ") {
		t.Fatalf("--version: code %d, out %q", code, out.String())
	}
}

func TestHumanRendererLines(t *testing.T) {
	ts := time.Date(2026, 11, 26, 3, 4, 5, 6e6, time.Local)
	proc := &event.Process{PID: 4711, Comm: "cat", Exe: "/usr/bin/cat", Args: []string{"cat", "a b"},
		Ancestors: []event.Ancestor{{PID: 100, Exe: "/bin/bash"}}}
	ctr := &event.Container{ID: strings.Repeat("ab", 32), Runtime: "containerd", Pod: "vllm-0", Namespace: "ml"}
	tests := []struct {
		ev   *event.Event
		want string
	}{
		{&event.Event{Kind: event.KindExec, Time: ts, Process: proc},
			`03:04:05.006 exec     cat(4711)<bash(100) /usr/bin/cat "a b" [host]`},
		{&event.Event{Kind: event.KindOpen, Time: ts, Process: proc, Container: ctr,
			File: &event.File{Path: "/m/x.safetensors", RawPath: "x.safetensors", Flags: 0x80000, Result: 3}},
			`03:04:05.006 open     cat(4711)<bash(100) /m/x.safetensors (as x.safetensors) O_RDONLY|O_CLOEXEC = 3 [abababababab ml/vllm-0]`},
		{&event.Event{Kind: event.KindOpen, Time: ts, Process: proc,
			File: &event.File{Path: "/proc/1/ns/net", RawPath: "/proc/1/ns/net", Result: -13}},
			`03:04:05.006 open     cat(4711)<bash(100) /proc/1/ns/net O_RDONLY = -EACCES [host]`},
		{&event.Event{Kind: event.KindEgress, Time: ts, Process: proc,
			Net: &event.Net{Protocol: "tcp", DAddr: netip.MustParseAddr("10.0.0.9"), DPort: 443, Class: "external", BytesSent: 3 << 20, Closed: true}},
			`03:04:05.006 egress   cat(4711)<bash(100) 3.0 MiB sent, tcp 10.0.0.9:443 external (closed) [host]`},
		{&event.Event{Kind: event.KindAccept, Time: ts, Process: proc,
			Net: &event.Net{Protocol: "tcp", SPort: 8080, DAddr: netip.MustParseAddr("203.0.113.9"), DPort: 51000, Class: "external",
				Origin: event.OriginAccept, Via: event.ViaIOUring}},
			`03:04:05.006 accept   cat(4711)<bash(100) tcp from 203.0.113.9:51000 on :8080 external via io_uring [host]`},
		{&event.Event{Kind: event.KindEgress, Time: ts, Process: proc,
			Net: &event.Net{Protocol: "tcp", SPort: 8080, DAddr: netip.MustParseAddr("203.0.113.9"), DPort: 51000, Class: "external",
				BytesSent: 8 << 30, Origin: event.OriginAccept}},
			`03:04:05.006 egress   cat(4711)<bash(100) 8.0 GiB sent, tcp 203.0.113.9:51000 external (accepted) [host]`},
		{&event.Event{Kind: event.KindEgress, Time: ts, Process: proc,
			Net: &event.Net{Protocol: "raw", IPProto: 255, Class: "unknown", BytesSent: 1400, Origin: event.OriginDatagram}},
			`03:04:05.006 egress   cat(4711)<bash(100) 1.4 KiB sent, raw/255 destination unknown unknown [host]`},
		{&event.Event{Kind: event.KindFinding, Time: ts, Process: proc, Container: ctr,
			Finding: &event.Finding{Rule: "ESC-002", Title: "Usermode-helper knob written", Severity: event.SevCritical,
				Explanation: "wrote /proc/sys/kernel/core_pattern", MITRE: []string{"T1611"}, Count: 3}},
			`03:04:05.006 CRITICAL cat(4711)<bash(100) ESC-002 Usermode-helper knob written: wrote /proc/sys/kernel/core_pattern (x3) [T1611] [abababababab ml/vllm-0]`},
		{&event.Event{Kind: event.KindLost, Time: ts, Lost: &event.Lost{Source: "kernel_ringbuf", Count: 12}},
			`03:04:05.006 LOST     12 events lost at kernel_ringbuf [host]`},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := newHumanRenderer(&b, false).Render(tt.ev); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSuffix(b.String(), "\n"); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
}

func TestWatchModelRootsAddsPrefixes(t *testing.T) {
	cfg := defaultConfigForTest()
	cfg.Detect.ModelRoots = []string{"/srv/models", "/home/*/.cache/huggingface", "relative"}
	watchModelRoots(cfg)
	var found, glob bool
	for _, p := range cfg.Capture.WatchPrefixes {
		found = found || p == "/srv/models/"
		glob = glob || strings.Contains(p, "*") || p == "relative/"
	}
	if !found || glob {
		t.Fatalf("prefixes %v: want /srv/models/ and no glob or relative root", cfg.Capture.WatchPrefixes)
	}
}

func defaultConfigForTest() *config.Config { return config.Default() }

func TestTailHidesForksUnlessAsked(t *testing.T) {
	fork := &event.Event{Kind: event.KindFork, Process: &event.Process{PID: 1}}
	exec := &event.Event{Kind: event.KindExec, Process: &event.Process{PID: 1}}
	for _, tt := range []struct {
		kinds            multiFlag
		wantFork, wantEx bool
	}{
		{nil, false, true},
		{multiFlag{"fork"}, true, false},
		{multiFlag{"fork", "exec"}, true, true},
	} {
		fs, err := filtersFromFlags(&filterFlags{kinds: tt.kinds})
		if err != nil {
			t.Fatal(err)
		}
		m, err := export.Compile(fs)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Match(fork); got != tt.wantFork {
			t.Errorf("--kind %v: fork shown = %v; want %v", tt.kinds, got, tt.wantFork)
		}
		if got := m.Match(exec); got != tt.wantEx {
			t.Errorf("--kind %v: exec shown = %v; want %v", tt.kinds, got, tt.wantEx)
		}
	}
}

func TestBOMJSONUsesTheEventContract(t *testing.T) {
	inv := &event.Inventory{Node: "n", GPUs: []event.InventoryGPU{{UUID: "GPU-1", Owners: []event.InventoryOwner{
		{Process: &event.Process{PID: 7, Exe: "/usr/bin/python3"}, UsedBytes: 1 << 30,
			Models: []event.ModelFile{{Path: "/m/a.safetensors", Size: 3, SHA256: "ab"}}},
	}}}}
	b, err := json.Marshal(bomJSON(inv))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"process":{"pid":7,`, `"exe":"/usr/bin/python3"`, `"ancestors":[]`,
		`"container":null`, `"sha256":"ab"`, `"used_bytes":1073741824`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("bom JSON lacks %s: %s", want, b)
		}
	}
}

// Exclude flags hide what each matches, on top of the include filters, the
// same way in-process (the printer's Matcher) and attached (the filters sent
// to the daemon, which compiles them from the wire).
func TestTailExcludeFlags(t *testing.T) {
	curl := &event.Event{Kind: event.KindExec, Process: &event.Process{PID: 2, Exe: "/usr/bin/curl"}}
	sh := &event.Event{Kind: event.KindExec, Process: &event.Process{PID: 3, Exe: "/bin/sh"},
		Container: &event.Container{ID: "abcdef0123456789", Pod: "vllm-0", Namespace: "inference"}}
	noisy := &event.Event{Kind: event.KindExec, Process: &event.Process{PID: 4, Exe: "/bin/sh"},
		Container: &event.Container{ID: "0123456789abcdef", Name: "sidecar", Pod: "vllm-0", Namespace: "kube-system"}}
	open := &event.Event{Kind: event.KindOpen, Process: &event.Process{PID: 2, Exe: "/bin/sh"}}
	shell := &event.Event{Kind: event.KindFinding, Process: sh.Process, Finding: &event.Finding{Rule: "EXE-001", Severity: event.SevHigh}}
	escape := &event.Event{Kind: event.KindFinding, Process: curl.Process, Finding: &event.Finding{Rule: "ESC-002", Severity: event.SevCritical}}
	lost := &event.Event{Kind: event.KindLost, Lost: &event.Lost{Source: "kernel_ringbuf", Count: 1}}
	all := []*event.Event{curl, sh, noisy, open, shell, escape, lost}
	names := []string{"curl", "sh", "noisy", "open", "shell", "escape", "lost"}
	for _, tt := range []struct {
		name string
		args []string
		want []string // what is shown
	}{
		{"binary", []string{"--exclude-binary", "curl$"}, []string{"sh", "noisy", "open", "shell", "lost"}},
		{"two binaries", []string{"--exclude-binary", "curl$", "--exclude-binary", "^/bin/(sh|bash)$"}, []string{"lost"}},
		{"kinds", []string{"--exclude-kind", "open,exec"}, []string{"shell", "escape", "lost"}},
		{"rule", []string{"--exclude-rule", "EXE-001"}, []string{"curl", "sh", "noisy", "open", "escape", "lost"}},
		{"namespace", []string{"--exclude-namespace", "^kube-"}, []string{"curl", "sh", "open", "shell", "escape", "lost"}},
		{"container name", []string{"--exclude-container", "^sidecar$"}, []string{"curl", "sh", "open", "shell", "escape", "lost"}},
		{"pod", []string{"--exclude-pod", "vllm"}, []string{"curl", "open", "shell", "escape", "lost"}},
		{"with include", []string{"--kind", "exec", "--exclude-binary", "curl"}, []string{"sh", "noisy", "lost"}},
		{"severity and rule", []string{"--severity", "high", "--exclude-rule", "ESC-002"}, []string{"shell", "lost"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseArgs(append([]string{"--tail"}, tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			fs, err := filtersFromFlags(&o.filter)
			if err != nil {
				t.Fatal(err)
			}
			local, err := export.Compile(fs)
			if err != nil {
				t.Fatal(err)
			}
			wire, err := export.FiltersFromProto(fs.ToProto())
			if err != nil {
				t.Fatal(err)
			}
			remote, err := export.Compile(wire)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, ev := range all {
				if l, r := local.Match(ev), remote.Match(ev); l != r {
					t.Errorf("%s: in-process shows %v, the daemon %v", names[i], l, r)
				} else if l {
					got = append(got, names[i])
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("%v shows %v; want %v", tt.args, got, tt.want)
			}
		})
	}
}
