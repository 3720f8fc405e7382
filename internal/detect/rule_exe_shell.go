package detect

import "github.com/kestrel-sec/kestrel/internal/event"

type exe003 struct{ baseRule }

func newEXE003(*Settings) Rule {
	return &exe003{baseRule{Meta{
		ID:       "EXE-003",
		Title:    "Interactive shell in an inference container",
		MITRE:    []string{"T1059.004", "T1609"},
		Severity: event.SevLow,
		Description: "A shell with a controlling terminal starts in an inference container (inference_selector, " +
			"GPU allocation or a GPU owner) with a container runtime among its nearest ancestors: kubectl exec -it " +
			"or docker exec -it. Low: context for everything else the container does, not a page.",
		Knobs: []string{"inference_selector", "runtime_binaries_extra"},
		Kinds: kinds(event.KindExec),
	}}}
}

// runtimeParent reports whether one of the nearest ancestors (up to depth)
// is a container runtime, and names it.
func runtimeParent(s *Settings, p *event.Process, depth int) (string, bool) {
	for i, a := range p.Ancestors {
		if i >= depth {
			break
		}
		if s.IsRuntime(a.Exe) {
			return a.Exe, true
		}
	}
	return "", false
}

func (r *exe003) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if !inContainer(ev) || p == nil || !p.TTY || !isShell(exeBase(p)) {
		return
	}
	rt, ok := runtimeParent(ctx.Settings, p, 4)
	if !ok || !(ctx.Settings.MatchesInferenceSelector(ev.Container) || ctx.State.IsGPUContainer(ev.Container)) {
		return
	}
	ctx.Emit(ev, Report{
		Key:         "shell:" + itoa(uint64(p.PID)),
		Explanation: "interactive shell " + who(ev) + " started through " + baseName(rt) + " in inference " + where(ev) + ".",
		Attrs:       map[string]string{"runtime": rt},
	})
}
