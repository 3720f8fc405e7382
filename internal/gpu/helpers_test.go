package gpu

import "github.com/kestrel-sec/kestrel/internal/config"

const (
	mib = 1 << 20
	gib = 1 << 30
)

// testConfig is the default GPU section without a kubelet socket.
func testConfig() config.GPUConfig {
	c := config.Default().GPU
	c.PodResourcesSocket = ""
	return c
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
