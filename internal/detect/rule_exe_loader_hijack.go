package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

type exe001 struct{ baseRule }

func newEXE001(*Settings) Rule {
	return &exe001{baseRule{Meta{
		ID:       "EXE-001",
		Title:    "Dynamic-loader hijack",
		MITRE:    []string{"T1574.006"},
		Severity: event.SevHigh,
		Description: "An exec whose captured environment sets LD_PRELOAD (not on preload_allowlist) or LD_AUDIT, " +
			"LD_LIBRARY_PATH naming a scratch directory (tmp, shm, /proc/self/cwd, a model root, or a relative " +
			"entry; not home directories, where toolchains such as rustup and conda keep libraries), or GLIBC_TUNABLES (CVE-2023-4911); or a write-open (or rename onto) of " +
			"/etc/ld.so.preload, /etc/ld.so.conf, /etc/ld.so.conf.d/*, /etc/ld.so.cache or the dynamic loader " +
			"itself, except by ldconfig, package managers and NVIDIA hooks. Critical for NVIDIA hooks and host " +
			"processes. Needs env capture at exec for the env half.",
		Knobs: []string{"preload_allowlist", "model_roots"},
		Kinds: kinds(event.KindExec, event.KindOpen, event.KindSyscall),
	}}}
}

// loaderConfigPath reports whether p is a loader configuration file or the
// dynamic loader.
func loaderConfigPath(p string) bool {
	switch {
	case strings.HasSuffix(p, "/etc/ld.so.preload"), strings.HasSuffix(p, "/etc/ld.so.conf"),
		strings.HasSuffix(p, "/etc/ld.so.cache"), strings.Contains(p, "/etc/ld.so.conf.d/"):
		return true
	case strings.HasPrefix(p, "/lib") || strings.HasPrefix(p, "/usr/lib"):
		b := baseName(p)
		return strings.HasPrefix(b, "ld") && strings.Contains(b, ".so") && !strings.HasPrefix(b, "ldap") &&
			(strings.HasPrefix(b, "ld-") || strings.HasPrefix(b, "ld.so") || strings.HasPrefix(b, "ld64"))
	}
	return false
}

// loaderWriterAllowed reports whether p may rewrite loader configuration.
func loaderWriterAllowed(p *event.Process) bool {
	b := exeBase(p)
	if in(b, "ldconfig", "ldconfig.real") || in(b, packageManagers...) || IsNVHook(p.Exe) {
		return true
	}
	return strings.Contains(p.Exe, "ldconfig") && (p.ExeMemfd || strings.HasPrefix(p.Exe, "memfd:"))
}

func (r *exe001) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if p == nil {
		return
	}
	sev := event.Severity(0)
	if !inContainer(ev) || IsNVHook(p.Exe) {
		sev = event.SevCritical
	}
	switch ev.Kind {
	case event.KindExec:
		for _, e := range p.Env {
			bad := false
			switch e.Name {
			case "LD_PRELOAD":
				bad = e.Value != "" && !ctx.Settings.IsPreloadAllowed(ev.Container, e.Value)
			case "LD_AUDIT", "GLIBC_TUNABLES":
				bad = e.Value != ""
			case "LD_LIBRARY_PATH":
				bad = ctx.Settings.writableLibraryPath(e.Value)
			}
			if !bad {
				continue
			}
			ctx.Emit(ev, Report{
				Key:         "env:" + e.Name + "=" + e.Value,
				Severity:    sev,
				Explanation: who(ev) + " was executed with " + e.Name + "=" + e.Value + " in " + where(ev) + ".",
				Attrs:       map[string]string{"condition": "loader_env", "variable": e.Name, "value": e.Value},
			})
			return
		}
	case event.KindOpen:
		f := ev.File
		if f == nil || !f.IsWrite() || !loaderConfigPath(f.Path) || loaderWriterAllowed(p) {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "file:" + f.Path,
			Severity:    sev,
			Explanation: who(ev) + " opened loader file " + f.Path + " for writing" + resultNote(int64(f.Result)) + " in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "loader_file_write", "path": f.Path},
		})
	case event.KindSyscall:
		s := ev.Sys
		if s == nil || (s.Name != "rename" && s.Name != "link" && s.Name != "symlink") || !loaderConfigPath(s.Path2) || loaderWriterAllowed(p) {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "file:" + s.Path2,
			Severity:    sev,
			Explanation: who(ev) + " replaced loader file " + s.Path2 + " with " + s.Path + " (" + s.Name + ") in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "loader_file_rename", "path": s.Path2, "source": s.Path},
		})
	}
}

// writableLibraryPath reports whether an LD_LIBRARY_PATH value names a
// writable directory or a relative entry (the empty entry is the cwd).
func (s *Settings) writableLibraryPath(v string) bool {
	if v == "" {
		return false
	}
	for rest := v; ; {
		i := strings.IndexByte(rest, ':')
		d := rest
		if i >= 0 {
			d = rest[:i]
		}
		if d == "" || !strings.HasPrefix(d, "/") || underAny(d, s.libHijackDirs) || s.InModelRoot(d) {
			return true
		}
		if i < 0 {
			return false
		}
		rest = rest[i+1:]
	}
}
