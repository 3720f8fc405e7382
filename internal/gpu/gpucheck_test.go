package gpu

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestGPUCheckScript runs scripts/gpu-check.sh against fakes (nvidia-smi, a
// torch module, a sensor printing the JSON contract) so that its parsing and
// its verdicts are tested on hosts without a GPU. The real run needs an
// NVIDIA host; see the script's header.
func TestGPUCheckScript(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the check script end to end (about 10s)")
	}
	if os.Geteuid() != 0 {
		t.Skip("gpu-check.sh refuses to run without root (eBPF); CI runs as root")
	}
	for _, tool := range []string{"bash", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	script, err := filepath.Abs("../../scripts/gpu-check.sh")
	if err != nil {
		t.Fatal(err)
	}
	fakes, err := filepath.Abs("testdata/gpucheck")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		mode   string
		wantRC int
		want   map[string]string // check -> PASS/FAIL
	}{
		{"good", 0, map[string]string{
			"prerequisites": "PASS", "build": "PASS", "eBPF programs attached": "PASS",
			"torch workload": "PASS", "gpu event: pid + uuid": "PASS", "model-file open seen": "PASS",
			"gpu stop after exit": "PASS", "sensor still running": "PASS", "sensor gpus table": "PASS",
			"OVERALL": "PASS",
		}},
		{"bad", 1, map[string]string{
			"prerequisites": "PASS", "eBPF programs attached": "FAIL", "torch workload": "PASS",
			"gpu event: pid + uuid": "FAIL", "model-file open seen": "FAIL", "gpu stop after exit": "FAIL",
			"sensor gpus table": "FAIL", "OVERALL": "FAIL",
		}},
	}
	row := regexp.MustCompile(`^(.+?)\s+(PASS|FAIL|INFO)\s`)
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", script, "--bin", filepath.Join(fakes, "fake-sensor"))
			cmd.Env = append(os.Environ(),
				"PATH="+filepath.Join(fakes, "bin")+":"+os.Getenv("PATH"),
				"PYTHONPATH="+filepath.Join(fakes, "py"),
				"FAKE_SENSOR_MODE="+tt.mode,
				"CHECK_TIMEOUT=3",
			)
			out, err := cmd.CombinedOutput()
			rc := 0
			if ee, ok := err.(*exec.ExitError); ok {
				rc = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("run script: %v\n%s", err, out)
			}
			if rc != tt.wantRC {
				t.Errorf("exit code: got %d; want %d", rc, tt.wantRC)
			}
			text := string(out)
			i := strings.Index(text, "== gpu-check results ==")
			if i < 0 {
				t.Fatalf("no results table in output:\n%s", out)
			}
			got := map[string]string{}
			for _, line := range strings.Split(text[i:], "\n") {
				if v, ok := strings.CutPrefix(line, "OVERALL: "); ok {
					got["OVERALL"] = v
				} else if m := row.FindStringSubmatch(line); m != nil {
					got[m[1]] = m[2]
				}
			}
			for check, want := range tt.want {
				if got[check] != want {
					t.Errorf("%s: got %q; want %q", check, got[check], want)
				}
			}
			if t.Failed() {
				t.Logf("script output:\n%s", out)
			}
		})
	}
}
