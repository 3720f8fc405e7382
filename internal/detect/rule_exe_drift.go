package detect

import (
	"path"
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// tmpDirs are the temporary directories of EXE-002.
var tmpDirs = []string{"/tmp", "/var/tmp", "/dev/shm", "/run/shm"}

// shmDirs are the shared-memory directories: a script run from there is
// drift wherever it came from (Falco "Execution from /dev/shm").
var shmDirs = []string{"/dev/shm", "/run/shm"}

// isDynamicLoader reports whether the basename b is the ELF dynamic loader.
func isDynamicLoader(b string) bool {
	return strings.HasPrefix(b, "ld-linux") || strings.HasPrefix(b, "ld-musl") || strings.HasPrefix(b, "ld64.so") || b == "ld.so"
}

// programOperand returns the program a shell, an interpreter or the dynamic
// loader was started to run: the first operand, made absolute against the
// cwd. It is "" for command strings (-c, -e, -m) and for ld.so --list or
// --verify (ldd); loader reports whether the image is the dynamic loader.
func programOperand(p *event.Process) (op string, loader bool) {
	b := exeBase(p)
	loader = isDynamicLoader(b)
	if !loader && !isShell(b) && !isInterpreter(b) {
		return "", false
	}
	for i := 1; i < len(p.Args); i++ {
		a := p.Args[i]
		switch {
		case a == "":
			continue
		case a == "--":
			continue
		case a[0] != '-':
			if !strings.HasPrefix(a, "/") {
				if p.Cwd == "" {
					return "", loader
				}
				a = path.Join(p.Cwd, a)
			}
			return a, loader
		case loader && in(a, "--list", "--verify", "--help", "--version", "--list-diagnostics", "--list-tunables"):
			return "", true
		case loader && in(a, "--library-path", "--preload", "--audit", "--inhibit-rpath", "--argv0"):
			i++ // the option's value
		case !loader && in(a, "-c", "-m", "-e", "-E", "-r"):
			return "", false // a command string or module, not a file
		}
	}
	return "", loader
}

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
			"quiet during startup_grace for package installs at start). The same holds for the program a shell, " +
			"interpreter or the dynamic loader is started on (a shebang script, 'ld-linux.so /dev/shm/x'): " +
			"a script under /dev/shm, a loader operand under a temporary directory or model root, or one written " +
			"in the container after startup_grace.",
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
		grace := ctx.State.InStartupGrace(ev.Container, ctx.Now, ctx.Settings.Config.StartupGrace.D())
		if w := ctx.State.WasWritten(ev.Container.ID, exe); !w.IsZero() && !grace {
			cond = "written_in_container"
			break
		}
		// The image may be an interpreter or the dynamic loader running a
		// dropped program: a shebang script (the kernel passes its path as
		// argv[1]) or "ld-linux.so /dev/shm/x", which evades exec-path checks.
		op, loader := programOperand(p)
		if op == "" {
			return
		}
		switch {
		case underAny(op, shmDirs):
			cond = "script_in_shm"
			if loader {
				cond = "loader_tmp"
			}
		case loader && (underAny(op, tmpDirs) || ctx.Settings.InModelRoot(op)):
			cond = "loader_tmp"
		case !grace && !ctx.State.WasWritten(ev.Container.ID, op).IsZero():
			cond = "script_written_in_container"
		default:
			return
		}
		exe = op
	}
	ctx.Emit(ev, Report{
		Key:         "exe:" + exe,
		Explanation: who(ev) + " executed " + exe + " (" + cond + ") in " + where(ev) + ".",
		Attrs:       map[string]string{"condition": cond, "exe": exe},
	})
}
