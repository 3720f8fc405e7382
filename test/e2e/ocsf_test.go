package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/export/ocsfschema"
)

// checkOCSFFile validates every line the daemon's OCSF file exporter wrote
// against the official OCSF 1.8.0 schema, and checks that each OCSF line
// `sensor --tail -o ocsf` printed is byte for byte the file's line with the
// same metadata.uid: one identity for an event whichever path encodes it.
func checkOCSFFile(t *testing.T, path string, tailLines []string) {
	t.Helper()
	schema, err := ocsfschema.OCSF180()
	if err != nil {
		t.Fatal(err)
	}
	type meta struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
	}
	uidOf := func(line string) string {
		var m meta
		_ = json.Unmarshal([]byte(line), &m)
		return m.Metadata.UID
	}
	// The daemon still runs: wait until the file exporter has written what
	// the tail printed, and read complete lines only.
	var data []byte
	waitFor(t, 20*time.Second, func() bool {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return false
		}
		data = data[:bytes.LastIndexByte(data, '\n')+1]
		for _, l := range tailLines {
			if !bytes.Contains(data, []byte(`"uid":"`+uidOf(l)+`"`)) {
				return false
			}
		}
		return true
	})
	byUID := map[string]string{}
	perClass := map[int]int{}
	var n, bad, deprecated int
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		n++
		r := schema.Validate([]byte(line))
		perClass[r.ClassUID]++
		deprecated += len(r.Deprecated)
		if !r.OK() {
			bad++
			if bad <= 10 {
				t.Errorf("OCSF line %d does not validate: %v\n%s", n, r.All(), line)
			}
		}
		if uid := uidOf(line); uid != "" {
			byUID[uid] = line
		}
	}
	if n == 0 {
		t.Fatal("the daemon's OCSF file is empty")
	}
	classes := slices.Collect(func(yield func(string) bool) {
		for c, k := range perClass {
			if !yield(fmt.Sprintf("%d:%d", c, k)) {
				return
			}
		}
	})
	sort.Strings(classes)
	t.Logf("daemon OCSF file: %d events validated, classes %s, %d invalid, %d deprecated attributes", n, strings.Join(classes, " "), bad, deprecated)
	if perClass[2004] == 0 {
		t.Errorf("the OCSF file has no Detection Finding")
	}
	for _, line := range tailLines {
		uid := uidOf(line)
		file, ok := byUID[uid]
		switch {
		case uid == "" || !ok:
			t.Errorf("--tail -o ocsf printed a line whose metadata.uid %q the file exporter did not write: %s", uid, line)
		case file != line:
			t.Errorf("event %s differs between --tail -o ocsf and the file exporter:\n tail: %s\n file: %s", uid, line, file)
		}
	}
	if len(tailLines) == 0 {
		t.Error("--tail -o ocsf printed no finding")
	}
}
