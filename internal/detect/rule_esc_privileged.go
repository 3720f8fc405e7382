package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// escapeCaps are capabilities that make a container escape-capable.
var escapeCaps = []struct {
	bit  uint
	name string
}{
	{21, "CAP_SYS_ADMIN"}, {16, "CAP_SYS_MODULE"}, {17, "CAP_SYS_RAWIO"}, {19, "CAP_SYS_PTRACE"},
	{2, "CAP_DAC_READ_SEARCH"}, {39, "CAP_BPF"}, {12, "CAP_NET_ADMIN"}, {22, "CAP_SYS_BOOT"},
}

// Clone flags of unshare(2).
const (
	cloneNewNS   = 0x00020000
	cloneNewUser = 0x10000000
)

type esc010 struct{ baseRule }

func newESC010(*Settings) Rule {
	return &esc010{baseRule{Meta{
		ID:       "ESC-010",
		Title:    "Namespace/capability escalation attempt or escape-capable container start",
		MITRE:    []string{"T1611", "T1610"},
		Severity: event.SevMedium,
		Description: "(a) Posture: the first exec seen in a container holds CAP_SYS_ADMIN, SYS_MODULE, SYS_RAWIO, " +
			"SYS_PTRACE, DAC_READ_SEARCH, BPF, NET_ADMIN or SYS_BOOT, or shares the host PID or network namespace: " +
			"info, low for inference containers (the catalog's medium would page on every privileged serving pod; " +
			"posture is not an attack). (b) A container process without CAP_SYS_ADMIN runs unshare with -U/-r/" +
			"--user/--map-root-user/-m/--mount or calls unshare(2) with CLONE_NEWUSER or CLONE_NEWNS (gaining " +
			"capabilities through a new user namespace), or any container process runs capsh or setcap: medium.",
		Knobs: []string{"container_image_allowlist", "inference_selector"},
		Kinds: kinds(event.KindExec, event.KindSyscall),
	}}}
}

func (r *esc010) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if !inContainer(ev) || p == nil {
		return
	}
	switch ev.Kind {
	case event.KindExec:
		b := exeBase(p)
		switch {
		case b == "unshare" && p.CapEff&capSysAdmin == 0 && hasArg(p.Args, "-U", "-r", "--user", "--map-root-user", "-m", "--mount") ||
			b == "capsh" || b == "setcap":
			ctx.Emit(ev, Report{
				Key:         "exec:" + b,
				Explanation: who(ev) + " ran " + cmdline(p) + " in " + where(ev) + ".",
				Attrs:       map[string]string{"condition": "escalation_tool"},
			})
			return
		}
		cs := ctx.State.Container(ev.Container.ID)
		if cs == nil || cs.PostureReported {
			return
		}
		cs.PostureReported = true
		var why []string
		for _, c := range escapeCaps {
			if p.CapEff&(1<<c.bit) != 0 {
				why = append(why, c.name)
			}
		}
		host := ctx.Settings.HostNS
		if host.PID != 0 && p.NS.PID == host.PID {
			why = append(why, "host PID namespace")
		}
		if host.Net != 0 && p.NS.Net == host.Net {
			why = append(why, "host network namespace")
		}
		if len(why) == 0 {
			return
		}
		sev := event.SevInfo
		if ctx.Settings.MatchesInferenceSelector(ev.Container) || ctx.State.IsGPUContainer(ev.Container) {
			sev = event.SevLow
		}
		ctx.Emit(ev, Report{
			Key:         "posture",
			Severity:    sev,
			Explanation: where(ev) + " started escape-capable: its first process " + who(ev) + " has " + strings.Join(why, ", ") + ".",
			Attrs:       map[string]string{"condition": "posture", "privileges": strings.Join(why, ",")},
		})
	case event.KindSyscall:
		s := ev.Sys
		if s == nil || s.Name != "unshare" || s.Flags&(cloneNewUser|cloneNewNS) == 0 || p.CapEff&capSysAdmin != 0 {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "unshare",
			Explanation: who(ev) + " called unshare(0x" + hex(s.Flags) + ") without CAP_SYS_ADMIN in " + where(ev) + resultNote(s.Ret) + ".",
			Attrs:       map[string]string{"condition": "unshare_syscall"},
		})
	}
}

func hex(v uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	i := len(b)
	for {
		i--
		b[i] = digits[v&0xf]
		v >>= 4
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}
