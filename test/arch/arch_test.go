// Tests of package arch guard the shape of the code base (docs/architecture.md): the middle
// floor (runtime, gpu, detect, export) never imports itself across packages,
// the kernel library stays out of the pure packages, and every package says
// what it is for.
package arch

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/kestrel-sec/kestrel/"

type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "-deps=false", "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	for i := range pkgs {
		deps, err := exec.Command("go", "list", "-deps", pkgs[i].ImportPath).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkgs[i].ImportPath, err)
		}
		pkgs[i].Deps = strings.Fields(string(deps))
	}
	return pkgs
}

// floor returns the middle-floor component a package belongs to, or "".
func floor(path string) string {
	if !strings.HasPrefix(path, module) {
		return ""
	}
	rel := strings.TrimPrefix(path, module)
	for _, m := range []string{"internal/runtime", "internal/gpu", "internal/detect", "internal/export"} {
		if rel == m || strings.HasPrefix(rel, m+"/") {
			return m
		}
	}
	return ""
}

func TestMiddleFloorDoesNotImportItself(t *testing.T) {
	for _, p := range listPackages(t) {
		from := floor(p.ImportPath)
		if from == "" {
			continue
		}
		for _, d := range p.Deps {
			if to := floor(d); to != "" && to != from {
				t.Errorf("%s imports %s: the middle floor talks only through internal/event (docs/architecture.md)", p.ImportPath, d)
			}
		}
	}
}

func TestPureFloorsStayOffTheKernel(t *testing.T) {
	pure := []string{"internal/event", "internal/config", "internal/detect", "internal/export", "internal/pipeline"}
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, module)
		for _, want := range pure {
			if rel != want && !strings.HasPrefix(rel, want+"/") {
				continue
			}
			for _, d := range p.Deps {
				if strings.HasPrefix(d, "github.com/cilium/ebpf") || strings.HasPrefix(d, "github.com/NVIDIA/go-nvml") {
					t.Errorf("%s depends on %s: decoders, rules and renderers must be testable without the kernel or the driver", p.ImportPath, d)
				}
			}
		}
		if rel == "internal/event" {
			for _, d := range p.Imports {
				if strings.HasPrefix(d, module) {
					t.Errorf("internal/event imports %s: the vocabulary imports nothing of ours", d)
				}
			}
		}
	}
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.Name == "main" && p.Doc == "" {
			t.Errorf("command %s has no doc comment", p.ImportPath)
		} else if p.Doc == "" {
			t.Errorf("package %s has no package doc comment", p.ImportPath)
		}
	}
}
