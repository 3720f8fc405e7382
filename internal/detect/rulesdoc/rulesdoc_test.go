package rulesdoc

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/detect"
	"github.com/kestrel-sec/kestrel/internal/event"
)

var reference = filepath.Join("..", "..", "..", "docs", "rules.md")

// docs/rules.md is what the registry renders to today.
func TestRulesDocIsCurrent(t *testing.T) {
	rules, err := Catalog()
	if err != nil {
		t.Fatal(err)
	}
	want := Markdown(rules)
	got, err := os.ReadFile(reference)
	if err != nil {
		t.Fatalf("read the rule reference: %v (run make docs)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/rules.md is stale: the rule registry changed; run make docs and commit docs/rules.md")
	}
	var missing []string
	for _, m := range rules {
		if falsePositives[m.ID] == "" {
			missing = append(missing, m.ID)
		}
	}
	if len(missing) > 0 {
		t.Logf("rules without a false-positive note in internal/detect/rulesdoc/notes.go: %s", strings.Join(missing, ", "))
	}
}

func TestNotesNameRealRules(t *testing.T) {
	rules, err := Catalog()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, m := range rules {
		known[m.ID] = true
	}
	for id := range falsePositives {
		if !known[id] {
			t.Errorf("notes.go has a false-positive note for %s, which the registry does not have", id)
		}
	}
}

func TestMarkdownRendersEachRule(t *testing.T) {
	rules := []detect.Meta{
		{ID: "ESC-001", Title: "a | b", Severity: event.SevCritical, MITRE: []string{"T1059.004", "AML.T0011.000"},
			Description: "Sees /proc/<pid>/root and *.ko.", Knobs: []string{"umh_allowlist"}, Kinds: []event.Kind{event.KindOpen}},
		{ID: "ZZZ-9", Title: "new family", Severity: event.SevLow},
	}
	md := string(Markdown(rules))
	for _, want := range []string{
		"| [ESC-001](#esc-001) | a \\| b | critical | T1059.004, AML.T0011.000 |",
		`<a id="esc-001"></a>`,
		"[T1059.004](https://attack.mitre.org/techniques/T1059/004/)",
		"[AML.T0011.000](https://atlas.mitre.org/techniques/AML.T0011.000)",
		"| Events | open |", "| Knobs | `umh_allowlist` |", "**What it sees.** Sees /proc/\\<pid\\>/root and \\*.ko.",
		"## Other rules", "### ZZZ-9 — new family", "| Knobs | none |", "No note recorded yet.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the reference lacks %q", want)
		}
	}
}
