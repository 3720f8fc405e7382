// Command gensubset writes the OCSF schema subset that package ocsfschema
// embeds: the classes Kestrel emits and every object they reach, cut from
// the output of the OCSF schema compiler. See ../ocsf-1.8.0/README.md.
//
// Usage:
//
//	go run ./internal/export/ocsfschema/gensubset -compiled schema.json \
//	    -classes 1001,1002,1003,1007,2004,4001 -schema-sha256 <sha256 of the schema tarball> \
//	    -compiler 'ocsf-schema-compiler 0.9.2 -i' -o internal/export/ocsfschema/ocsf-1.8.0/schema.json
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kestrel-sec/kestrel/internal/export/ocsfschema"
)

func main() {
	compiled := flag.String("compiled", "", "output of the OCSF schema compiler (required)")
	classes := flag.String("classes", "", "comma-separated class uids to keep (required)")
	out := flag.String("o", "", "file to write (required)")
	sum := flag.String("schema-sha256", "", "sha256 of the ocsf-schema release archive that was compiled")
	compiler := flag.String("compiler", "", "the compiler and its flags, as run")
	flag.Parse()
	if err := run(*compiled, *classes, *out, *sum, *compiler); err != nil {
		fmt.Fprintln(os.Stderr, "gensubset:", err)
		os.Exit(1)
	}
}

func run(compiled, classes, out, sum, compiler string) error {
	if compiled == "" || classes == "" || out == "" {
		return fmt.Errorf("-compiled, -classes and -o are required")
	}
	in, err := os.ReadFile(compiled)
	if err != nil {
		return err
	}
	uids, err := ocsfschema.ParseUIDs(classes)
	if err != nil {
		return fmt.Errorf("-classes: %w", err)
	}
	source := map[string]string{"schema_sha256": sum, "compiler": compiler}
	b, err := ocsfschema.Subset(in, uids, source)
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
