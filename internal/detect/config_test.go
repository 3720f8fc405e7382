package detect

import (
	"os"
	"strings"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/config"
)

// TestHarnessConfig parses the harness's detect section through the real
// config loader and builds an engine from it.
func TestHarnessConfig(t *testing.T) {
	raw, err := os.ReadFile("testdata/harness.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(strings.NewReader(strings.ReplaceAll(string(raw), "$H", "/tmp/ebpfh.Q1")))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	e, err := New(cfg.Detect, &Options{HostNS: hostNS})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s := e.Settings()
	if !s.IsRuntime("/tmp/ebpfh.Q1/bin/runc") || !s.InModelRoot("/tmp/ebpfh.Q1/hf/hub/models--a--b/blobs/x") {
		t.Errorf("harness knobs not applied: runtime=%v model_root=%v", s.IsRuntime("/tmp/ebpfh.Q1/bin/runc"),
			s.InModelRoot("/tmp/ebpfh.Q1/hf/hub/models--a--b/blobs/x"))
	}
	if !s.MatchesInferenceSelector(ctr("simctr-infer-a1")) || s.MatchesInferenceSelector(ctr("simctr-sidecar-a4")) {
		t.Errorf("inference_selector does not follow the cgroup regex")
	}
	if len(e.Rules()) < len(requiredRules) {
		t.Errorf("%d rules enabled; want at least %d", len(e.Rules()), len(requiredRules))
	}
}
