package detect

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// TestFindingJSON pins the JSON line of a finding (docs/output.md): rule
// metadata, the actor with its lineage, the container and pod, the
// explanation and the evidence.
func TestFindingJSON(t *testing.T) {
	e := newTestEngine(t, nil)
	c := ctr("simctr-infer-a6")
	c.Pod, c.Namespace, c.PodUID, c.Runtime = "infer-0", "serving", "0f0e-uid", "containerd"
	hook := proc(1501, "/tmp/h/bin/nvidia-ctk", "/tmp/h/bin/nvidia-ctk", "hook", "enable-cuda-compat").
		anc(an(1500, "/tmp/h/bin/runc"), an(50, "/usr/bin/bash")).env("LD_PRELOAD", "/proc/self/cwd/evil.so")
	hook.p.Comm = "nvidia-ctk"
	out := run(e, execEv(hook, c))
	var nvt *event.Event
	for _, f := range out {
		if f.Finding.Rule == "NVT-001" {
			nvt = f
		}
	}
	if nvt == nil {
		t.Fatalf("NVT-001 did not fire:\n%s", firedList(out))
	}
	got, err := json.MarshalIndent(nvt, "", "  ")
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "finding_nvt001.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("finding JSON differs from %s:\n%s", path, got)
	}
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"kind", "time", "rule", "severity", "title", "mitre", "process", "container", "evidence", "explanation"} {
		if _, ok := m[k]; !ok {
			t.Errorf("finding JSON lacks %q", k)
		}
	}
}
