//go:build !cgo

package gpu

import (
	"errors"
	"strings"
	"testing"
)

func TestNewSamplerWithoutCgo(t *testing.T) {
	s, err := NewSampler(testConfig(), nil)
	if !errors.Is(err, ErrNoDriver) || !strings.Contains(err.Error(), "built without cgo") {
		t.Fatalf("got %v; want ErrNoDriver saying NVML is not compiled in", err)
	}
	if s.Enabled() || !strings.Contains(s.State(), "not compiled in") {
		t.Errorf("got enabled=%v state %q; want a disabled sampler saying why", s.Enabled(), s.State())
	}
}
