package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionOf(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	const sha = "0123456789abcdef0123456789abcdef01234567"
	for _, tt := range []struct {
		name                   string
		stampedVer, stampedRev string
		bi                     *debug.BuildInfo
		wantVer, wantRev       string
	}{
		{"stamped by make", "v1.2.3", sha, vcs("ffff", "true"), "v1.2.3", sha},
		{"stamped untagged", "v0.0.0-dev+0123456789ab", sha, nil, "v0.0.0-dev+0123456789ab", sha},
		{"go build in a checkout", "", "", vcs(sha, "false"), "v0.0.0-dev+0123456789ab", sha},
		{"go build with local edits", "", "", vcs(sha, "true"), "v0.0.0-dev+0123456789ab.dirty", sha},
		{"go install at a tag", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.1"}}, "v0.4.1", "unknown"},
		{"no build information", "", "", nil, "v0.0.0-dev+unknown", "unknown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ver, rev := versionOf(tt.stampedVer, tt.stampedRev, tt.bi)
			if ver != tt.wantVer || rev != tt.wantRev {
				t.Errorf("versionOf = %q, %q; want %q, %q", ver, rev, tt.wantVer, tt.wantRev)
			}
		})
	}
}

// --version names what a bug report needs: the version first, then the
// commit, the Go toolchain and the cilium/ebpf library the binary links.
func TestPrintVersion(t *testing.T) {
	var b bytes.Buffer
	printVersion(&b, &debug.BuildInfo{GoVersion: "go1.26.8", Deps: []*debug.Module{
		{Path: "github.com/vishvananda/netlink", Version: "v1.3.1"},
		{Path: "github.com/cilium/ebpf", Version: "v0.22.0"},
	}})
	out := b.String()
	for _, want := range []string{"sensor " + version + "\n", "commit:      " + commit, "go:          go1.26.8 ", "cilium/ebpf: v0.22.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("--version output %q lacks %q", out, want)
		}
	}
	// The test binary links cilium/ebpf as the sensor does.
	if v := depVersion(readBuildInfo(), "github.com/cilium/ebpf"); !strings.HasPrefix(v, "v0.") {
		t.Errorf("cilium/ebpf version from this binary's build info: %q", v)
	}
}
