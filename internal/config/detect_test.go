package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDetectDefaults(t *testing.T) {
	c := Default().Detect
	if err := c.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if got, want := c.ExfilWindow.D(), 600*time.Second; got != want {
		t.Errorf("exfil_window = %s; want %s", got, want)
	}
	if got, want := c.PromoteGrace.D(), 300*time.Second; got != want {
		t.Errorf("promote_grace = %s; want %s", got, want)
	}
	if got, want := c.StartupGrace.D(), 600*time.Second; got != want {
		t.Errorf("startup_grace = %s; want %s", got, want)
	}
	if got, want := c.ExfilBytesThreshold, int64(256<<20); got != want {
		t.Errorf("exfil_bytes_threshold = %d; want %d", got, want)
	}
	if got, want := c.ModelMinBytes, int64(1<<20); got != want {
		t.Errorf("model_min_bytes = %d; want %d", got, want)
	}
	if len(c.UMHAllowlist) == 0 || len(c.ModelRoots) == 0 || len(c.GPUChildAllowlist) == 0 {
		t.Errorf("default allowlists are empty: %+v", c)
	}
}

func TestDetectParseHarness(t *testing.T) {
	const doc = `
detect:
  rules:
    ESC-010: {enabled: false}
    EXE-003: {severity: medium, allow_exe: ['^/usr/bin/tmux$']}
  inference_selector: {cgroup_regex: '^/simctr-infer-'}
  gpu_agent_allowlist: {cgroup_regex: '^/simctr-agent-', host_exe: ['nvidia-smi', 'nv-hostengine', 'dcgm-exporter']}
  runtime_binaries_extra: ['/tmp/h/bin/runc']
  model_roots: ['/tmp/h/models', '/tmp/h/hf/hub']
  model_min_bytes: 1048576
  model_updaters: {'^/simctr-build-': ['curl'], host: ['python3 */mkmodel.py']}
  egress_allowlist: {'^/simctr-infer-': ['10.200.1.0/24'], '^/simctr-build-': ['10.200.1.1/32:8080'], '*': ['127.0.0.0/8', '[fd00::/8]:443']}
  exfil_window: 120s
  promote_grace: 60s
  startup_grace: 30s
  exfil_bytes_threshold: 4194304
`
	cfg, err := Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	d := cfg.Detect
	if d.Rules["ESC-010"].Enabled == nil || *d.Rules["ESC-010"].Enabled {
		t.Errorf("ESC-010 enabled = %v; want false", d.Rules["ESC-010"].Enabled)
	}
	if got := d.Rules["EXE-003"].Severity; got != "medium" {
		t.Errorf("EXE-003 severity = %q; want medium", got)
	}
	if got := d.InferenceSelector.CgroupRegex; len(got) != 1 || got[0] != "^/simctr-infer-" {
		t.Errorf("inference_selector.cgroup_regex = %q", got)
	}
	if got := d.ExfilWindow.D(); got != 120*time.Second {
		t.Errorf("exfil_window = %s; want 2m0s", got)
	}
	if got := d.EgressAllowlist["^/simctr-build-"]; len(got) != 1 || got[0] != "10.200.1.1/32:8080" {
		t.Errorf("egress_allowlist = %v", d.EgressAllowlist)
	}
	// Defaults not named in the file survive.
	if len(d.UMHAllowlist) != len(DefaultUMHAllowlist) {
		t.Errorf("umh_allowlist lost its default: %v", d.UMHAllowlist)
	}
}

func TestDetectRejects(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown key", "detect:\n  no_such_knob: 1\n", "no_such_knob"},
		{"unknown rule key", "detect:\n  rules:\n    ESC-001: {enabeld: false}\n", "enabeld"},
		{"bad rule id", "detect:\n  rules:\n    esc1: {enabled: false}\n", `rules: "esc1" is not a rule id`},
		{"bad severity", "detect:\n  rules:\n    ESC-001: {severity: urgent}\n", "rules.ESC-001.severity"},
		{"bad allow regex", "detect:\n  rules:\n    ESC-001: {allow_exe: ['(']}\n", "rules.ESC-001.allow_exe[0]"},
		{"bad duration", "detect:\n  exfil_window: 10\n", "not a duration"},
		{"negative grace", "detect:\n  startup_grace: -1s\n", "startup_grace"},
		{"zero window", "detect:\n  aggregate_window: 0s\n", "aggregate_window"},
		{"idle beyond window", "detect:\n  aggregate_window: 10s\n  aggregate_idle: 20s\n", "aggregate_idle"},
		{"bad cidr", "detect:\n  egress_allowlist: {'*': ['10.0.0.0/33']}\n", "egress_allowlist.*[0]"},
		{"bad port", "detect:\n  egress_allowlist: {'*': ['10.0.0.0/8:99999']}\n", "port"},
		{"bad workload key", "detect:\n  loader_allowlist: {'image=(': ['x']}\n", "loader_allowlist"},
		{"bad image allowlist key", "detect:\n  container_image_allowlist: {nope: ['x']}\n", "container_image_allowlist"},
		{"relative model root", "detect:\n  model_roots: [models]\n", "model_roots[0]"},
		{"relative runtime socket", "detect:\n  runtime_sockets_extra: [run/docker.sock]\n", "runtime_sockets_extra[0]"},
		{"bad runtime socket glob", "detect:\n  runtime_sockets_extra: ['/run/[x.sock']\n", "runtime_sockets_extra[0]"},
		{"negative min bytes", "detect:\n  model_min_bytes: -1\n", "model_min_bytes"},
		{"zero threshold", "detect:\n  exfil_bytes_threshold: 0\n", "exfil_bytes_threshold"},
		{"state size", "detect:\n  state_size: 1\n", "state_size"},
		{"empty umh", "detect:\n  umh_allowlist: ['']\n", "umh_allowlist[0]"},
		{"selector regex", "detect:\n  inference_selector: {images: ['[']}\n", "inference_selector.images[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.doc))
			if err == nil {
				t.Fatalf("Parse accepted %q", tc.doc)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestParseDestination(t *testing.T) {
	for _, tc := range []struct {
		in   string
		addr string
		port uint16
		want bool
	}{
		{"10.200.1.0/24", "10.200.1.7", 80, true},
		{"10.200.1.0/24", "10.200.2.7", 80, false},
		{"10.200.1.1/32:8080", "10.200.1.1", 8080, true},
		{"10.200.1.1/32:8080", "10.200.1.1", 80, false},
		{"10.0.0.1", "10.0.0.1", 1, true},
		{"10.0.0.1:53", "10.0.0.1", 53, true},
		{"[fd00::/8]:443", "fd00::1", 443, true},
		{"[fd00::/8]:443", "fd00::1", 80, false},
		{"::1/128", "::1", 9, true},
		{"127.0.0.0/8", "::ffff:127.0.0.1", 9, true},
		{"[::ffff:10.0.0.1]:443", "10.0.0.1", 443, true},
		{"::ffff:10.0.0.0/104", "10.0.0.5", 1, true},
	} {
		d, err := ParseDestination(tc.in)
		if err != nil {
			t.Fatalf("ParseDestination(%q): %v", tc.in, err)
		}
		if got := d.Contains(netip.MustParseAddr(tc.addr), tc.port); got != tc.want {
			t.Errorf("%q contains %s:%d = %v; want %v", tc.in, tc.addr, tc.port, got, tc.want)
		}
	}
	for _, bad := range []string{"", "x", "10.0.0.0/8:0", "[fd00::", "[::1]x", "10.0.0.0/40"} {
		if _, err := ParseDestination(bad); err == nil {
			t.Errorf("ParseDestination(%q) accepted", bad)
		}
	}
}
