package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

type esc011 struct{ baseRule }

func newESC011(*Settings) Rule {
	return &esc011{baseRule{Meta{
		ID:       "ESC-011",
		Title:    "Process injection or memory access across the container boundary",
		MITRE:    []string{"T1611", "T1055.008", "T1055.009"},
		Severity: event.SevCritical,
		Description: "A container process attaches to or writes another process outside its container: ptrace " +
			"ATTACH/SEIZE/POKE*/SET*REGS*, process_vm_writev, or /proc/<pid>/mem opened for writing (critical); " +
			"process_vm_readv or /proc/<pid>/mem opened for reading (high). Refused attempts count. The pid is the " +
			"actor's, mapped to the host pid; outside means another container or the host, by the engine's process " +
			"table or else the target's cgroup and mount namespace (a hostPID container poking a host daemon). An " +
			"actor in its own PID namespace reaches only its container or pod and is not matched; a target that " +
			"cannot be placed is reported at high.",
		Knobs: []string{"container_image_allowlist", "rules.ESC-011.allow_cgroup"},
		Kinds: kinds(event.KindSyscall, event.KindOpen),
	}}}
}

func (r *esc011) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if !inContainer(ev) || p == nil {
		return
	}
	var n uint32
	var cond, detail string
	var res int64
	sev := event.SevCritical
	switch ev.Kind {
	case event.KindSyscall:
		s := ev.Sys
		if s == nil {
			return
		}
		switch s.Name {
		case "ptrace":
			name, ok := ptraceNames[s.Flags]
			if !ok || s.Flags == 0 { // TRACEME names no target
				return
			}
			cond, detail = "ptrace", "ptrace "+name
		case "process_vm_writev":
			cond, detail = s.Name, s.Name
		case "process_vm_readv":
			cond, detail, sev = s.Name, s.Name, event.SevHigh
		default:
			return
		}
		n, res = s.Target, s.Ret
	case event.KindOpen:
		f := ev.File
		if f == nil {
			return
		}
		raw := f.RawPath
		pid, rest, ok := procPath(raw)
		if !ok {
			raw = f.Path
			if pid, rest, ok = procPath(raw); !ok {
				return
			}
		}
		if rest != "mem" || pid == "self" || pid == "thread-self" {
			return
		}
		cond, detail = "proc_mem_write", "opened "+raw+" for writing: the memory"
		if !f.IsWrite() {
			cond, detail, sev = "proc_mem_read", "opened "+raw+" for reading: the memory", event.SevHigh
		}
		n, res = atoiPID(pid), int64(f.Result)
	default:
		return
	}
	t, ok := ctx.State.HostPID(p, n, ctx.Now)
	if !ok || t == p.PID {
		return
	}
	out, other, decided := ctx.State.Outside(p, ev.Container, t, ctx.Now)
	if decided && !out {
		return
	}
	if !decided {
		other, sev = "unknown place (not resolved)", event.SevHigh
	}
	target := "pid " + itoa(uint64(t))
	if t != n {
		target += " (pid " + itoa(uint64(n)) + " in its namespace)"
	}
	expl := who(ev) + " " + detail + " of " + target + ", a process of " + other + resultNote(res) + ", from " +
		where(ev) + "."
	if !strings.HasPrefix(detail, "opened") {
		expl = who(ev) + " called " + detail + " on " + target + ", a process of " + other + resultNote(res) +
			", from " + where(ev) + "."
	}
	ctx.Emit(ev, Report{
		Key:         cond + ":" + itoa(uint64(t)),
		Severity:    sev,
		Explanation: expl,
		Attrs:       map[string]string{"condition": cond, "target_pid": itoa(uint64(t)), "target": other},
	})
}
