package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// tmpDirs are the temporary directories of EXE-002.
var tmpDirs = []string{"/tmp", "/var/tmp", "/dev/shm", "/run/shm"}

type exe002 struct{ baseRule }

func newEXE002(*Settings) Rule {
	return &exe002{baseRule{Meta{
		ID:       "EXE-002",
		Title:    "Drift / fileless execution in a container",
		MITRE:    []string{"T1105", "T1620"},
		Severity: event.SevHigh,
		Description: "A container process executes a memfd (fileless; runc's own runc_cloned memfd excepted), a " +
			"/proc/<pid>/fd/<n> path, a file under /tmp, /var/tmp, /dev/shm, /run/shm or a model root, or a file " +
			"that a process of the same container opened for writing after the container started (drift; " +
			"quiet during startup_grace for package installs at start).",
		Knobs: []string{"model_roots", "startup_grace"},
		Kinds: kinds(event.KindExec),
	}}}
}

func (r *exe002) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if !inContainer(ev) || p == nil || p.Exe == "" {
		return
	}
	exe := p.Exe
	var cond string
	switch {
	case p.ExeMemfd || strings.HasPrefix(exe, "memfd:"):
		if strings.Contains(exe, "runc_cloned:") {
			return
		}
		cond = "memfd"
	case strings.HasPrefix(exe, "/proc/"):
		if _, rest, ok := procPath(exe); !ok || !strings.HasPrefix(rest, "fd/") {
			return
		}
		cond = "proc_fd"
	case underAny(exe, tmpDirs):
		cond = "tmp"
	case ctx.Settings.InModelRoot(exe):
		cond = "model_root"
	default:
		w := ctx.State.WasWritten(ev.Container.ID, exe)
		if w.IsZero() || ctx.State.InStartupGrace(ev.Container, ctx.Now, ctx.Settings.Config.StartupGrace.D()) {
			return
		}
		cond = "written_in_container"
	}
	ctx.Emit(ev, Report{
		Key:         "exe:" + exe,
		Explanation: who(ev) + " executed " + exe + " (" + cond + ") in " + where(ev) + ".",
		Attrs:       map[string]string{"condition": cond, "exe": exe},
	})
}
