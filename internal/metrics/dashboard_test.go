package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const dashboardPath = "../../deploy/grafana/kestrel-dashboard.json"

// exported returns every series family the daemon's registry serves (with a
// snapshot in which every field is set) and the labels of each.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	s := full()
	reg, err := NewRegistry(NewCollector(func(out *Snapshot) { *out = s }, "v1"))
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, mf := range mfs {
		labels := []string{}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(labels, l.GetName()) {
					labels = append(labels, l.GetName())
				}
			}
		}
		out[mf.GetName()] = labels
	}
	return out
}

// queries returns every PromQL expression of the dashboard: panel targets
// and template variable queries.
func queries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var out []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				walk(c, k)
			}
		case []any:
			for _, c := range v {
				walk(c, key)
			}
		case string:
			if key == "expr" || (key == "query" && strings.Contains(v, "(")) {
				out = append(out, v)
			}
		}
	}
	walk(doc, "")
	return out
}

var (
	seriesRE   = regexp.MustCompile(`\b((?:kestrel|go|process)_[a-zA-Z0-9_]+)\b(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	byRE       = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	labelValRE = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
)

// Target labels Prometheus adds to every scraped series.
var targetLabels = []string{"instance", "job"}

// Every expression of the Grafana dashboard names series the daemon
// exports, with labels those series carry: a renamed metric or label fails
// here instead of leaving an empty panel.
func TestDashboardNamesExportedSeries(t *testing.T) {
	have := exported(t)
	qs := queries(t)
	if len(qs) < 20 {
		t.Fatalf("found %d expressions in %s; the walk is broken", len(qs), dashboardPath)
	}
	for _, q := range qs {
		ms := seriesRE.FindAllStringSubmatch(q, -1)
		if len(ms) == 0 {
			t.Errorf("expression names no sensor series: %s", q)
			continue
		}
		var labels []string
		for _, m := range ms {
			name := m[1]
			ls, ok := have[name]
			if !ok {
				t.Errorf("%s: the daemon exports no series %s", q, name)
				continue
			}
			labels = append(labels, ls...)
			for _, mm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
				if !slices.Contains(ls, mm[1]) && !slices.Contains(targetLabels, mm[1]) {
					t.Errorf("%s: series %s has no label %q (it has %v)", q, name, mm[1], ls)
				}
			}
		}
		for _, m := range byRE.FindAllStringSubmatch(q, -1) {
			for _, l := range strings.Split(m[1], ",") {
				l = strings.TrimSpace(l)
				if l != "" && !slices.Contains(labels, l) && !slices.Contains(targetLabels, l) {
					t.Errorf("%s: groups by %q, which none of its series carries", q, l)
				}
			}
		}
		for _, m := range labelValRE.FindAllStringSubmatch(q, -1) {
			if !slices.Contains(have[m[1]], m[2]) && !slices.Contains(targetLabels, m[2]) {
				t.Errorf("%s: %s has no label %q", q, m[1], m[2])
			}
		}
	}
}

// The check above must be able to fail.
func TestDashboardCheckCatchesStrangers(t *testing.T) {
	have := exported(t)
	for _, bad := range []string{"kestrel_events_dropped_total", "go_memstats_nonsense_bytes"} {
		if _, ok := have[bad]; ok {
			t.Errorf("%s is exported; pick another stranger", bad)
		}
		if m := seriesRE.FindStringSubmatch("rate(" + bad + `{instance=~"$instance"}[5m])`); m == nil || m[1] != bad {
			t.Errorf("series pattern does not find %s", bad)
		}
	}
	if m := matcherRE.FindAllStringSubmatch(`{instance=~"$instance",severity="critical"}`, -1); len(m) != 2 || m[1][1] != "severity" {
		t.Errorf("matcher pattern: got %v", m)
	}
}
