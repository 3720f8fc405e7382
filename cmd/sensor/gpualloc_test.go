package main

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/gpu"
)

func TestGPUAllocStaticThenPod(t *testing.T) {
	cfg := config.Default().GPU
	cfg.Source = config.GPUSourceOff
	cfg.PodResourcesSocket = filepath.Join(t.TempDir(), "absent.sock")
	cfg.StaticAlloc = map[string][]int{"^/simctr-infer-": {0, 1}, "^/simctr-sidecar-": {}}
	a, err := gpu.NewAssigner(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	s, _ := gpu.NewSampler(cfg, nil)
	g := gpuAlloc{assigner: a, sampler: s}

	// A static allocation resolves to the UUIDs the sampler will use even
	// before it has seen the devices.
	got := g.GPUsFor(&event.Container{CgroupPath: "/simctr-infer-a1"})
	if want := []string{gpu.SyntheticUUID(0), gpu.SyntheticUUID(1)}; !slices.Equal(got, want) {
		t.Fatalf("infer container: got %v; want %v", got, want)
	}
	// An explicit empty allocation is "given none", not "unknown".
	if got := g.GPUsFor(&event.Container{CgroupPath: "/simctr-sidecar-a4"}); got == nil || len(got) != 0 {
		t.Fatalf("sidecar: got %#v; want a non-nil empty list", got)
	}
	// No static match and no pod metadata: unknown.
	if got := g.GPUsFor(&event.Container{CgroupPath: "/kubepods/x", Pod: event.Unknown}); got != nil {
		t.Fatalf("unknown pod: got %v; want nil", got)
	}
}
