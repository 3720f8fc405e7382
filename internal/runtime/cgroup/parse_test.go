package cgroup

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/event"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func readPaths(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "paths.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// TestParseGolden runs the table of real-world paths in testdata/paths.txt
// and compares with testdata/paths.golden.
func TestParseGolden(t *testing.T) {
	p, err := NewParser([]string{"^/simctr-"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, path := range readPaths(t) {
		in := p.Parse(path)
		if !in.Container {
			fmt.Fprintf(&buf, "%s\thost\n", path)
			continue
		}
		fmt.Fprintf(&buf, "%s\tid=%s runtime=%s pod=%s qos=%s\n", path, in.ID, in.Runtime, in.PodUID, in.QoS)
	}
	golden := filepath.Join("testdata", "paths.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	got := strings.Split(buf.String(), "\n")
	wl := strings.Split(string(want), "\n")
	if len(got) != len(wl) {
		t.Fatalf("got %d lines; want %d (run with -update after checking)", len(got), len(wl))
	}
	for i := range got {
		if got[i] != wl[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, got[i], wl[i])
		}
	}
}

// TestParseKeyCases pins the cases the brief names, independently of the
// golden file, so that an -update cannot silently accept a regression.
func TestParseKeyCases(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const uid = "0e6c4ba8-5b31-4a3e-9f55-2c8b1b8e2f11"
	p, _ := NewParser([]string{"^/simctr-"})
	tests := []struct {
		path string
		want Info
	}{
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0e6c4ba8_5b31_4a3e_9f55_2c8b1b8e2f11.slice/cri-containerd-" + id + ".scope",
			Info{true, id, RuntimeContainerd, uid, QoSBestEffort}},
		{"/kubepods/burstable/pod" + uid + "/" + id, Info{true, id, event.Unknown, uid, QoSBurstable}},
		{"/kubepods/pod" + uid + "/crio-" + id, Info{true, id, RuntimeCRIO, uid, QoSGuaranteed}},
		{"/system.slice/docker-" + id + ".scope", Info{true, id, RuntimeDocker, "", ""}},
		{"/docker/" + id, Info{true, id, RuntimeDocker, "", ""}},
		{"/machine.slice/libpod-" + id + ".scope/container", Info{true, id, RuntimePodman, "", ""}},
		{"/simctr-infer-a1", Info{true, "simctr-infer-a1", event.Unknown, "", ""}},
		{"/kubepods/burstable/pod" + uid, Info{true, event.Unknown, event.Unknown, uid, QoSBurstable}},
		{"/", Info{}},
		{"/system.slice/crio-conmon-" + id + ".scope", Info{}},
		{"", Info{}},
		{"/" + strings.Repeat("a/", MaxPathLen), Info{}},
	}
	for _, tt := range tests {
		if got := p.Parse(tt.path); got != tt.want {
			t.Errorf("Parse(%.80q) = %+v; want %+v", tt.path, got, tt.want)
		}
	}
	// Without the extra regex the harness cgroup is the host.
	var zero *Parser
	if got := zero.Parse("/simctr-infer-a1"); got.Container {
		t.Errorf("nil parser: got %+v; want host", got)
	}
}

func TestNewParserBadRegex(t *testing.T) {
	if _, err := NewParser([]string{"ok", "(("}); err == nil || !strings.Contains(err.Error(), "container_cgroup_regex[1]") {
		t.Fatalf("got %v; want an error naming container_cgroup_regex[1]", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range readPaths(f) {
		f.Add(p)
	}
	p, _ := NewParser([]string{"^/simctr-"})
	f.Fuzz(func(t *testing.T, path string) {
		in := p.Parse(path)
		if in.Container && (in.ID == "" || in.Runtime == "") {
			t.Fatalf("Parse(%q) = %+v: a container must have non-empty id and runtime", path, in)
		}
		if !in.Container && in != (Info{}) {
			t.Fatalf("Parse(%q) = %+v: not a container but fields set", path, in)
		}
		if in.ID != event.Unknown && in.ID != "" && !strings.Contains(path, in.ID) {
			t.Fatalf("Parse(%q): id %q is not in the path", path, in.ID)
		}
	})
}
