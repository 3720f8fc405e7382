// Command gendoc writes the rule reference (docs/rules.md) from the rule
// registry: `make docs`, or `go generate ./internal/detect/rulesdoc`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kestrel-sec/kestrel/internal/detect/rulesdoc"
)

func main() {
	out := flag.String("o", "docs/rules.md", "file to write")
	flag.Parse()
	rules, err := rulesdoc.Catalog()
	if err == nil {
		err = os.WriteFile(*out, rulesdoc.Markdown(rules), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}
