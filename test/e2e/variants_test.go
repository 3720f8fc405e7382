package e2e

import (
	"bytes"
	"fmt"
	"maps"
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
	// Imitates names the techniques (rule ids) a benign variant looks like,
	// for the per-technique summary; attack variants take theirs from the
	// first word of Technique ("ESC-007/ESC-008 ...").
	Imitates []string `yaml:"imitates"`
	// BeforeSensor says that testdata/variants/before/<id>.sh runs after
	// the harness setup and before the sensor starts: processes that held
	// something before the sensor could see them open it.
	BeforeSensor bool `yaml:"before_sensor"`
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
		case v.Benign && len(v.Imitates) == 0:
			return nil, fmt.Errorf("%s: %s is benign but names no technique it imitates", path, v.ID)
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
		if _, err := os.Stat(beforeScript(path, v.ID)); (err == nil) != v.BeforeSensor {
			return nil, fmt.Errorf("%s: %s: before_sensor is %v but %s exists = %v", path, v.ID, v.BeforeSensor,
				beforeScript(path, v.ID), err == nil)
		}
	}
	return vs, nil
}

// beforeScript is the before-the-sensor script of variant id.
func beforeScript(variantsFile, id string) string {
	return filepath.Join(filepath.Dir(variantsFile), "variants", "before", id+".sh")
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
	ruleID := regexp.MustCompile(`^[A-Z][A-Z0-9]*-[0-9]{3}$`)
	for _, v := range vs {
		for _, tech := range v.techniques() {
			if !ruleID.MatchString(tech) {
				t.Errorf("%s: technique %q is not a rule id (attacks name it first in technique, benign in imitates)", v.ID, tech)
			}
		}
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
// fire nothing above low.
func TestVariants(t *testing.T) {
	vs, err := loadVariants("testdata/variants.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// KESTREL_E2E_VARIANTS=V44,VB7 replays only those (while writing one).
	if only := os.Getenv("KESTREL_E2E_VARIANTS"); only != "" {
		keep := map[string]bool{}
		for _, id := range strings.Split(only, ",") {
			keep[strings.TrimSpace(id)] = true
		}
		vs = slices.DeleteFunc(vs, func(v variant) bool { return !keep[v.ID] })
		t.Logf("KESTREL_E2E_VARIANTS: replaying %d of the variants", len(vs))
	}
	var before []string
	for _, v := range vs {
		if v.BeforeSensor {
			before = append(before, ". ../variants/before/"+v.ID+".sh")
		}
	}
	rh := newReplayHarness(t, strings.Join(before, "; "))
	requireTools(t, "perl", "scp", "wget", "split", "base64", "xargs", "gzip", "dd", "tee")
	byID := map[string]variant{}
	var results []replayResult
	only := map[string]bool{} // KESTREL_E2E_VARIANTS=V33,VN1 replays those only (development)
	for _, id := range strings.Split(os.Getenv("KESTREL_E2E_VARIANTS"), ",") {
		if id != "" {
			only[id] = true
		}
	}
	for _, v := range vs {
		if len(only) > 0 && !only[v.ID] {
			continue
		}
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
	sum := techniqueSummary(byID, results)
	t.Logf("variants per technique:\n%s", sum)
	if p := os.Getenv("KESTREL_E2E_VARIANTS_REPORT"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			_, _ = f.WriteString("\nvariants per technique:\n" + sum)
			f.Close()
		}
	}
}

// techniques returns the rule ids a variant is about.
func (v variant) techniques() []string {
	if v.Benign {
		return v.Imitates
	}
	first, _, _ := strings.Cut(v.Technique, " ")
	return strings.Split(first, "/")
}

// techniqueSummary tabulates results per technique: attacks detected (every
// must rule fired; a variant with known gaps only is not detected) of all
// attacks, and benign look-alikes with nothing above low of all benign ones.
func techniqueSummary(byID map[string]variant, results []replayResult) string {
	type row struct{ attacks, detected, benign, quiet int }
	rows := map[string]*row{}
	var tot row
	for _, r := range results {
		v := byID[r.id]
		for _, tech := range v.techniques() {
			x := rows[tech]
			if x == nil {
				x = &row{}
				rows[tech] = x
			}
			if v.Benign {
				x.benign++
				if len(r.aboveLow) == 0 && len(r.unexpected) == 0 {
					x.quiet++
				}
			} else {
				x.attacks++
				if len(r.must) > 0 && len(r.missing) == 0 {
					x.detected++
				}
			}
		}
		if v.Benign {
			tot.benign++
			if len(r.aboveLow) == 0 && len(r.unexpected) == 0 {
				tot.quiet++
			}
		} else {
			tot.attacks++
			if len(r.must) > 0 && len(r.missing) == 0 {
				tot.detected++
			}
		}
	}
	var b strings.Builder
	b.WriteString("| technique | attacks detected / total | benign with nothing above low / total |\n|---|---|---|\n")
	frac := func(n, d int) string {
		if d == 0 {
			return "-"
		}
		return fmt.Sprintf("%d / %d", n, d)
	}
	for _, tech := range slices.Sorted(maps.Keys(rows)) {
		x := rows[tech]
		fmt.Fprintf(&b, "| %s | %s | %s |\n", tech, frac(x.detected, x.attacks), frac(x.quiet, x.benign))
	}
	fmt.Fprintf(&b, "| all variants | %s | %s |\n", frac(tot.detected, tot.attacks), frac(tot.quiet, tot.benign))
	return b.String()
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
