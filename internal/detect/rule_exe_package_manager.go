package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// installers are the package managers of EXE-004.
var installers = []string{"pip", "pip3", "uv", "conda", "mamba", "micromamba", "apt", "apt-get", "aptitude", "dpkg",
	"yum", "dnf", "microdnf", "apk", "npm", "yarn", "pnpm", "gem", "cargo", "go"}

type exe004 struct{ baseRule }

func newEXE004(*Settings) Rule {
	return &exe004{baseRule{Meta{
		ID:       "EXE-004",
		Title:    "Package manager or tool download in a running inference container",
		MITRE:    []string{"T1105"},
		Severity: event.SevMedium,
		Description: "After startup_grace (or, for GPU containers, after the first GPU owner appeared), an " +
			"inference container runs a package manager (pip, uv, conda, apt, dpkg, yum, dnf, apk, npm, gem, " +
			"python -m pip ...), wget, or curl saving to a file (-o/-O/--output/--remote-name, not /dev/null). " +
			"A direct child of a shell entrypoint is the image installing at start and is not matched.",
		Knobs: []string{"inference_selector", "startup_grace"},
		Kinds: kinds(event.KindExec),
	}}}
}

// installTool names the installer or downloader p runs, or "".
func installTool(p *event.Process) string {
	b := argv0Base(p)
	if in(b, installers...) || strings.HasPrefix(b, "pip3.") {
		if b == "go" && !hasArg(p.Args, "install", "get") {
			return ""
		}
		return b
	}
	if isInterpreter(b) && strings.HasPrefix(b, "python") {
		for i := 1; i+1 < len(p.Args); i++ {
			if p.Args[i] == "-m" && in(p.Args[i+1], "pip", "ensurepip", "uv") {
				return b + " -m " + p.Args[i+1]
			}
		}
		return ""
	}
	switch b {
	case "wget":
		return b
	case "curl":
		for i := 1; i < len(p.Args); i++ {
			a := p.Args[i]
			switch {
			case a == "-O" || a == "--remote-name" || a == "--remote-name-all" || strings.HasPrefix(a, "-O") && !strings.HasPrefix(a, "--"):
				return b
			case a == "-o" || a == "--output":
				if i+1 < len(p.Args) && p.Args[i+1] != "/dev/null" && p.Args[i+1] != "-" {
					return b
				}
			case strings.HasPrefix(a, "--output="):
				if v := a[len("--output="):]; v != "/dev/null" && v != "-" {
					return b
				}
			}
		}
	}
	return ""
}

func (r *exe004) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if !inContainer(ev) || p == nil {
		return
	}
	tool := installTool(p)
	if tool == "" {
		return
	}
	c := ev.Container
	if !(ctx.Settings.MatchesInferenceSelector(c) || ctx.State.IsGPUContainer(c)) {
		return
	}
	if ctx.State.InStartupGrace(c, ctx.Now, ctx.Settings.Config.StartupGrace.D()) {
		return
	}
	if cs := ctx.State.Container(c.ID); cs != nil && p.ForkParent == cs.Entrypoint && len(p.Ancestors) > 0 && isShell(baseName(p.Ancestors[0].Exe)) {
		return
	}
	ctx.Emit(ev, Report{
		Key:         "tool:" + tool,
		Explanation: who(ev) + " ran " + cmdline(p) + " in running inference " + where(ev) + ".",
		Attrs:       map[string]string{"tool": tool},
	})
}
