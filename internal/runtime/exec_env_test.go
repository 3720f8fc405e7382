package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// TestExecEnvFilteredInTheKernel runs /bin/true with environments built to
// trip the kernel's filter: the names it keeps must be exactly the
// allowlist's, wherever they sit in the environment and however long it is.
func TestExecEnvFilteredInTheKernel(t *testing.T) {
	_, c := startSensor(t, testConfig())
	pad := func(n int) []string { // n entries of ordinary variables
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("SVC_%d_SERVICE_PORT=%d", i, 8000+i))
		}
		return out
	}
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name  string
		env   []string
		want  []event.EnvVar
		trunc bool // the event says the capture is not whole
	}{
		{"names that share a start with the allowlist",
			[]string{"LD_PRELOADX=/a.so", "LD_PRELOA=/b.so", "MY_CUDA_HOME=/c", "HFX=1", "LD_PRELOAD=/x.so", "CUDA_HOME=/usr/local/cuda"},
			[]event.EnvVar{{Name: "LD_PRELOAD", Value: "/x.so"}, {Name: "CUDA_HOME", Value: "/usr/local/cuda"}}, false},
		// The block used to be read up to 4 KiB: what came after was not seen.
		{"past 64 KiB of other variables", append(pad(3000), "LD_AUDIT=/late.so", "OLLAMA_MODELS=/srv/ollama"),
			[]event.EnvVar{{Name: "LD_AUDIT", Value: "/late.so"}, {Name: "OLLAMA_MODELS", Value: "/srv/ollama"}}, false},
		{"entries of exactly the longest whole lengths",
			[]string{"AWS_REGION=" + long(envEntryMax-1-len("AWS_REGION=")), "GCONV_PATH=" + long(envShort-1-len("GCONV_PATH="))},
			[]event.EnvVar{{Name: "AWS_REGION", Value: long(maxEnvValLen)}, {Name: "GCONV_PATH", Value: long(maxEnvValLen)}}, false},
		{"long entries are cut, and a cut secret is not hashed",
			[]string{"PADDING=" + long(120000), "AWS_SESSION_TOKEN=" + long(5000), "LD_LIBRARY_PATH=/opt/" + long(9000), "HF_TOKEN=hf_1"},
			[]event.EnvVar{{Name: "AWS_SESSION_TOKEN"}, {Name: "LD_LIBRARY_PATH", Value: "/opt/" + long(maxEnvValLen-5)},
				{Name: "HF_TOKEN", Value: "sha256:" + sha256hex("hf_1")}}, true},
		{"kept entries beyond the record's room are left out",
			[]string{"NVIDIA_X1=" + long(1500), "NVIDIA_X2=" + long(1500), "NVIDIA_X3=" + long(1500), "NVIDIA_VISIBLE_DEVICES=all", "LD_PRELOAD=/x.so"},
			[]event.EnvVar{{Name: "NVIDIA_X1", Value: long(maxEnvValLen)}, {Name: "NVIDIA_X2", Value: long(maxEnvValLen)},
				{Name: "NVIDIA_VISIBLE_DEVICES", Value: "all"}, {Name: "LD_PRELOAD", Value: "/x.so"}}, true},
		{"loader variables are not crowded out by other names",
			slices.Concat(pad(10), []string{"AWS_A=" + long(2000), "AWS_B=" + long(2000), "CUDA_C=" + long(2000), "GLIBC_TUNABLES=" + long(5000), "LD_AUDIT=/a.so"}),
			[]event.EnvVar{{Name: "AWS_A", Value: long(maxEnvValLen)}, {Name: "GLIBC_TUNABLES", Value: long(maxEnvValLen)},
				{Name: "LD_AUDIT", Value: "/a.so"}}, true},
		{"empty environment", nil, nil, false},
		{"more entries than are looked at", append(pad(5000), "LD_PRELOAD=/far.so"), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("/bin/true")
			cmd.Env = tt.env
			if tt.env == nil {
				cmd.Env = []string{}
			}
			if err := cmd.Run(); err != nil {
				t.Fatal(err)
			}
			pid := uint32(cmd.Process.Pid)
			e := c.wait(t, "exec", func(e *event.Event) bool { return e.Kind == event.KindExec && e.Process.PID == pid })
			if !slices.Equal(e.Process.Env, tt.want) {
				t.Errorf("env = %.300v; want %.300v", e.Process.Env, tt.want)
			}
			if got := e.Process.Truncated&event.TruncEnv != 0; got != tt.trunc {
				t.Errorf("environment marked truncated: %v; want %v", got, tt.trunc)
			}
		})
	}
}

// The last entry of a long environment sits a few bytes below the top of
// the stack (only the file name and a NULL pointer follow it): a name read
// past its end would fault and lose it.
func TestExecEnvLastEntryAtTheTopOfTheStack(t *testing.T) {
	_, c := startSensor(t, testConfig())
	dir := t.TempDir()
	data, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("./t") // the file name the kernel copies: "./t"
	cmd.Dir = dir
	cmd.Env = append(slices.Repeat([]string{"PAD=" + strings.Repeat("p", 1000)}, 1), "LD_AUDIT=/")
	for i := range 20 { // past the 16 KiB the kernel reads in one go
		cmd.Env = append([]string{fmt.Sprintf("PAD%d=%s", i, strings.Repeat("p", 1000))}, cmd.Env...)
	}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	e := c.wait(t, "exec", func(e *event.Event) bool { return e.Kind == event.KindExec && e.Process.PID == pid })
	if want := []event.EnvVar{{Name: "LD_AUDIT", Value: "/"}}; !slices.Equal(e.Process.Env, want) {
		t.Errorf("env = %v; want %v", e.Process.Env, want)
	}
	if e.Process.Truncated&event.TruncEnv != 0 {
		t.Error("environment marked truncated")
	}
}
