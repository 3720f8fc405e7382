package runtime

import (
	"slices"
	"strings"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/event"
)

func TestDecodeEnv(t *testing.T) {
	long := strings.Repeat("v", 300)
	tests := []struct {
		name string
		env  []byte
		want []event.EnvVar
	}{
		{"kept entries", envEntries("LD_PRELOAD=/x.so", "NVIDIA_VISIBLE_DEVICES=all"),
			[]event.EnvVar{{Name: "LD_PRELOAD", Value: "/x.so"}, {Name: "NVIDIA_VISIBLE_DEVICES", Value: "all"}}},
		{"secrets hashed", envEntries("AWS_SECRET_ACCESS_KEY=s3cr3t", "HUGGING_FACE_HUB_TOKEN=hf", "AWS_REGION=eu"),
			[]event.EnvVar{
				{Name: "AWS_SECRET_ACCESS_KEY", Value: "sha256:" + sha256hex("s3cr3t")},
				{Name: "HUGGING_FACE_HUB_TOKEN", Value: "sha256:" + sha256hex("hf")},
				{Name: "AWS_REGION", Value: "eu"},
			}},
		{"long value truncated", envEntries("GLIBC_TUNABLES=" + long),
			[]event.EnvVar{{Name: "GLIBC_TUNABLES", Value: long[:maxEnvValLen]}}},
		{"cut value kept, cut secret not hashed", envEntries("CUDA_HOME=/usr/local/cu"+envCutMark, "HF_TOKEN=hf_"+envCutMark),
			[]event.EnvVar{{Name: "CUDA_HOME", Value: "/usr/local/cu"}, {Name: "HF_TOKEN"}}},
		{"model roots", envEntries("OLLAMA_MODELS=/m", "TRANSFORMERS_CACHE=/c", "MODEL_PATH=/p", "MODEL_REPO=/r"),
			[]event.EnvVar{{Name: "OLLAMA_MODELS", Value: "/m"}, {Name: "TRANSFORMERS_CACHE", Value: "/c"},
				{Name: "MODEL_PATH", Value: "/p"}, {Name: "MODEL_REPO", Value: "/r"}}},
		// The kernel sends only allowlisted names; whatever else arrives is
		// dropped all the same.
		{"off the allowlist", envEntries("=x", "LD_PRELOAD", "PATH=/bin", "MY_CUDA_X=1", "LD_PRELOADX=1", "HF_HOME=/h"),
			[]event.EnvVar{{Name: "HF_HOME", Value: "/h"}}},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeEnv(tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v; want %v", got, tt.want)
			}
		})
	}
}

// kernelMatch is env_match of bpf/process.bpf.h over the tables envTables
// builds: the kernel's decision and the class of the pattern matched, so
// that the tables can be checked without loading them.
func kernelMatch(first2, pats, class []byte, n uint32, entry string) (uint8, bool) {
	var e [envPatLen]byte
	copy(e[:], entry)
	if len(entry) < envPatLen {
		e[len(entry)] = 0
	}
	k := uint16(e[0]) | uint16(e[1])<<8
	if first2[k>>3]&(1<<(k&7)) == 0 {
		return 0, false
	}
	for i := range int(n) {
		p := pats[i*2*envPatLen:]
		match := true
		for w := range envPatWords {
			word, pw, mw := le.Uint64(e[8*w:]), le.Uint64(p[8*w:]), le.Uint64(p[envPatLen+8*w:])
			match = match && word&mw == pw
		}
		if match {
			return class[i], true
		}
	}
	return 0, false
}

func TestEnvTablesMatchTheAllowlist(t *testing.T) {
	first2, pats, class, n, err := envTables(envPatterns())
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"PATH", "HOME", "HOSTNAME", "LANG", "LD_BIND_NOW", "LD_PRELOADX", "LD_PRELOA", "LD",
		"CUDA", "CUDA_", "MY_CUDA_X", "HF", "HF_", "HFX_TOKEN", "HUGGING_FACE", "AWS", "AWSX", "NVIDIA",
		"KUBERNETES_SERVICE_HOSTX", "KUBERNETES_SERVICE_PORT", "MODEL_PATHS", "MODEL", "OLLAMA_MODELS_DIR"}
	names = append(append(names, event.EnvCaptureNames...), event.EnvLoaderNames...)
	for _, p := range event.EnvCapturePrefixes {
		names = append(names, p+"X", p+strings.Repeat("Y", 40))
	}
	for _, name := range names {
		for _, entry := range []string{name + "=v", name + "=", name} {
			want := strings.Contains(entry, "=") && event.EnvCaptured(name)
			if !want && !strings.Contains(entry, "=") {
				// "NAME" without "=": the kernel keeps a prefix match, the decoder drops it.
				continue
			}
			c, got := kernelMatch(first2, pats, class, n, entry)
			if got != want {
				t.Errorf("kernel keeps %q: %v; the allowlist says %v", entry, got, want)
			}
			if got && (c&envLoader != 0) != slices.Contains(event.EnvLoaderNames, name) {
				t.Errorf("%q: class %#x; a loader variable is %v", entry, c, slices.Contains(event.EnvLoaderNames, name))
			}
			if got && c&envWhole == 0 && envNameSecret(name) {
				t.Errorf("%q: a secret's value is cut short (class %#x): its hash would be wrong", entry, c)
			}
		}
	}
}

func TestEnvTablesRejectBadPatterns(t *testing.T) {
	for _, pats := range [][]envPattern{{{match: "X"}}, {{match: strings.Repeat("A", envPatLen+1)}}, {{match: "A\x00B"}},
		slices.Repeat([]envPattern{{match: "AB"}}, envPats+1)} {
		if _, _, _, _, err := envTables(pats); err == nil {
			t.Errorf("envTables(%q) accepted", pats)
		}
	}
}

func BenchmarkDecodeEnv(b *testing.B) {
	env := envEntries("NVIDIA_VISIBLE_DEVICES=0", "CUDA_VERSION=12.4.1", "NVIDIA_DRIVER_CAPABILITIES=compute,utility")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeEnv(env); err != nil {
			b.Fatal(err)
		}
	}
}
