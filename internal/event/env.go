package event

import "strings"

// The environment capture allowlist: the names of Process.Env. The kernel
// sends only these entries of an exec's environment (internal/runtime loads
// them into its filter), so a rule or a context lookup that reads a name
// not listed here would never see it: add the name here first.
var (
	// EnvLoaderNames are the dynamic loader's variables, captured exactly:
	// they load code into a process (EXE-001, NVT-001), so the capture
	// keeps room for them whatever else the environment holds.
	EnvLoaderNames = []string{"LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH", "GCONV_PATH", "GLIBC_TUNABLES"}
	// EnvCaptureNames are the other names captured exactly.
	EnvCaptureNames = []string{
		// a pod's API server (CRED-001)
		"KUBERNETES_SERVICE_HOST",
		// model roots named by a container's environment (the model registry)
		"TRANSFORMERS_CACHE", "OLLAMA_MODELS", "MODEL_PATH", "MODEL_REPO",
	}
	// EnvCapturePrefixes are the name prefixes captured: GPU selection and
	// toolkit settings, model hub and cloud credentials (whose values are
	// hashed).
	EnvCapturePrefixes = []string{"NVIDIA_", "CUDA_", "HF_", "HUGGING_FACE_", "AWS_"}
)

// EnvCaptured reports whether an environment variable of that name is
// captured.
func EnvCaptured(name string) bool {
	for _, n := range EnvLoaderNames {
		if n == name {
			return true
		}
	}
	for _, n := range EnvCaptureNames {
		if n == name {
			return true
		}
	}
	for _, p := range EnvCapturePrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
