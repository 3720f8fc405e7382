package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export"
	"github.com/kestrel-sec/kestrel/internal/export/ocsfschema"
)

// lines collects what a writer receives, line by line, and lets a test wait
// for a count.
type lines struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	cond *sync.Cond
}

func newLines() *lines {
	l := &lines{}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *lines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(b)
	l.cond.Broadcast()
	return len(b), nil
}

func (l *lines) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSuffix(l.buf.String(), "\n"), "\n")
}

// wait blocks until the writer holds n complete lines or the deadline
// passes.
func (l *lines) wait(t *testing.T, n int, what string) []string {
	t.Helper()
	deadline := time.AfterFunc(10*time.Second, func() { l.mu.Lock(); l.cond.Broadcast(); l.mu.Unlock() })
	defer deadline.Stop()
	start := time.Now()
	l.mu.Lock()
	for strings.Count(l.buf.String(), "\n") < n && time.Since(start) < 10*time.Second {
		l.cond.Wait()
	}
	got := strings.Count(l.buf.String(), "\n")
	l.mu.Unlock()
	if got < n {
		t.Fatalf("%s: %d lines after 10s; want %d:\n%s", what, got, n, strings.Join(l.get(), "\n"))
	}
	return l.get()
}

// `sensor --tail -o ocsf` attached to a daemon prints OCSF and nothing else
// on stdout, and the same bytes for an event as the daemon's file exporter:
// one metadata.uid, one product version, one device name.
func TestTailOCSFAttachedIsTheFileExportersOCSF(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	cfg := config.Default()
	cfg.Export.UnixSocket = filepath.Join(t.TempDir(), "sensor.sock")
	ring := export.NewRing(64)
	status := func() *event.Status {
		return &event.Status{Ready: true, Fields: map[string]string{"version": "v9.9.9", "nvml": "replay"}}
	}
	srv, err := export.NewServer(cfg.Export, ring, export.Sources{Status: status},
		&export.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NodeName: "gpu-node-9"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() { cancel(); <-served }()

	stdout, stderr := newLines(), newLines()
	tailCtx, stopTail := context.WithCancel(ctx)
	tailed := make(chan error, 1)
	go func() {
		tailed <- runTail(tailCtx, cfg, &options{tail: true, output: "ocsf"}, stdout, stderr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	// The status line tells us the tail is attached at the ring's head.
	st := stderr.wait(t, 1, "status line on stderr")
	if !strings.Contains(st[0], `"kind":"status"`) {
		t.Fatalf("first stderr line %q; want the status line", st[0])
	}

	p := &event.Process{PID: 4242, PPID: 1, Comm: "python3", Exe: "/usr/bin/python3.11", Args: []string{"python3", "serve.py"},
		StartTime: time.Unix(1700000000, 0), Ancestors: []event.Ancestor{{PID: 1, Exe: "/sbin/init"}},
		Cwd: "/srv", UID: 1000, TID: 4243, NS: event.Namespaces{PID: 4026532001}}
	c := &event.Container{ID: strings.Repeat("ab", 32), Runtime: "containerd", Pod: "llm-0", Namespace: "ai",
		PodUID: "0f6a1c2e-5b3d-4e7f-9a10-7c2b3d4e5f60", Name: "vllm", Image: "vllm/vllm-openai:v0.6.3",
		Labels: map[string]string{"app": "llm"}, GPUs: []string{"GPU-1"}}
	now := time.Now()
	events := []*event.Event{
		{Kind: event.KindExec, Time: now, Process: p, Container: c},
		{Kind: event.KindGPU, Time: now, GPU: &event.GPU{Change: event.GPUStart, UUID: "GPU-1", PID: 4242, UsedBytes: 1 << 30}},
		{Kind: event.KindOpen, Time: now, Process: p, Container: c, File: &event.File{Path: "/models/m.safetensors",
			RawPath: "/models/m.safetensors", Flags: event.ORdonly, Result: -13, Size: -1, Syscall: "openat"}},
		{Kind: event.KindOpen, Time: now, Process: p, Container: c, File: &event.File{Path: "/models/m.safetensors",
			RawPath: "m.safetensors", PathSource: event.PathKernel, Flags: event.ORdonly, Result: 5, Size: 1 << 30, Inode: 77, Dev: 2049, Syscall: "openat2"}},
		{Kind: event.KindConnect, Time: now, Process: p, Container: c, Net: &event.Net{Protocol: "tcp",
			SAddr: netip.MustParseAddr("10.0.0.5"), SPort: 40000, DAddr: netip.MustParseAddr("10.9.9.9"), DPort: 443,
			Class: event.ClassExternal, Cookie: 7, Fd: 3}},
		{Kind: event.KindSyscall, Time: now, Process: p, Container: c, Sys: &event.Syscall{Name: "ptrace", Flags: 16, Target: 1, Ret: -1}},
		{Kind: event.KindLost, Time: now, Lost: &event.Lost{Source: "kernel_ringbuf", Count: 3}},
		{Kind: event.KindFinding, Time: now, Process: p, Container: c, Finding: &event.Finding{Rule: "ESC-004",
			Title: "t", Severity: event.SevCritical, MITRE: []string{"T1611"}, Explanation: "e"}},
	}
	for _, ev := range events {
		ring.Publish(ev)
	}
	const ocsfEvents = 6 // all but gpu and lost
	got := stdout.wait(t, ocsfEvents, "OCSF lines on stdout")
	stderr.wait(t, 3, "status, gpu and lost lines on stderr")
	stopTail()
	if err := <-tailed; err != nil {
		t.Fatalf("runTail: %v", err)
	}

	// The daemon's file exporter, configured as runDaemon configures it.
	path := filepath.Join(t.TempDir(), "events.ocsf.jsonl")
	fx, err := export.NewFileExporter(config.FileExport{Path: path, Format: config.FormatOCSF, MaxBytes: 1 << 20, Keep: 1},
		&export.FileOptions{OCSF: &export.OCSFOptions{Hostname: "gpu-node-9", ProductVersion: "v9.9.9", InstanceID: ring.InstanceID()}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if err := fx.Write(ev); err != nil {
			t.Fatal(err)
		}
	}
	fx.Close()
	want, err := readLines(path)
	if err != nil {
		t.Fatal(err)
	}
	schema, err := ocsfschema.OCSF180()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("tail printed %d OCSF lines, the file exporter wrote %d", len(got), len(want))
	}
	for i := range got {
		if r := schema.Validate([]byte(got[i])); !r.OK() {
			t.Errorf("stdout line %d is not valid OCSF: %v\n%s", i, r.All(), got[i])
		}
		if got[i] != want[i] {
			t.Errorf("line %d differs between --tail -o ocsf and the file exporter:\n tail: %s\n file: %s", i, got[i], want[i])
		}
		var m struct {
			Metadata struct {
				UID     string `json:"uid"`
				Product struct {
					Version string `json:"version"`
				} `json:"product"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(got[i]), &m); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.Metadata.UID, ring.InstanceID()+"-") || m.Metadata.Product.Version != "v9.9.9" {
			t.Errorf("line %d: metadata.uid %q, product.version %q; want the daemon's instance and version", i, m.Metadata.UID, m.Metadata.Product.Version)
		}
	}
	for _, l := range stderr.get() {
		if !strings.Contains(l, `"kind":"status"`) && !strings.Contains(l, `"kind":"gpu"`) && !strings.Contains(l, `"kind":"lost"`) {
			t.Errorf("stderr line %q; want only status, gpu and lost lines", l)
		}
	}
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out, sc.Err()
}
