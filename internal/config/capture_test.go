package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCaptureDefaults(t *testing.T) {
	c := Default().Capture
	if err := c.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	for _, want := range []string{".safetensors", ".gguf", ".onnx", ".pkl", ".ko", "/.aws/credentials", "/docker.sock"} {
		if !slices.Contains(c.WatchSuffixes, want) {
			t.Errorf("watch_suffixes lacks %q", want)
		}
	}
	for _, want := range []string{"/models/", "/dev/nvidia", "/proc/sys/kernel/core_pattern", "/etc/ld.so.preload", "/var/run/secrets/", "/proc/kcore"} {
		if !slices.Contains(c.WatchPrefixes, want) {
			t.Errorf("watch_prefixes lacks %q", want)
		}
	}
	for _, want := range []string{"release_agent", "notify_on_release"} {
		if !slices.Contains(c.WatchNames, want) {
			t.Errorf("watch_names lacks %q", want)
		}
	}
	if !slices.Contains(c.WatchProcEntries, "ns/") || !slices.Contains(c.WatchProcPidEntries, "environ") {
		t.Errorf("proc entries: %v / %v", c.WatchProcEntries, c.WatchProcPidEntries)
	}
	// Defaults are copies: changing a loaded config must not change them.
	c.WatchSuffixes[0] = "changed"
	if DefaultWatchSuffixes[0] == "changed" {
		t.Error("default suffix list is shared with a config")
	}
}

func TestCaptureParse(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
		check   func(t *testing.T, c CaptureConfig)
	}{
		{name: "override lists", yaml: `
capture:
  ring_buffer_bytes: 65536
  wakeup_bytes: 4096
  poll_interval: 20ms
  watch_prefixes: [/srv/models/]
  watch_suffixes: [.gguf]
  watch_names: [core_pattern]
  watch_proc_entries: []
  watch_proc_pid_entries: [mem]
`, check: func(t *testing.T, c CaptureConfig) {
			if c.RingBufferBytes != 65536 || c.WakeupBytes != 4096 || c.PollInterval.D() != 20*time.Millisecond {
				t.Errorf("got %+v", c)
			}
			if !slices.Equal(c.WatchPrefixes, []string{"/srv/models/"}) || !slices.Equal(c.WatchSuffixes, []string{".gguf"}) ||
				len(c.WatchProcEntries) != 0 || !slices.Equal(c.WatchProcPidEntries, []string{"mem"}) {
				t.Errorf("lists: %+v", c)
			}
		}},
		{name: "ring not a power of two", yaml: "capture: {ring_buffer_bytes: 5000}", wantErr: "capture.ring_buffer_bytes: 5000 is not a power of two"},
		{name: "wakeup above ring", yaml: "capture: {ring_buffer_bytes: 4096, wakeup_bytes: 8192}", wantErr: "capture.wakeup_bytes"},
		{name: "zero poll", yaml: "capture: {poll_interval: 0s}", wantErr: "capture.poll_interval"},
		{name: "relative prefix", yaml: "capture: {watch_prefixes: [models/]}", wantErr: `capture.watch_prefixes[0]: "models/" is not an absolute path`},
		{name: "long prefix", yaml: "capture: {watch_prefixes: [/" + strings.Repeat("a", 64) + "]}", wantErr: "longer than 64 bytes"},
		{name: "short suffix", yaml: "capture: {watch_suffixes: [.h]}", wantErr: `capture.watch_suffixes[0]: ".h" is shorter than 3 bytes`},
		{name: "long suffix", yaml: "capture: {watch_suffixes: [" + strings.Repeat("a", 33) + "]}", wantErr: "longer than 32 bytes"},
		{name: "name with slash", yaml: "capture: {watch_names: [a/b]}", wantErr: "must not contain '/'"},
		{name: "empty name", yaml: `capture: {watch_names: [""]}`, wantErr: "capture.watch_names[0]: empty"},
		{name: "long proc entry", yaml: "capture: {watch_proc_pid_entries: [" + strings.Repeat("a", 17) + "]}", wantErr: "capture.watch_proc_pid_entries[0]"},
		{name: "unknown key", yaml: "capture: {watch_everything: true}", wantErr: "watch_everything"},
		{name: "negative repeat window", yaml: "capture: {open_repeat_window: -1s}", wantErr: "capture.open_repeat_window: -1s is not between 0"},
		{name: "repeat window off", yaml: "capture: {open_repeat_window: 0s}", check: func(t *testing.T, c CaptureConfig) {
			if c.OpenRepeatWindow != 0 {
				t.Errorf("open_repeat_window = %s", c.OpenRepeatWindow.D())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(strings.NewReader(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg.Capture)
		})
	}
}
