package gpu

import (
	"fmt"
	"os"
	"path/filepath"
)

// inHostPIDNamespace reports whether this process shares the PID namespace of
// kthreadd (PID 2), which sits in the initial namespaces; PID 1 may be
// unreadable. NVML lists processes by host PID only to a caller in the host
// PID namespace: from a sibling namespace (a pod without hostPID) its process
// list is silently empty.
func inHostPIDNamespace(procRoot string) (bool, error) {
	self, err := os.Readlink(filepath.Join(procRoot, "self/ns/pid"))
	if err != nil {
		return false, fmt.Errorf("read own PID namespace: %w", err)
	}
	host, err := os.Readlink(filepath.Join(procRoot, "2/ns/pid"))
	if err != nil {
		return false, fmt.Errorf("read the host PID namespace from PID 2: %w", err)
	}
	return self == host, nil
}
