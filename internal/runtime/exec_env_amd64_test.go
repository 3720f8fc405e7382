package runtime

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// A 32-bit image's stack holds 4-byte pointers: its environment is found
// all the same.
func TestExecEnv32Bit(t *testing.T) {
	_, c := startSensor(t, testConfig())
	bin := filepath.Join(t.TempDir(), "exit32")
	if err := os.WriteFile(bin, int80Program(false, nil), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "one", "two")
	cmd.Env = []string{"PATH=/bin", "LD_PRELOAD=/tmp/x32.so", "HOME=/", "CUDA_VISIBLE_DEVICES=1"}
	if out, err := cmd.CombinedOutput(); err != nil {
		if errors.Is(err, unix.ENOEXEC) || (cmd.ProcessState != nil && !cmd.ProcessState.Exited()) {
			t.Skipf("this kernel runs no 32-bit code (IA32 emulation off?): %v", err)
		}
		t.Fatalf("%s: %v: %s", bin, err, out)
	}
	pid := uint32(cmd.Process.Pid)
	e := c.wait(t, "exec", func(e *event.Event) bool { return e.Kind == event.KindExec && e.Process.PID == pid })
	want := []event.EnvVar{{Name: "LD_PRELOAD", Value: "/tmp/x32.so"}, {Name: "CUDA_VISIBLE_DEVICES", Value: "1"}}
	if !slices.Equal(e.Process.Env, want) {
		t.Errorf("env = %v; want %v", e.Process.Env, want)
	}
	if !slices.Equal(e.Process.Args, []string{bin, "one", "two"}) {
		t.Errorf("args = %q", e.Process.Args)
	}
}
