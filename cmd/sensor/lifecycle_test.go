package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export"
)

// fakeDaemon is the daemon's real feed (export.Server over a ring) on a
// temp socket, without the kernel side.
type fakeDaemon struct {
	sock   string
	ring   *export.Ring
	cancel context.CancelFunc
	done   chan error
}

func startFakeDaemon(t *testing.T, mutate func(*config.ExportConfig)) *fakeDaemon {
	t.Helper()
	cfg := config.Default().Export
	cfg.UnixSocket = filepath.Join(t.TempDir(), "sensor.sock")
	if mutate != nil {
		mutate(&cfg)
	}
	ring := export.NewRing(64)
	srv, err := export.NewServer(cfg, ring, export.Sources{Status: func() *event.Status {
		return &event.Status{Ready: true, Fields: map[string]string{"nvml": "disabled: gpu.source is off"}}
	}}, &export.Options{Logger: slog.New(slog.DiscardHandler), NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &fakeDaemon{sock: cfg.UnixSocket, ring: ring, cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-d.done })
	return d
}

// lineWriter collects what --tail prints, line by line.
type lineWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *lineWriter) lines() []map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(w.buf.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Issue 14: when the daemon died, an attached --tail printed nothing and
// went on waiting. It says so in the stream and exits non-zero.
func TestTailSaysWhenTheDaemonGoesAway(t *testing.T) {
	d := startFakeDaemon(t, nil)
	var out, errb lineWriter
	code := make(chan int, 1)
	go func() { code <- run([]string{"--tail", "-o", "json", "--socket", d.sock}, &out, &errb) }()
	waitUntil(t, "the attached status line", func() bool { return len(out.lines()) >= 1 })
	d.ring.Publish(&event.Event{Kind: event.KindExec, Time: time.Now(), Process: &event.Process{PID: 9, Exe: "/bin/\xffsh"}})
	waitUntil(t, "the event", func() bool { return len(out.lines()) >= 2 })
	d.cancel()
	select {
	case c := <-code:
		if c != 1 {
			t.Errorf("exit code %d; want 1", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--tail did not exit after the daemon went away")
	}
	lines := out.lines()
	last := lines[len(lines)-1]
	if last["kind"] != "status" || last["ready"] != false || !strings.Contains(last["message"].(string), "the daemon went away") {
		t.Errorf("last line %v; want a status line saying the daemon went away", last)
	}
	if got := lines[1]["process"].(map[string]any)["exe_b64"]; got != "L2Jpbi//c2g=" {
		t.Errorf("exec line exe_b64 = %v; want the exact bytes of /bin/\\xffsh", got)
	}
	if !strings.Contains(errb.buf.String(), "went away") {
		t.Errorf("stderr %q; want the reason", errb.buf.String())
	}
}

// ... and when the daemon refuses the feed (no free subscriber slot).
func TestTailSaysWhenTheDaemonRefusesIt(t *testing.T) {
	d := startFakeDaemon(t, func(c *config.ExportConfig) { c.MaxSubscribers = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := export.Dial(ctx, d.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go c.Subscribe(ctx, export.Filters{}, nil, func(*event.Event) {})
	waitUntil(t, "the slot taken", func() bool {
		st, err := c.Status(ctx)
		return err == nil && len(st.GetSubscribers()) == 1
	})
	var out, errb lineWriter
	code := make(chan int, 1)
	go func() { code <- run([]string{"--tail", "-o", "json", "--socket", d.sock}, &out, &errb) }()
	select {
	case c := <-code:
		if c != 1 {
			t.Fatalf("exit code %d; want 1 (stderr %q)", c, errb.buf.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--tail still running 10s after the daemon refused it (retrying in silence)")
	}
	lines := out.lines()
	last := lines[len(lines)-1]
	if last["kind"] != "status" || !strings.Contains(last["message"].(string), "the daemon refused the feed") ||
		!strings.Contains(last["message"].(string), "max_subscribers") {
		t.Errorf("last line %v; want a status line saying the daemon refused the feed and why", last)
	}
}

// Issue 14: some config errors exited 1 after BPF was loaded. Every config
// error exits 2, before anything is loaded (these are found by the stages
// that take the config, not by the parser).
func TestConfigErrorsFoundByStagesExitTwo(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"unknown rule id", "detect:\n  rules:\n    NOPE-001: {enabled: false}\n", "rules.NOPE-001"},
		{"TLS files that do not exist", "export:\n  tcp_listen: 127.0.0.1:0\n  tls: {cert: " + dir + "/no.crt, key: " + dir + "/no.key, client_ca: " + dir + "/no.ca}\n", "no.crt"},
		{"export file in an unwritable place", "export:\n  file: {path: /proc/kestrel/x.jsonl}\n", "export"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "c.yaml")
			os.WriteFile(cfg, []byte("gpu: {source: \"off\"}\ncontext: {cri_socket: \"off\"}\n"+tt.yaml), 0o600)
			var out, errb bytes.Buffer
			if code := run([]string{"--config", cfg, "--socket", sock}, &out, &errb); code != 2 {
				t.Fatalf("exit code %d; want 2 (stderr %q)", code, errb.String())
			}
			if !strings.Contains(errb.String(), tt.want) {
				t.Errorf("stderr %q; want it to name %q", errb.String(), tt.want)
			}
			if _, err := os.Stat(sock); err == nil {
				t.Error("the socket was left behind")
			}
		})
	}
}

// Issue 14: SIGHUP killed the daemon and left a stale socket. It reloads
// what can be reloaded; SIGTERM stops; a stop that hangs past the grace
// period exits the process anyway.
func TestSignals(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	sigs := make(chan os.Signal, 4)
	done := make(chan struct{})
	defer close(done)
	var mu sync.Mutex
	reloads, cancels, exits := 0, 0, []int{}
	exit = func(code int) { mu.Lock(); exits = append(exits, code); mu.Unlock() }
	defer func() { exit = os.Exit }()
	count := func() (int, int, int) { mu.Lock(); defer mu.Unlock(); return reloads, cancels, len(exits) }
	go handleSignals(sigs, done, func() { mu.Lock(); cancels++; mu.Unlock() }, log, true,
		func() { mu.Lock(); reloads++; mu.Unlock() }, 100*time.Millisecond)

	sigs <- syscall.SIGHUP
	sigs <- syscall.SIGHUP
	waitUntil(t, "two reloads", func() bool { r, _, _ := count(); return r == 2 })
	if _, c, e := count(); c != 0 || e != 0 {
		t.Fatalf("SIGHUP cancelled %d times and exited %d times; want neither", c, e)
	}
	sigs <- syscall.SIGTERM
	waitUntil(t, "the cancel", func() bool { _, c, _ := count(); return c == 1 })
	// Nothing stops within the grace period: the process exits anyway.
	waitUntil(t, "the forced exit", func() bool { _, _, e := count(); return e == 1 })
	mu.Lock()
	if exits[0] != 1 {
		t.Errorf("exit code %d; want 1", exits[0])
	}
	mu.Unlock()
}

func TestReloadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte("log_level: info\n"), 0o600)
	o := &options{config: path}
	running, err := loadConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	level := new(slog.LevelVar)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	os.WriteFile(path, []byte("log_level: debug\ncapture: {poll_interval: 20ms}\n"), 0o600)
	reloadConfig(o, running, level, log)
	if level.Level() != slog.LevelDebug {
		t.Errorf("level %v after reload; want debug", level.Level())
	}
	if !strings.Contains(logs.String(), "sections=capture") {
		t.Errorf("log %q; want the capture change named as needing a restart", logs.String())
	}
	logs.Reset()
	os.WriteFile(path, []byte("log_level: loud\n"), 0o600)
	reloadConfig(o, running, level, log)
	if level.Level() != slog.LevelDebug || !strings.Contains(logs.String(), "the running one stays") {
		t.Errorf("a bad config changed the level to %v or was not reported: %q", level.Level(), logs.String())
	}
}

// The listen flags win over the file, at start and again on SIGHUP: a reload
// of an unchanged file must not see the flag's address as an export change.
func TestListenFlagsOverrideTheConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("export: {health_listen: ':9876'}\nmetrics: {listen: ':2112'}\n"), 0o600)
	o, err := parseArgs([]string{"--config", path, "--health-listen=[10.1.2.3]:9876", "--metrics-listen="})
	if err != nil {
		t.Fatal(err)
	}
	running, err := loadConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	if running.Export.HealthListen != "[10.1.2.3]:9876" || running.Metrics.Listen != "" {
		t.Errorf("health_listen %q, metrics.listen %q; want the flags' [10.1.2.3]:9876 and off",
			running.Export.HealthListen, running.Metrics.Listen)
	}
	var logs bytes.Buffer
	reloadConfig(o, running, new(slog.LevelVar), slog.New(slog.NewTextHandler(&logs, nil)))
	if !strings.Contains(logs.String(), "configuration reloaded") {
		t.Errorf("reload of the same file and flags: %q; want no section to restart", logs.String())
	}
}
