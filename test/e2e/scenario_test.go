package e2e

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// scenarioOrder is the order of §6–§7: attacks, then B1 with B3 right after
// it while B1's server is still up.
var scenarioOrder = []string{"A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9", "A10", "A11", "A12",
	"B1", "B3", "B2", "B4", "B5"}

func TestScenarios(t *testing.T) {
	rh := newReplayHarness(t, "")
	expect := map[string]expectation{}
	data, err := os.ReadFile("testdata/expect.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &expect); err != nil {
		t.Fatalf("testdata/expect.yaml: %v", err)
	}
	for _, id := range scenarioOrder {
		if _, ok := expect[id]; !ok {
			t.Fatalf("no expectation for %s in testdata/expect.yaml", id)
		}
	}
	var results []replayResult
	for _, id := range scenarioOrder {
		results = append(results, rh.replay(id, "../scenarios/"+id+".sh", expect[id], strings.HasPrefix(id, "B")))
	}
	rh.report("scenario results", "KESTREL_E2E_REPORT", results, nil, nil)
}
