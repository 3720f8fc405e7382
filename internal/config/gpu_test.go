package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestGPUDefaults(t *testing.T) {
	c := Default().GPU
	if c.Source != GPUSourceNVML {
		t.Errorf("source: got %q; want %q", c.Source, GPUSourceNVML)
	}
	if c.Interval.D() != time.Second {
		t.Errorf("interval: got %s; want 1s", c.Interval.D())
	}
	if c.PodResourcesSocket != DefaultPodResourcesSocket {
		t.Errorf("podresources_socket: got %q; want %q", c.PodResourcesSocket, DefaultPodResourcesSocket)
	}
	if c.UpdateMinBytes == 0 {
		t.Error("update_min_bytes: got 0; want a noise floor")
	}
	if err := c.validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestGPUParse(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string // substring; "" means success
		check   func(t *testing.T, c GPUConfig)
	}{
		{
			name: "replay with static alloc (harness config)",
			yaml: `
gpu:
  source: replay
  replay_file: /run/kestrel/gpu.json
  interval: 500ms
  update_min_bytes: 1048576
  podresources_socket: ""
  static_alloc:
    '^/simctr-infer-': [0]
    '^/simctr-(sidecar|nogpu|build|agent)-': []
`,
			check: func(t *testing.T, c GPUConfig) {
				if c.Source != GPUSourceReplay || c.ReplayFile != "/run/kestrel/gpu.json" {
					t.Errorf("got source %q file %q", c.Source, c.ReplayFile)
				}
				if c.Interval.D() != 500*time.Millisecond {
					t.Errorf("interval: got %s; want 500ms", c.Interval.D())
				}
				if c.UpdateMinBytes != 1<<20 {
					t.Errorf("update_min_bytes: got %d; want %d", c.UpdateMinBytes, 1<<20)
				}
				want := map[string][]int{
					"^/simctr-infer-":                       {0},
					"^/simctr-(sidecar|nogpu|build|agent)-": {},
				}
				if !reflect.DeepEqual(c.StaticAlloc, want) {
					t.Errorf("static_alloc: got %v; want %v", c.StaticAlloc, want)
				}
			},
		},
		{
			name: "off",
			yaml: "gpu:\n  source: off\n",
			check: func(t *testing.T, c GPUConfig) {
				if c.Source != GPUSourceOff {
					t.Errorf("source: got %q; want off", c.Source)
				}
			},
		},
		{name: "unknown source", yaml: "gpu:\n  source: dcgm\n", wantErr: `gpu.source: "dcgm" is not one of nvml, replay, off`},
		{name: "replay without file", yaml: "gpu:\n  source: replay\n", wantErr: "gpu.replay_file: required"},
		{name: "interval too slow", yaml: "gpu:\n  interval: 5s\n", wantErr: "gpu.interval: 5s is outside"},
		{name: "interval too fast", yaml: "gpu:\n  interval: 10ms\n", wantErr: "gpu.interval: 10ms is outside"},
		{name: "refresh too fast", yaml: "gpu:\n  podresources_refresh: 10ms\n", wantErr: "gpu.podresources_refresh"},
		{name: "bad regex", yaml: "gpu:\n  static_alloc:\n    '^/x(': [0]\n", wantErr: `gpu.static_alloc: pattern "^/x("`},
		{name: "negative index", yaml: "gpu:\n  static_alloc:\n    '^/x': [-1]\n", wantErr: "GPU index -1 is outside"},
		{name: "empty pattern", yaml: "gpu:\n  static_alloc:\n    '': [0]\n", wantErr: "gpu.static_alloc: empty pattern"},
		{name: "unknown key", yaml: "gpu:\n  sourc: nvml\n", wantErr: "sourc"},
		{name: "not a duration", yaml: "gpu:\n  interval: fast\n", wantErr: "not a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(strings.NewReader(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			tt.check(t, cfg.GPU)
		})
	}
}
