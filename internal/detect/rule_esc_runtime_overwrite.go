package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// runtimeBinaryNames are host runtime binaries whose overwrite is an escape
// (prefix match for the families).
var runtimeBinaryNames = []string{"runc", "crun", "nvidia-ctk", "nvidia-cdi-hook", "nvidia-container-cli"}
var runtimeBinaryPrefixes = []string{"containerd-shim", "nvidia-container-runtime", "libnvidia-container"}

// packageManagers may replace runtime binaries.
var packageManagers = []string{"dpkg", "rpm", "apt", "apt-get", "dnf", "yum", "microdnf", "zypper", "unattended-upgr", "unattended-upgrade", "apk"}

type esc009 struct{ baseRule }

func newESC009(*Settings) Rule {
	return &esc009{baseRule{Meta{
		ID:       "ESC-009",
		Title:    "Runtime binary overwrite or leaked host file descriptor",
		MITRE:    []string{"T1611"},
		Severity: event.SevCritical,
		Description: "(1) A container process opens /proc/self/exe or /proc/<pid>/exe for writing (CVE-2019-5736; " +
			"the attempt fails with ETXTBSY and still counts), or writes through /proc/self/fd/<n> onto a runtime " +
			"binary; (2) anything but a package manager opens a host runtime binary (runc, crun, containerd-shim*, " +
			"nvidia-container-runtime*, nvidia-ctk, nvidia-cdi-hook, nvidia-container-cli, libnvidia-container*) " +
			"under a host binary directory or runtime_binaries_extra for writing; (3) a container process execs " +
			"with a cwd under /proc/<pid>/fd/ or opens a path through /proc/self/fd/<n>/.. (CVE-2024-21626).",
		Knobs: []string{"runtime_binaries_extra", "container_image_allowlist"},
		Kinds: kinds(event.KindOpen, event.KindExec),
	}}}
}

func isRuntimeBinaryName(b string) bool {
	if in(b, runtimeBinaryNames...) {
		return true
	}
	for _, p := range runtimeBinaryPrefixes {
		if strings.HasPrefix(b, p) {
			return true
		}
	}
	return false
}

// fdDirEscape reports whether p walks out of a leaked directory fd:
// /proc/<pid|self>/fd/<n>/.. or /proc/<pid|self>/fd/<n>/<more>.
func fdDirEscape(p string) bool {
	_, rest, ok := procPath(p)
	if !ok || !strings.HasPrefix(rest, "fd/") {
		return false
	}
	r := rest[len("fd/"):]
	i := strings.IndexByte(r, '/')
	return i > 0 && isDigits(r[:i]) && strings.HasPrefix(r[i+1:], "..")
}

func (r *esc009) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if p == nil {
		return
	}
	switch ev.Kind {
	case event.KindOpen:
		f := ev.File
		if f == nil {
			return
		}
		if inContainer(ev) {
			if _, rest, ok := procPath(f.RawPath); ok {
				if rest == "exe" && f.IsWrite() {
					ctx.Emit(ev, Report{
						Key:         "exe",
						Explanation: who(ev) + " opened " + f.RawPath + " for writing" + resultNote(int64(f.Result)) + " from " + where(ev) + " (runtime binary overwrite, CVE-2019-5736).",
						Attrs:       map[string]string{"condition": "proc_exe_write", "raw_path": f.RawPath, "path": f.Path},
					})
					return
				}
				if strings.HasPrefix(rest, "fd/") && f.IsWrite() && isRuntimeBinaryName(baseName(f.Path)) {
					ctx.Emit(ev, Report{
						Key:         "fd-write:" + f.Path,
						Explanation: who(ev) + " wrote runtime binary " + f.Path + " through " + f.RawPath + " from " + where(ev) + ".",
						Attrs:       map[string]string{"condition": "proc_fd_write", "raw_path": f.RawPath, "path": f.Path},
					})
					return
				}
			}
			if fdDirEscape(f.RawPath) {
				ctx.Emit(ev, Report{
					Key:         "fd-dir",
					Explanation: who(ev) + " opened " + f.RawPath + " through a leaked directory descriptor from " + where(ev) + " (CVE-2024-21626).",
					Attrs:       map[string]string{"condition": "leaked_fd", "raw_path": f.RawPath, "path": f.Path},
				})
				return
			}
		}
		if !f.IsWrite() || !isRuntimeBinaryName(baseName(f.Path)) && !ctx.Settings.runtimeExtra.has(f.Path) {
			return
		}
		s := ctx.Settings
		if !s.InHostBinDir(f.Path) && !in(f.Path, s.runtimeExtra.paths...) {
			return
		}
		if in(exeBase(p), packageManagers...) || in(argv0Base(p), packageManagers...) {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "bin:" + f.Path,
			Explanation: who(ev) + " opened host runtime binary " + f.Path + " for writing" + resultNote(int64(f.Result)) + " from " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "runtime_binary_write", "path": f.Path},
		})
	case event.KindExec:
		if !inContainer(ev) {
			return
		}
		if _, rest, ok := procPath(p.Cwd); ok && strings.HasPrefix(rest, "fd/") {
			ctx.Emit(ev, Report{
				Key:         "cwd",
				Explanation: who(ev) + " was started with working directory " + p.Cwd + " (a leaked host descriptor, CVE-2024-21626) in " + where(ev) + ".",
				Attrs:       map[string]string{"condition": "leaked_fd_cwd", "cwd": p.Cwd},
			})
		}
	}
}
