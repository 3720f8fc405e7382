package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// variant is one entry of testdata/variants.yaml: an attack technique of the
// catalog replayed with another tool, path or language than the catalog's
// scenario, or a benign look-alike.
type variant struct {
	ID          string `yaml:"id"`
	Technique   string `yaml:"technique"`
	Benign      bool   `yaml:"benign"`
	expectation `yaml:",inline"`
	// Gaps are rules the technique should fire but that this sensor cannot
	// fire yet, each with the reason; they are reported, not required.
	Gaps map[string]string `yaml:"gaps"`
}

// variantID keeps ids that the container-name attribution of
// scenarioOfContainer maps back to themselves (simctr-<role>-<id>).
var variantID = regexp.MustCompile(`^V[0-9A-Z]*[0-9]$`)

// loadVariants reads and checks testdata/variants.yaml: every id is unique,
// has a script, and benign variants expect nothing.
func loadVariants(path string) ([]variant, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var vs []variant
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&vs); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	seen := map[string]bool{}
	for _, v := range vs {
		switch {
		case !variantID.MatchString(v.ID):
			return nil, fmt.Errorf("%s: id %q: want V<digits or capitals>, ending in a digit", path, v.ID)
		case seen[v.ID]:
			return nil, fmt.Errorf("%s: id %s listed twice", path, v.ID)
		case v.Benign && len(v.Must) > 0:
			return nil, fmt.Errorf("%s: %s is benign but has must-fire rules", path, v.ID)
		case !v.Benign && len(v.Must) == 0 && len(v.Gaps) == 0:
			return nil, fmt.Errorf("%s: %s is an attack without must-fire rules or known gaps", path, v.ID)
		case v.Technique == "":
			return nil, fmt.Errorf("%s: %s names no technique", path, v.ID)
		}
		for rule, why := range v.Gaps {
			if why == "" {
				return nil, fmt.Errorf("%s: %s: gap %s gives no reason", path, v.ID, rule)
			}
		}
		seen[v.ID] = true
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), "variants", v.ID+".sh")); err != nil {
			return nil, fmt.Errorf("%s: %s has no script: %w", path, v.ID, err)
		}
	}
	return vs, nil
}

func TestVariantsFile(t *testing.T) {
	vs, err := loadVariants("testdata/variants.yaml")
	if err != nil {
		t.Fatal(err)
	}
	scripts, _ := filepath.Glob("testdata/variants/*.sh")
	if len(scripts) != len(vs) {
		t.Errorf("%d scripts in testdata/variants but %d entries in variants.yaml", len(scripts), len(vs))
	}
	for _, v := range vs {
		f := finding{}
		f.Container = &struct {
			ID      string `json:"id"`
			Runtime string `json:"runtime"`
			Pod     string `json:"pod"`
		}{ID: "simctr-infer-" + strings.ToLower(v.ID)}
		if got := scenarioOfContainer(f); got != v.ID {
			t.Errorf("container simctr-infer-%s is attributed to %q, want %s", strings.ToLower(v.ID), got, v.ID)
		}
	}
}

// TestVariants replays the attack variants of testdata/variants against the
// sensor and checks each one's must / must_not rules; benign variants must
// fire nothing above low. KESTREL_E2E_VARIANTS="VK1,VK2" replays only those.
func TestVariants(t *testing.T) {
	vs, err := loadVariants("testdata/variants.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if only := os.Getenv("KESTREL_E2E_VARIANTS"); only != "" {
		keep := strings.Split(only, ",")
		vs = slices.DeleteFunc(vs, func(v variant) bool { return !slices.Contains(keep, v.ID) })
	}
	rh := newReplayHarness(t)
	requireTools(t, "perl", "scp", "wget", "split", "base64", "xargs", "gzip", "dd", "tee")
	byID := map[string]variant{}
	var results []replayResult
	for _, v := range vs {
		byID[v.ID] = v
		exp := v.expectation
		for rule := range v.Gaps {
			exp.May = append(exp.May, rule) // a closed gap is welcome, not an extra
		}
		results = append(results, rh.replay(v.ID, "../variants/"+v.ID+".sh", exp, v.Benign))
	}
	for _, r := range results {
		for rule, why := range byID[r.id].Gaps {
			t.Logf("%s: known gap %s (%s): %s", r.id, rule, firedState(r, rule), why)
		}
	}
	rh.report("variant results", "KESTREL_E2E_VARIANTS_REPORT", results, []string{"technique", "known gap"},
		func(r replayResult) []string {
			var gaps []string
			for rule := range byID[r.id].Gaps {
				gaps = append(gaps, rule+" ("+firedState(r, rule)+")")
			}
			sort.Strings(gaps)
			return []string{byID[r.id].Technique, strings.Join(gaps, ", ")}
		})
}

// firedState says whether rule fired in r.
func firedState(r replayResult, rule string) string {
	for _, f := range r.fired {
		if strings.HasPrefix(f, rule+"(") {
			return "fired now"
		}
	}
	return "not fired"
}
