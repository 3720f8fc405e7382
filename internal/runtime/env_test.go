package runtime

import (
	"slices"
	"strings"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/event"
)

func TestFilterEnv(t *testing.T) {
	long := strings.Repeat("v", 300)
	tests := []struct {
		name      string
		block     string
		truncated bool
		want      []event.EnvVar
	}{
		{"allowlist only", "PATH=/bin\x00LD_PRELOAD=/x.so\x00NVIDIA_VISIBLE_DEVICES=all\x00HOME=/\x00", false,
			[]event.EnvVar{{Name: "LD_PRELOAD", Value: "/x.so"}, {Name: "NVIDIA_VISIBLE_DEVICES", Value: "all"}}},
		{"secrets hashed", "AWS_SECRET_ACCESS_KEY=s3cr3t\x00HUGGING_FACE_HUB_TOKEN=hf\x00AWS_REGION=eu\x00", false,
			[]event.EnvVar{
				{Name: "AWS_SECRET_ACCESS_KEY", Value: "sha256:" + sha256hex("s3cr3t")},
				{Name: "HUGGING_FACE_HUB_TOKEN", Value: "sha256:" + sha256hex("hf")},
				{Name: "AWS_REGION", Value: "eu"},
			}},
		{"long value truncated", "GLIBC_TUNABLES=" + long + "\x00", false,
			[]event.EnvVar{{Name: "GLIBC_TUNABLES", Value: long[:maxEnvValLen]}}},
		{"cut last entry dropped", "CUDA_HOME=/usr/local/cuda\x00LD_AUDIT=/li", true,
			[]event.EnvVar{{Name: "CUDA_HOME", Value: "/usr/local/cuda"}}},
		{"cut exactly at a NUL keeps the entry", "CUDA_HOME=/c\x00", true,
			[]event.EnvVar{{Name: "CUDA_HOME", Value: "/c"}}},
		{"no name or no equals", "=x\x00LD_PRELOAD\x00HF_HOME=/h\x00", false,
			[]event.EnvVar{{Name: "HF_HOME", Value: "/h"}}},
		{"prefix must be a prefix", "MY_CUDA_X=1\x00KUBERNETES_SERVICE_HOST=10.0.0.1\x00", false,
			[]event.EnvVar{{Name: "KUBERNETES_SERVICE_HOST", Value: "10.0.0.1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := filterEnv([]byte(tt.block), tt.truncated); !slices.Equal(got, tt.want) {
				t.Errorf("got %v; want %v", got, tt.want)
			}
		})
	}
}

func BenchmarkFilterEnv(b *testing.B) {
	block := []byte("PATH=/usr/bin:/bin\x00HOME=/root\x00LANG=C.UTF-8\x00TERM=xterm\x00SHELL=/bin/bash\x00")
	b.ReportAllocs()
	for b.Loop() {
		if filterEnv(block, false) != nil {
			b.Fatal("kept a variable")
		}
	}
}
