package detect

import (
	"testing"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// The kernel sends only the environment variables on the capture
// allowlist: a rule that reads a name off it would never see it.
func TestRuleEnvNamesAreCaptured(t *testing.T) {
	names := append([]string{
		"LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH", "GLIBC_TUNABLES", // EXE-001
		"NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", // NVT-001, GPU ownership
		"KUBERNETES_SERVICE_HOST", // CRED-001
	}, loaderEnv...)
	for _, n := range names {
		if !event.EnvCaptured(n) {
			t.Errorf("rules read %s, which is not in event's environment capture allowlist", n)
		}
	}
}
