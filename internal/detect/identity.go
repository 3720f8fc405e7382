package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Who an actor is, for exemptions (model updaters, loaders, runtimes,
// allowlisted children): the executable the kernel ran (Process.Exe), where
// it lies and whether its container wrote it, never argv[0], comm or a
// name alone. argv[0] is the caller's choice (exec -a pip ...), and a binary
// copied to a runtime's name inside a container is not the runtime.

// systemBinary reports whether p runs one of the system's own executables:
// an absolute exe path, not a memfd; on the host, outside scratch space
// (/tmp, /var/tmp, /dev/shm: interpreters live in /opt/conda or ~/.pyenv
// too); in a container, under a system binary directory and not written
// there since the sensor saw the container start. A tool copied to /tmp, or
// a binary dropped over /usr/bin/curl in the container, is not one.
func (a *aiState) systemBinary(st *State, p *event.Process, c *event.Container) bool {
	exe := p.Exe
	if exe == "" || exe[0] != '/' || p.ExeMemfd || strings.HasPrefix(exe, "/memfd:") {
		return false
	}
	if c == nil {
		return !underAny(exe, tmpDirs)
	}
	return a.s.InHostBinDir(exe) && st.WasWritten(c.ID, exe).IsZero()
}

// actorName is the name allowlists know p by: the basename of argv[0] when
// the exe the kernel ran is that program (the same name, or a versioned or
// target-prefixed build of it: python3 -> python3.11, gcc ->
// x86_64-linux-gnu-gcc-12), else the exe's basename. So "exec -a uname sh"
// is dash to an allowlist, and a multi-call binary is known by its own name.
func actorName(p *event.Process) string {
	a, e := argv0Base(p), exeBase(p)
	if p.Exe == "" || sameProgram(a, e) {
		return a
	}
	return e
}

// sameProgram reports whether the exe basename e is the program a names.
func sameProgram(a, e string) bool {
	if a == "" || e == "" {
		return false
	}
	if a == e {
		return true
	}
	const version = "0123456789."
	ev := strings.TrimSuffix(strings.TrimRight(e, version), "-")
	av := strings.TrimRight(a, version)
	if ev == "" || av == "" {
		return false
	}
	return ev == av || strings.HasSuffix(ev, "-"+av)
}

// loaderBinaries are package managers and downloaders that are binaries
// (not scripts, whose exe is their interpreter) and may read model files
// without tainting: they unpack and verify what they fetch.
var loaderBinaries = []string{"apt", "apt-get", "aptitude", "dpkg", "rpm", "apk", "microdnf", "uv", "micromamba",
	"curl", "wget"}

type workloadGlobs struct {
	w     workload
	globs []string
}

// isModelUpdater reports whether p may write model files in c
// (model_updaters): a glob without a space matches the actor's name (see
// actorName), one with a space matches "<name> <args>" from its start; "*"
// matches any run of characters, "/" included. Only system binaries
// qualify.
func (a *aiState) isModelUpdater(st *State, p *event.Process, c *event.Container) bool {
	if p == nil || len(a.updaters) == 0 || !a.systemBinary(st, p, c) {
		return false
	}
	var line string
	for i := range a.updaters {
		if !a.updaters[i].w.matches(c) {
			continue
		}
		for _, g := range a.updaters[i].globs {
			if !strings.Contains(g, " ") {
				if globMatch(g, actorName(p)) {
					return true
				}
				continue
			}
			if line == "" {
				line = baseCmdline(p)
			}
			if globMatch(g, line) || globMatch(g+" *", line) {
				return true
			}
		}
	}
	return false
}

// globMatch matches s against pattern with '*' (any run, '/' included) and
// '?' (one byte). It runs in O(len(pattern)*len(s)) at worst.
func globMatch(pattern, s string) bool {
	px, sx := 0, 0
	nextP, nextS := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextP, nextS = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextS > 0 && nextS <= len(s) {
			px, sx = nextP, nextS
			continue
		}
		return false
	}
	return true
}

// loaderExempt reports whether p may read model files without tainting:
// its exe path is on loader_allowlist; or it is a system binary that is a
// host container runtime or NVIDIA hook (on the host only: inside a
// container a runtime's name proves nothing), or a package manager or
// downloader binary — but not a downloader started as an uploader (wget
// --post-file, curl -T), which reads the file to send it.
func (a *aiState) loaderExempt(st *State, p *event.Process, c *event.Container) bool {
	if a.s.IsLoaderAllowed(c, p.Exe) {
		return true
	}
	if !a.systemBinary(st, p, c) {
		return false
	}
	if c == nil && (a.s.IsRuntime(p.Exe) || IsNVHook(p.Exe)) {
		return true
	}
	return in(exeBase(p), loaderBinaries...) && transferTool(p) == ""
}
