package model

import (
	"slices"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

func TestNewMatcherFromConfig(t *testing.T) {
	c := config.Default().Detect
	m, err := NewMatcherFromConfig(&c)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.IsModel("", "/models/a/x.pkl", 2<<20); !ok {
		t.Error("default roots: /models/a/x.pkl is not a model")
	}
	if ok, r := m.IsModel("", "/models/a/x.pkl", 1000); ok || r != ReasonBelowMinSize {
		t.Errorf("default gate: got %t, %q; want false, %q", ok, r, ReasonBelowMinSize)
	}
	c.ModelMinBytes = 0
	c.ModelRoots = []string{"/srv/m"}
	if m, err = NewMatcherFromConfig(&c); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.IsModel("", "/srv/m/x.pkl", 10); !ok {
		t.Error("model_min_bytes 0 should turn the gate off")
	}
	c.ModelRoots = []string{"/a/[x"}
	if _, err := NewMatcherFromConfig(&c); err == nil {
		t.Error("bad root pattern accepted")
	}
}

func TestRootsFromEnv(t *testing.T) {
	env := []event.EnvVar{
		{Name: "HF_HOME", Value: "/data/hf"},
		{Name: "PATH", Value: "/usr/bin"},
		{Name: "HF_HUB_CACHE", Value: "/data/hf"},
		{Name: "MODEL_PATH", Value: "relative/model"},
		{Name: "OLLAMA_MODELS", Value: "/srv/ollama"},
		{Name: "HF_TOKEN", Value: "sha256:abcd"},
	}
	if got, want := RootsFromEnv(env), []string{"/data/hf", "/srv/ollama"}; !slices.Equal(got, want) {
		t.Errorf("RootsFromEnv = %q; want %q", got, want)
	}
}

// The kernel sends only the environment variables on the capture
// allowlist: a root name off it would never reach RootsFromEnv.
func TestRootEnvNamesAreCaptured(t *testing.T) {
	for _, n := range RootEnvNames {
		if !event.EnvCaptured(n) {
			t.Errorf("%s names model roots but is not in event's environment capture allowlist", n)
		}
	}
}
