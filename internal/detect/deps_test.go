package detect

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the floors of DESIGN.md §9: detect imports event
// and config, never runtime, gpu or export, and never cilium/ebpf.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
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
