package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

type esc003 struct{ baseRule }

func newESC003(*Settings) Rule {
	return &esc003{baseRule{Meta{
		ID:       "ESC-003",
		Title:    "Kernel usermode helper executes a non-allowlisted program",
		MITRE:    []string{"T1611"},
		Severity: event.SevCritical,
		Description: "A root process whose fork-time parent is kthreadd (pid 2) or a kworker thread executed a " +
			"program that is not on umh_allowlist. That is how the kernel runs release_agent, core_pattern pipes, " +
			"modprobe and uevent helpers, so it catches the payload of ESC-001/002 even when the write was missed. " +
			"For scripts the interpreter's script argument is checked against the allowlist too.",
		Knobs: []string{"umh_allowlist"},
		Kinds: kinds(event.KindExec),
	}}}
}

// kernelParent reports whether the fork-time parent of p is kthreadd or a
// kworker, and names it.
func kernelParent(p *event.Process) (string, bool) {
	if p.ForkParent == 2 || (p.ForkParent == 0 && p.PPID == 2) {
		return "kthreadd", true
	}
	if len(p.Ancestors) > 0 {
		a := p.Ancestors[0]
		if a.PID == p.ForkParent || p.ForkParent == 0 {
			if a.PID == 2 || a.Comm == "kthreadd" || a.Exe == "[kthreadd]" {
				return "kthreadd", true
			}
			if strings.HasPrefix(a.Comm, "kworker/") {
				return a.Comm, true
			}
			if strings.HasPrefix(a.Exe, "[kworker/") {
				return strings.Trim(a.Exe, "[]"), true
			}
		}
	}
	return "", false
}

func (r *esc003) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if p == nil || p.UID != 0 && p.EUID != 0 {
		return
	}
	parent, ok := kernelParent(p)
	if !ok {
		return
	}
	s := ctx.Settings
	if s.IsUMHAllowed(p.Exe) || len(p.Args) > 0 && strings.HasPrefix(p.Args[0], "/") && s.IsUMHAllowed(p.Args[0]) {
		return // argv[0] keeps the name the kernel ran (/sbin/modprobe -> kmod)
	}
	prog := p.Exe
	if b := baseName(p.Exe); (isShell(b) || isInterpreter(b)) && len(p.Args) > 1 && strings.HasPrefix(p.Args[1], "/") {
		prog = p.Args[1]
		if s.IsUMHAllowed(prog) {
			return
		}
	}
	attrs := map[string]string{"program": prog, "parent": parent}
	switch {
	case s.InContainerRootfs(prog):
		attrs["location"] = "container filesystem"
	case underAny(prog, []string{"/tmp", "/var/tmp", "/dev/shm"}):
		attrs["location"] = "temporary directory"
	case strings.HasPrefix(prog, "/proc/"):
		attrs["location"] = "/proc path"
	}
	ctx.Emit(ev, Report{
		Key:         prog,
		Explanation: "the kernel (" + parent + ") ran usermode helper " + prog + " as root, which is not on umh_allowlist.",
		Attrs:       attrs,
	})
}
