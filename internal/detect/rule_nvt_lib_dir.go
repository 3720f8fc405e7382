package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// driverLibPrefixes are the NVIDIA driver library basenames of NVT-004.
var driverLibPrefixes = []string{"libnvidia", "libcuda", "libnvcuvid", "libnvoptix", "libEGL_nvidia", "libGLX_nvidia"}

// msBind is MS_BIND of mount(2).
const msBind = 0x1000

// isDriverLib reports whether a path component is a driver library name
// such as libnvidia-ml.so.1.
func isDriverLib(c string) bool {
	for _, p := range driverLibPrefixes {
		if strings.HasPrefix(c, p) {
			return isSharedObject(c)
		}
	}
	return false
}

// driverLibAsDir returns the driver library name used as a directory in p
// ("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1/etc/hostname").
func driverLibAsDir(p string) (string, bool) {
	for i := strings.Index(p, "/lib"); i >= 0; {
		rest := p[i+1:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return "", false
		}
		if isDriverLib(rest[:j]) && len(rest) > j+1 {
			return rest[:j], true
		}
		k := strings.Index(rest, "/lib")
		if k < 0 {
			return "", false
		}
		i += 1 + k
	}
	return "", false
}

type nvt004 struct{ baseRule }

func newNVT004(*Settings) Rule {
	return &nvt004{baseRule{Meta{
		ID:       "NVT-004",
		Title:    "Driver-library path used as a directory / host paths surfaced via GPU library mounts",
		MITRE:    []string{"T1611", "T1204.003"},
		Severity: event.SevCritical,
		Description: "(1) A container process opens, or connects to a unix socket at, a path that uses an NVIDIA " +
			"driver library name as a directory (…/libnvidia-ml.so.1/etc/hostname): the CVE-2024-0132 / " +
			"CVE-2025-23359 shape, where the toolkit bind-mounted host / or /run onto a library path. Any container " +
			"counts, not only GPU ones: no legitimate path looks like this. (2) A bind mount (mount syscall with " +
			"MS_BIND, or an exec of mount --bind/--rbind) onto a driver-library target whose source is not a " +
			"library file, or passes through /proc/1/cwd, /proc/self/root or '..'. Resolved paths are needed for " +
			"(1) when the container reaches the mount through a symlink.",
		Kinds: kinds(event.KindOpen, event.KindConnect, event.KindSyscall, event.KindExec),
	}}}
}

// badLibBind reports whether binding src onto dst surfaces a host path on a
// driver-library name.
func badLibBind(src, dst string) bool {
	if !isDriverLib(baseName(strings.TrimSuffix(dst, "/"))) {
		return false
	}
	return !isSharedObject(baseName(src)) || strings.Contains(src, "/proc/1/cwd") ||
		strings.Contains(src, "/proc/self/root") || strings.Contains(src, "..")
}

func (r *nvt004) Eval(ctx *Context, ev *event.Event) {
	switch ev.Kind {
	case event.KindOpen, event.KindConnect:
		if !inContainer(ev) {
			return
		}
		var paths [2]string
		if ev.Kind == event.KindOpen {
			if ev.File == nil {
				return
			}
			paths = [2]string{ev.File.Path, ev.File.RawPath}
		} else {
			if ev.Net == nil || ev.Net.UnixPath == "" {
				return
			}
			paths[0] = ev.Net.UnixPath
		}
		for _, p := range paths {
			if lib, ok := driverLibAsDir(p); ok {
				verb := "opened "
				if ev.Kind == event.KindConnect {
					verb = "connected to "
				}
				ctx.Emit(ev, Report{
					Key:         "path:" + lib,
					Explanation: who(ev) + " " + verb + p + ", which uses driver library " + lib + " as a directory, in " + where(ev) + ".",
					Attrs:       map[string]string{"condition": "lib_as_dir", "path": p, "library": lib},
				})
				return
			}
		}
	case event.KindSyscall:
		s := ev.Sys
		if s == nil || s.Name != "mount" || s.Flags&msBind == 0 || !badLibBind(s.Path, s.Path2) {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "mount:" + s.Path2,
			Explanation: who(ev) + " bind-mounted " + s.Path + " onto driver-library path " + s.Path2 + " in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "lib_bind_mount", "source": s.Path, "target": s.Path2},
		})
	case event.KindExec:
		p := ev.Process
		if p == nil || exeBase(p) != "mount" && argv0Base(p) != "mount" {
			return
		}
		bind := false
		var operands [2]string
		n := 0
		for i := 1; i < len(p.Args); i++ {
			a := p.Args[i]
			switch {
			case a == "--bind" || a == "--rbind" || a == "-B" || a == "-R":
				bind = true
			case a == "-o" && i+1 < len(p.Args):
				if strings.Contains(p.Args[i+1], "bind") {
					bind = true
				}
				i++
			case a == "-t" && i+1 < len(p.Args):
				i++
			case strings.HasPrefix(a, "-"):
			default:
				if n < 2 {
					operands[n] = a
				}
				n++
			}
		}
		if !bind || n != 2 || !badLibBind(operands[0], operands[1]) {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "mount:" + operands[1],
			Explanation: who(ev) + " ran " + cmdline(p) + ", binding " + operands[0] + " onto driver-library path " + operands[1] + " in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "lib_bind_mount", "source": operands[0], "target": operands[1]},
		})
	}
}
