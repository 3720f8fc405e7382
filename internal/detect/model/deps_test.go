package model

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package on its floor: internal/event, internal/config
// and the standard library only, plus golang.org/x/sys/unix for the
// hasher's openat2 (the syscall package has none).
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case p == "github.com/kestrel-sec/kestrel/internal/event", p == "github.com/kestrel-sec/kestrel/internal/config",
				p == "golang.org/x/sys/unix":
			case !strings.Contains(strings.SplitN(p, "/", 2)[0], "."):
				// standard library
			default:
				t.Errorf("%s imports %s; the model package may import only internal/event, internal/config, golang.org/x/sys/unix and the standard library", name, p)
			}
		}
	}
}
