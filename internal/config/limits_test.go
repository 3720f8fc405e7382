package config

import (
	"strings"
	"testing"
)

// Issue 14: a config over 4 MiB was read in part, so keys after the cut
// (an unknown one included) were silently ignored.
func TestParseRejectsOversizedConfig(t *testing.T) {
	pad := "# " + strings.Repeat("x", 1000) + "\n"
	body := strings.Repeat(pad, (MaxConfigBytes/len(pad))+1) + "capture:\n  no_such_key: 1\n"
	_, err := Parse(strings.NewReader(body))
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Parse(%d bytes) = %v; want an error saying the config is too large", len(body), err)
	}
	// Exactly at the bound is read whole.
	ok := "log_level: warn\n"
	ok = strings.Repeat("#", MaxConfigBytes-len(ok)-1) + "\n" + ok
	cfg, err := Parse(strings.NewReader(ok))
	if err != nil || cfg.LogLevel != "warn" {
		t.Fatalf("Parse(%d bytes) = %v, %v; want it read whole", len(ok), cfg, err)
	}
}

// Issue 14: ring_buffer_bytes: 4096.5 read as 4096.
func TestParseRejectsNonIntegers(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"capture:\n  ring_buffer_bytes: 4096.5\n", "capture.ring_buffer_bytes: line 2: 4096.5 is not an integer"},
		{"capture:\n  ring_buffer_bytes: 4096.0\n", "capture.ring_buffer_bytes: line 2: 4096.0 is not an integer"},
		{"export:\n  max_subscribers: 1e1\n", "export.max_subscribers: line 2: 1e1 is not an integer"},
		{"export:\n  file:\n    max_bytes: 1.5e6\n", "export.file.max_bytes"},
		{"gpu:\n  static_alloc:\n    'llm-.*': [0, 1.5]\n", "gpu.static_alloc.llm-.*[1]"},
		{"context:\n  process_table_size: &n 65536.5\n", "context.process_table_size"},
	} {
		_, err := Parse(strings.NewReader(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v; want an error containing %q", tt.yaml, err, tt.want)
		}
	}
	// Integers in every spelling YAML has for them still read.
	cfg, err := Parse(strings.NewReader("capture:\n  ring_buffer_bytes: 0x1000\n  wakeup_bytes: 1_024\n"))
	if err != nil || cfg.Capture.RingBufferBytes != 4096 || cfg.Capture.WakeupBytes != 1024 {
		t.Fatalf("hex and underscored integers: %v, %+v", err, cfg)
	}
}

// Issue 14: poll_interval: 2562047h made the daemon ignore SIGTERM. Every
// duration and size has bounds.
func TestParseBoundsDurationsAndSizes(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"capture:\n  poll_interval: 2562047h\n", "poll_interval: 2562047h0m0s is outside [1ms, 10s]"},
		{"capture:\n  poll_interval: -1s\n", "poll_interval"},
		{"capture:\n  egress_report_interval: 1000h\n", "egress_report_interval"},
		{"capture:\n  ring_buffer_bytes: 2199023255552\n", "ring_buffer_bytes"},
		{"context:\n  cri_cache_ttl: 9999h\n", "cri_cache_ttl"},
		{"export:\n  subscriber_deadline: 2562047h\n", "subscriber_deadline"},
		{"export:\n  heartbeat_interval: 1ns\n", "heartbeat_interval"},
		{"export:\n  idle_timeout: 100000h\n", "idle_timeout"},
		{"export:\n  handshake_timeout: 0s\n", "handshake_timeout"},
		{"export:\n  max_filters: 0\n", "max_filters"},
		{"export:\n  max_connections: 10\n", "max_connections"},
		{"export:\n  max_filter_cost: 300000\n", "max_filter_cost"},
		{"export:\n  file:\n    path: /var/log/k.jsonl\n    max_bytes: 9223372036854775807\n", "file.max_bytes"},
	} {
		_, err := Parse(strings.NewReader(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v; want an error containing %q", tt.yaml, err, tt.want)
		}
	}
}

func TestParseRejectsASecondDocument(t *testing.T) {
	_, err := Parse(strings.NewReader("log_level: info\n---\nnot_a_key: 1\n"))
	if err == nil || !strings.Contains(err.Error(), "second YAML document") {
		t.Fatalf("got %v; want the second document refused", err)
	}
}
