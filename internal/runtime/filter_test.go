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
	isSet := func(g [gateBytes]byte, a, b byte) bool {
		bit := uint(a)<<8 | uint(b)
		return g[bit>>3]&(1<<(bit&7)) != 0
	}
	if !isSet(pg, 'm', 'o') || isSet(pg, 't', 'm') {
		t.Errorf("prefix gate: /mo set %v, /tm set %v", isSet(pg, 'm', 'o'), isSet(pg, 't', 'm'))
	}
	for _, end := range []string{"rs", "pt", "nt"} { // .safetensors, .pt, release_agent
		if !isSet(sg, end[0], end[1]) {
			t.Errorf("suffix gate lacks %q", end)
		}
	}
	if isSet(sg, 'x', 't') {
		t.Error("suffix gate passes .txt")
	}
	short, _ := gates([]filterEntry{{data: []byte("/a")}}, nil)
	if !isSet(short, 't', 'm') {
		t.Error("a two-byte prefix must open the prefix gate for every path")
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
