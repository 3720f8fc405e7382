package gpu

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportShape keeps the package on the middle floor (docs/architecture.md): it
// may import event and config, never runtime, detect, export or the eBPF
// library.
func TestImportShape(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{
		"github.com/kestrel-sec/kestrel/internal/runtime",
		"github.com/kestrel-sec/kestrel/internal/detect",
		"github.com/kestrel-sec/kestrel/internal/export",
		"github.com/kestrel-sec/kestrel/internal/pipeline",
		"github.com/kestrel-sec/kestrel/cmd",
		"github.com/cilium/ebpf",
	}
	fset := token.NewFileSet()
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range af.Imports {
			path := strings.Trim(imp.Path.Value, `"`)
			for _, bad := range forbidden {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %s: internal/gpu must not depend on it", f, path)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}
