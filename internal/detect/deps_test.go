package detect

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the floors of docs/architecture.md: detect imports event
// and config, never runtime, gpu or export, and never cilium/ebpf.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if errors.Is(err, exec.ErrNotFound) {
		t.Skipf("go list unavailable: %v", err)
	}
	if err != nil {
		// A failing go list must not pass the check by skipping it.
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/cilium/ebpf",
			"github.com/kestrel-sec/kestrel/internal/runtime",
			"github.com/kestrel-sec/kestrel/internal/gpu",
			"github.com/kestrel-sec/kestrel/internal/export",
		} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("internal/detect depends on %s", dep)
			}
		}
	}
}
