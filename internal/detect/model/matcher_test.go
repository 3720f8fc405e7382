package model

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func testRoots() []string {
	return append(DefaultRoots(), "/srv/weights", "/home/*/models")
}

func newTestMatcher(t testing.TB) *Matcher {
	t.Helper()
	m, err := NewMatcher(testRoots(), nil)
	if err != nil {
		t.Fatalf("NewMatcher: %v", err)
	}
	return m
}

// TestMatcherGolden runs every case of testdata/paths.txt and compares the
// verdicts with testdata/paths.golden (go test -run Golden -update rewrites it).
func TestMatcherGolden(t *testing.T) {
	m := newTestMatcher(t)
	f, err := os.Open(filepath.Join("testdata", "paths.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out strings.Builder
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			out.WriteString(text + "\n")
			continue
		}
		parts := strings.Split(text, "|")
		if len(parts) != 3 {
			t.Fatalf("paths.txt:%d: want raw|path|size, got %q", line, text)
		}
		raw, p := dash(parts[0]), dash(parts[1])
		size, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil {
			t.Fatalf("paths.txt:%d: size: %v", line, err)
		}
		ok, reason := m.IsModel(raw, p, size)
		fmt.Fprintf(&out, "%s => model=%t reason=%q config=%t\n", text, ok, reason, m.IsModelConfig(p))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "paths.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if got := out.String(); got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Errorf("line %d:\n got  %s\n want %s", i+1, gl[i], wl[i])
			}
		}
		if len(gl) != len(wl) {
			t.Errorf("got %d lines; want %d", len(gl), len(wl))
		}
	}
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// TestMatcherKeyCases pins the verdicts that matter most, independent of the
// golden file, so that an -update cannot silently flip them.
func TestMatcherKeyCases(t *testing.T) {
	m := newTestMatcher(t)
	const blob = "/root/.cache/huggingface/hub/models--a--b/blobs/0123456789abcdef0123456789abcdef01234567"
	const snap = "/root/.cache/huggingface/hub/models--a--b/snapshots/rev1/"
	for _, tc := range []struct {
		name      string
		raw, path string
		size      int64
		want      bool
		reason    string
	}{
		{"safetensors", "", "/x/m.safetensors", 1 << 30, true, "suffix .safetensors"},
		{"upper-case suffix", "", "/x/M.GGUF", 1 << 30, true, "suffix .gguf"},
		{"hf blob", "", blob, 1 << 30, true, ReasonHFBlob},
		{"hf snapshot weights name", snap + "model.safetensors", blob, 1 << 30, true, "suffix .safetensors"},
		{"hf snapshot tokenizer is not weights", snap + "tokenizer.json", blob, 9 << 20, false, ReasonSnapshotName},
		{"tokenizer.json under root is not weights", "", "/models/x/tokenizer.json", 9 << 20, false, ""},
		{"random bin outside roots", "", "/tmp/random.bin", 1 << 30, false, ""},
		{"random bin under root", "", "/models/x/random.bin", 1 << 30, true, ReasonUnderRoot},
		{"named bin", "", "/tmp/pytorch_model-00001-of-00002.bin", 1 << 30, true, ReasonNamedBin},
		{"pickle outside roots", "", "/tmp/x.pkl", 1 << 30, false, ""},
		{"pickle under glob root", "", "/home/ann/models/x.pkl", 1 << 30, true, ReasonUnderRoot},
		{"ollama", "", "/var/lib/ollama/blobs/sha256-" + strings.Repeat("ab", 32), 1 << 30, true, ReasonOllamaBlob},
		{"triton", "", "/repo/m/1/model.graphdef", 1 << 30, true, ReasonTriton},
		{"trtllm", "", "/e/rank3.engine", 1 << 30, true, ReasonTRTLLM},
		{"size gate", "", "/x/m.safetensors", 4096, false, ReasonBelowMinSize},
		{"size unknown", "", "/x/m.safetensors", -1, true, "suffix .safetensors"},
		{"dot-dot escapes root", "/models/../etc/x.pkl", "/etc/x.pkl", 1 << 30, false, ""},
		{"raw matches when resolved does not", "/proc/self/cwd/w.gguf", "/proc/123/fd/5", 1 << 30, true, "suffix .gguf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := m.IsModel(tc.raw, tc.path, tc.size)
			if got != tc.want || reason != tc.reason {
				t.Fatalf("IsModel(%q, %q, %d) = %t, %q; want %t, %q", tc.raw, tc.path, tc.size, got, reason, tc.want, tc.reason)
			}
		})
	}
}

func TestMatcherMinBytes(t *testing.T) {
	for _, tc := range []struct {
		min  int64
		size int64
		want bool
	}{
		{0, DefaultMinBytes - 1, false},
		{0, DefaultMinBytes, true},
		{-1, 0, true},
		{10, 9, false},
		{10, 10, true},
	} {
		m, err := NewMatcher(nil, &MatcherOptions{MinBytes: tc.min})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := m.IsModel("", "/x/a.gguf", tc.size); got != tc.want {
			t.Errorf("min %d size %d: got %t; want %t", tc.min, tc.size, got, tc.want)
		}
	}
}

func TestNewMatcherRejectsBadRoots(t *testing.T) {
	for _, tc := range []struct {
		root, want string
	}{
		{"", "empty"},
		{"models", "not an absolute path"},
		{"/", "every file"},
		{"/a/../", "every file"},
		{"/a/[b", "bad pattern"},
	} {
		_, err := NewMatcher([]string{"/models", tc.root}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("root %q: got error %v; want one containing %q", tc.root, err, tc.want)
		}
		if err := ValidateRoot(tc.root); err == nil {
			t.Errorf("ValidateRoot(%q) = nil; want an error", tc.root)
		}
	}
}

func TestMatcherAddRoots(t *testing.T) {
	m, err := NewMatcher([]string{"/models"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.IsModel("", "/data/hf/x.pkl", -1); ok {
		t.Fatal("pkl outside roots matched before AddRoots")
	}
	n, err := m.AddRoots("/data/hf/", "relative/dir", "/models")
	if n != 1 {
		t.Errorf("added %d roots; want 1", n)
	}
	if err == nil || !strings.Contains(err.Error(), "relative/dir") {
		t.Errorf("got error %v; want one naming relative/dir", err)
	}
	if ok, r := m.IsModel("", "/data/hf/x.pkl", -1); !ok || r != ReasonUnderRoot {
		t.Errorf("after AddRoots: got %t, %q; want true, %q", ok, r, ReasonUnderRoot)
	}
	if got, want := strings.Join(m.Roots(), ","), "/models,/data/hf"; got != want {
		t.Errorf("Roots() = %s; want %s", got, want)
	}
	// The root set stays bounded.
	var many []string
	for i := 0; i < MaxRoots+10; i++ {
		many = append(many, fmt.Sprintf("/r/%d", i))
	}
	if _, err := m.AddRoots(many...); err == nil || !strings.Contains(err.Error(), "too many roots") {
		t.Errorf("got error %v; want too many roots", err)
	}
	if got := len(m.Roots()); got != MaxRoots {
		t.Errorf("len(Roots()) = %d; want %d", got, MaxRoots)
	}
}

func TestIsModelConfig(t *testing.T) {
	m := newTestMatcher(t)
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/models/llama/config.json", true},
		{"/models/llama/generation_config.json", true},
		{"/models/llama/tokenizer_config.json", true},
		{"/models/llama/chat_template.jinja", true},
		{"/models/llama/tool_use.jinja", true},
		{"/models/llama/model.safetensors.index.json", true},
		{"/models/llama/model.safetensors", false},
		{"/x/hub/models--a--b/snapshots/r/config.json", true},
		{"/etc/app/config.json", false},
		{"/repo/resnet/config.pbtxt", true},
		{"/repo/pyb/1/model.py", true},
		{"/src/app/model.py", false},
	} {
		if got := m.IsModelConfig(tc.path); got != tc.want {
			t.Errorf("IsModelConfig(%q) = %t; want %t", tc.path, got, tc.want)
		}
	}
}

func TestMatcherNoAllocs(t *testing.T) {
	m := newTestMatcher(t)
	paths := []string{
		"/tmp/x/model.safetensors",
		"/root/.cache/huggingface/hub/models--a--b/blobs/0123456789abcdef0123456789abcdef01234567",
		"/home/ann/.cache/huggingface/hub/models--a--b/blobs/0123456789abcdef0123456789abcdef01234567",
		"/models/x/tokenizer.json",
		"/usr/lib/x86_64-linux-gnu/libc.so.6",
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, p := range paths {
			m.IsModel("", p, 1<<30)
			m.IsModelConfig(p)
		}
	})
	if allocs != 0 {
		t.Fatalf("got %v allocs per run; want 0", allocs)
	}
}

func BenchmarkMatcher(b *testing.B) {
	m := newTestMatcher(b)
	for _, bc := range []struct{ name, raw, path string }{
		{"suffix", "", "/tmp/x/model-00001-of-00004.safetensors"},
		{"hf_blob", "", "/root/.cache/huggingface/hub/models--meta-llama--Llama-3.1-8B/blobs/0123456789abcdef0123456789abcdef01234567"},
		{"hf_snapshot_pair", "/root/.cache/huggingface/hub/models--a--b/snapshots/r/model.safetensors", "/root/.cache/huggingface/hub/models--a--b/blobs/0123456789abcdef0123456789abcdef01234567"},
		{"hf_snapshot_tokenizer_veto", "/root/.cache/huggingface/hub/models--a--b/snapshots/r/tokenizer.json", "/root/.cache/huggingface/hub/models--a--b/blobs/0123456789abcdef0123456789abcdef01234567"},
		{"glob_root", "", "/home/alice/.cache/huggingface/xet/chunk-cache/ab/cdef"},
		{"miss", "", "/usr/lib/x86_64-linux-gnu/libcuda.so.1"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.IsModel(bc.raw, bc.path, 1<<30)
			}
		})
	}
}

// FuzzIsModel feeds hostile paths to the matcher: it must not panic, must be
// deterministic, and a positive verdict always carries a reason.
func FuzzIsModel(f *testing.F) {
	f.Add("", "/models/a.gguf", int64(-1))
	f.Add("/x/models--a/snapshots/r/tokenizer.json", "/x/models--a/blobs/0123456789abcdef0123456789abcdef01234567", int64(1<<30))
	f.Add("rank7.engine", "/repo/m/1/model.savedmodel/x", int64(5))
	f.Add("/home/u/.cache/huggingface/../../etc", "//", int64(0))
	m, err := NewMatcher(testRoots(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw, p string, size int64) {
		ok, reason := m.IsModel(raw, p, size)
		ok2, reason2 := m.IsModel(raw, p, size)
		if ok != ok2 || reason != reason2 {
			t.Fatalf("not deterministic: %t %q then %t %q", ok, reason, ok2, reason2)
		}
		if ok && reason == "" {
			t.Fatal("positive verdict without a reason")
		}
		m.IsModelConfig(p)
		m.UnderRoot(p)
	})
}

// Every exec in a container names its roots again: adding known roots
// neither copies the set nor counts them.
func TestAddKnownRootsIsFree(t *testing.T) {
	m, err := NewMatcher([]string{"/models"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.AddRoots("/srv/hf", "/srv/ollama/"); n != 2 || err != nil {
		t.Fatalf("AddRoots = %d, %v; want 2 new", n, err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if n, err := m.AddRoots("/srv/hf", "/srv/ollama/"); n != 0 || err != nil {
			t.Fatalf("AddRoots of known roots = %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("adding known roots allocates %.0f times", allocs)
	}
	if n, _ := m.AddRoots("/srv/hf", "/srv/new"); n != 1 || !m.UnderRoot("/srv/new/x.gguf") {
		t.Errorf("a new root among known ones: added %d", n)
	}
}
