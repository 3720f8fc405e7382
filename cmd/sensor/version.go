package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// buildVersion and buildCommit are stamped by `make build` and the image
// build (scripts/version.sh):
//
//	-ldflags "-X main.buildVersion=v0.1.0 -X main.buildCommit=<sha>"
//
// A plain `go build` leaves them empty, and versionOf fills them from what
// the Go toolchain records in the binary.
var buildVersion, buildCommit string

// version is the sensor's semantic version, as --version, GetStatus and the
// OCSF product version report it.
var version, commit = versionOf(buildVersion, buildCommit, readBuildInfo())

// readBuildInfo is debug.ReadBuildInfo without the ok: nil when the binary
// carries no build information.
func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// versionOf resolves the version and commit: the stamped values first; else
// the module version `go install ...@vX.Y.Z` records and the VCS revision a
// build in a git checkout records; else v0.0.0-dev+<commit>, the form
// scripts/version.sh gives an untagged tree.
func versionOf(stampedVersion, stampedCommit string, bi *debug.BuildInfo) (ver, rev string) {
	ver, rev = stampedVersion, stampedCommit
	modified := false
	if bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if ver == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			ver = bi.Main.Version
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if ver == "" {
		ver = "v0.0.0-dev+" + shortCommit(rev)
		if modified {
			ver += ".dirty"
		}
	}
	return ver, rev
}

func shortCommit(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// depVersion is the version of module path linked into the binary, following
// a replace directive; "unknown" when the build information does not say.
func depVersion(bi *debug.BuildInfo, path string) string {
	if bi == nil {
		return "unknown"
	}
	for _, d := range bi.Deps {
		if d.Path != path {
			continue
		}
		if d.Replace != nil {
			return d.Replace.Path + " " + d.Replace.Version
		}
		return d.Version
	}
	return "unknown"
}

// printVersion writes what --version prints: the version on the first line,
// then what a bug report needs to know about the build.
func printVersion(w io.Writer, bi *debug.BuildInfo) {
	goVersion := runtime.Version()
	if bi != nil && bi.GoVersion != "" {
		goVersion = bi.GoVersion
	}
	fmt.Fprintf(w, "sensor %s\n  commit:      %s\n  go:          %s %s/%s\n  cilium/ebpf: %s\n",
		version, commit, goVersion, runtime.GOOS, runtime.GOARCH, depVersion(bi, "github.com/cilium/ebpf"))
}
