package config

import (
	"bytes"
	"testing"
)

// FuzzParse feeds arbitrary YAML to the config parser: it must return a
// config or an error, never panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "log_level: debug\n", "capture:\n  ring_buffer_bytes: 4096\n",
		"detect:\n  rules:\n    ESC-001: {enabled: false, severity: high}\n",
		"export:\n  tcp_listen: ':9000'\n", "gpu:\n  source: replay\n  replay_file: /x.json\n",
		"context:\n  pod_cidrs: ['10.0.0.0/8', 'bogus']\n", "{", "- [a, b]\n", "capture: !!binary aGVsbG8=\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(bytes.NewReader(data))
		if err == nil && cfg == nil {
			t.Fatal("nil config without an error")
		}
		if err == nil {
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that Validate rejects: %v", verr)
			}
		}
	})
}
