package runtime

import (
	"strings"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/config"
)

func TestFilterTables(t *testing.T) {
	cfg := config.CaptureConfig{
		WatchPrefixes:       []string{"/models/"},
		WatchSuffixes:       []string{".SafeTensors", ".pt"},
		WatchNames:          []string{"release_agent"},
		WatchProcEntries:    []string{"ns/", "mem"},
		WatchProcPidEntries: []string{"mem", "environ"},
	}
	prefix, suffix, proc, err := filterTables(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(prefix) != 1 || string(prefix[0].data) != "/models/" {
		t.Errorf("prefix = %v", prefix)
	}
	var sufs []string
	for _, e := range suffix {
		sufs = append(sufs, string(e.data))
	}
	if want := "srosnetefas.,tp.,tnega_esaeler/"; strings.Join(sufs, ",") != want {
		t.Errorf("suffixes = %q; want reversed, lower-cased %q", sufs, want)
	}
	pg, sg := gates(prefix, suffix)
	for _, tt := range []struct {
		path         string
		prefix, suff bool
	}{
		{"/models/llama/x.bin", true, false},
		{"/models/", true, false},
		{"/tmp/x.safetensors", false, true},
		{"/tmp/X.SAFETENSORS", false, true},
		{"w.pt", false, true},
		{"release_agent", false, true},    // a bare name: the kernel puts a '/' in front
		{"/x/release_agent", false, true}, // the name after a '/'
		{"/x/agent", false, false},
		{"/tmp/notes.txt", false, false},
	} {
		if got := gatedPrefix(&pg, tt.path); got != tt.prefix {
			t.Errorf("prefix gate on %q = %v, want %v", tt.path, got, tt.prefix)
		}
		if got := gatedSuffix(&sg, tt.path); got != tt.suff {
			t.Errorf("suffix gate on %q = %v, want %v", tt.path, got, tt.suff)
		}
	}
	flags := map[string]uint32{}
	for _, e := range proc {
		flags[string(e.data)] = e.value
	}
	if flags["ns/"] != procFSelf|procFPID || flags["mem"] != procFSelf|procFPID || flags["environ"] != procFPID {
		t.Errorf("proc flags = %v", flags)
	}
	key := prefix[0].lpmKey(prefixKeyData)
	if len(key) != 4+prefixKeyData || le.Uint32(key) != 8*8 || string(key[4:12]) != "/models/" {
		t.Errorf("lpm key = %x", key)
	}
}

// gatedPrefix and gatedSuffix are prefix_gated and suffix_gated of
// bpf/open.bpf.h.
func gatedPrefix(g *gate, p string) bool {
	if len(p) < 3 {
		return true
	}
	k := int(g.klen[uint16(p[1])<<8|uint16(p[2])])
	if k == 0 || k > len(p) {
		return false
	}
	bit := gateBit(fnv1a32([]byte(p[:k])))
	return g.bits[bit>>3]&(1<<(bit&7)) != 0
}

func gatedSuffix(g *gate, p string) bool {
	if len(p) < 2 {
		return false
	}
	k := int(g.klen[uint16(lowerByte(p[len(p)-2]))<<8|uint16(lowerByte(p[len(p)-1]))])
	if k == 0 || k > len(p)+1 {
		return false
	}
	var rev []byte
	for i := 0; i < k; i++ {
		if i < len(p) {
			rev = append(rev, lowerByte(p[len(p)-1-i]))
		} else {
			rev = append(rev, '/')
		}
	}
	bit := gateBit(fnv1a32(rev))
	return g.bits[bit>>3]&(1<<(bit&7)) != 0
}

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// TestGatesRejectRealisticPaths: the default tables' gates send none of
// the paths a Python server opens all day to a trie, and every watched
// path they should match to it.
func TestGatesRejectRealisticPaths(t *testing.T) {
	prefix, suffix, _, err := filterTables(config.Default().Capture)
	if err != nil {
		t.Fatal(err)
	}
	pg, sg := gates(prefix, suffix)
	for _, p := range []string{
		"/usr/lib/python3/dist-packages/yaml/__init__.py", "/usr/lib/python3.12/json/decoder.py",
		"/usr/local/lib/python3.12/site-packages/numpy/core/_methods.py",
		"/usr/lib/python3/dist-packages/__pycache__/six.cpython-312.pyc",
		"/usr/lib/x86_64-linux-gnu/libc.so.6", "/etc/passwd", "/etc/hosts", "/etc/ssl/certs/ca-certificates.crt",
		"/proc/self/stat", "/proc/meminfo", "/sys/devices/system/cpu/online", "/dev/null", "/dev/urandom",
		"/tmp/sensorbench-1/plain.txt",
	} {
		if gatedPrefix(&pg, p) || gatedSuffix(&sg, p) {
			t.Errorf("%s passes a gate (prefix %v, suffix %v)", p, gatedPrefix(&pg, p), gatedSuffix(&sg, p))
		}
	}
	for _, p := range []string{"/models/x", "/dev/nvidia0", "/dev/sda", "/proc/sys/kernel/core_pattern", "/etc/shadow",
		"/var/run/secrets/kubernetes.io/serviceaccount/token", "/host/etc", "/proc/kcore"} {
		if !gatedPrefix(&pg, p) {
			t.Errorf("%s does not pass the prefix gate", p)
		}
	}
	for _, p := range []string{"w.safetensors", "/x/model.GGUF", "/a/b.npy", "release_agent", "/x/.aws/credentials", "/r/docker.sock"} {
		if !gatedSuffix(&sg, p) {
			t.Errorf("%s does not pass the suffix gate", p)
		}
	}
}

func TestFilterTablesRejects(t *testing.T) {
	long := strings.Repeat("x", 40)
	for _, tt := range []struct {
		name string
		cfg  config.CaptureConfig
		want string
	}{
		{"relative prefix", config.CaptureConfig{WatchPrefixes: []string{"models/"}}, "absolute"},
		{"long prefix", config.CaptureConfig{WatchPrefixes: []string{"/" + long + long}}, "absolute path of 1..64"},
		{"short suffix", config.CaptureConfig{WatchSuffixes: []string{".h"}}, "3..32"},
		{"long suffix", config.CaptureConfig{WatchSuffixes: []string{long}}, "3..32"},
		{"name with slash", config.CaptureConfig{WatchNames: []string{"a/b"}}, "basename"},
		{"long proc entry", config.CaptureConfig{WatchProcEntries: []string{long}}, "1..16"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, err := filterTables(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want %q", err, tt.want)
			}
		})
	}
}

func TestDefaultFilterTablesLoad(t *testing.T) {
	if _, _, _, err := filterTables(config.Default().Capture); err != nil {
		t.Fatalf("default capture config does not fit the kernel tables: %v", err)
	}
}
