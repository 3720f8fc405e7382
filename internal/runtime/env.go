package runtime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Environment capture keeps only the names loader-hijack and GPU rules need
// (docs/detection.md#environment-capture); everything else in the block is
// dropped without allocating.
var (
	envExact = map[string]bool{
		"LD_PRELOAD": true, "LD_AUDIT": true, "LD_LIBRARY_PATH": true, "GCONV_PATH": true,
		"GLIBC_TUNABLES": true, "KUBERNETES_SERVICE_HOST": true,
	}
	envPrefixes = []string{"NVIDIA_", "CUDA_", "HF_", "HUGGING_FACE_", "AWS_"}
	// secretWords mark a name whose value is hashed, never kept in clear.
	secretWords = []string{"TOKEN", "SECRET", "KEY", "PASSWORD", "CREDENTIAL"}
)

func envNameKept(name []byte) bool {
	if envExact[string(name)] { // no allocation: map lookup with string(bytes)
		return true
	}
	for _, p := range envPrefixes {
		if bytes.HasPrefix(name, []byte(p)) {
			return true
		}
	}
	return false
}

func envNameSecret(name string) bool {
	u := strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(u, w) {
			return true
		}
	}
	return false
}

// filterEnv returns the allowlisted variables of a NUL-separated
// environment block. A truncated block loses its last, partial entry, so
// that a cut value is never reported (or hashed) as if it were whole.
func filterEnv(b []byte, truncated bool) []event.EnvVar {
	var out []event.EnvVar
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		var kv []byte
		if i < 0 {
			if truncated {
				break
			}
			kv, b = b, nil
		} else {
			kv, b = b[:i], b[i+1:]
			if truncated && len(b) == 0 {
				// the block was cut exactly after a NUL: that entry is whole
				truncated = false
			}
		}
		eq := bytes.IndexByte(kv, '=')
		if eq <= 0 || !envNameKept(kv[:eq]) {
			continue
		}
		name, val := string(kv[:eq]), kv[eq+1:]
		var v string
		switch {
		case envNameSecret(name):
			sum := sha256.Sum256(val)
			v = "sha256:" + hex.EncodeToString(sum[:])
		case len(val) > maxEnvValLen:
			v = string(val[:maxEnvValLen])
		default:
			v = string(val)
		}
		out = append(out, event.EnvVar{Name: name, Value: v})
	}
	return out
}
