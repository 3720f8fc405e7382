package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// capSysModule is the CAP_SYS_MODULE bit of CapEff.
const capSysModule = 1 << 16

// bpfProgLoad is BPF_PROG_LOAD, the bpf(2) command of a program load.
const bpfProgLoad = 5

type esc008 struct{ baseRule }

func newESC008(*Settings) Rule {
	return &esc008{baseRule{Meta{
		ID:       "ESC-008",
		Title:    "Kernel module or eBPF program load from a container",
		MITRE:    []string{"T1547.006", "T1014", "T1611"},
		Severity: event.SevCritical,
		Description: "A container process runs insmod, modprobe, rmmod, kmod or bpftool (not a dry run), calls " +
			"init_module/finit_module, calls bpf(BPF_PROG_LOAD), or, holding CAP_SYS_MODULE, opens a *.ko / " +
			"*.ko.xz / *.ko.zst file. Module and BPF loads run code in the host kernel. The module and bpf " +
			"syscalls come from syscall tracepoints (the catalog's MODULE_LOAD/BPF_PROG_LOAD hooks need kprobes or " +
			"LSM, unavailable here).",
		Knobs: []string{"container_image_allowlist", "rules.ESC-008.allow_exe"},
		Kinds: kinds(event.KindExec, event.KindSyscall, event.KindOpen),
	}}}
}

func isKernelModule(b string) bool {
	return strings.HasSuffix(b, ".ko") || strings.HasSuffix(b, ".ko.xz") || strings.HasSuffix(b, ".ko.zst") || strings.HasSuffix(b, ".ko.gz")
}

func (r *esc008) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if !inContainer(ev) || p == nil {
		return
	}
	switch ev.Kind {
	case event.KindExec:
		b := argv0Base(p)
		if !in(b, "insmod", "modprobe", "rmmod", "kmod", "bpftool") {
			b = exeBase(p)
			if !in(b, "insmod", "modprobe", "rmmod", "bpftool") {
				return
			}
		}
		if hasArg(p.Args, "-n", "--dry-run", "--show-depends", "-D", "--help", "-h", "--version", "-V") {
			return
		}
		if b == "kmod" && (len(p.Args) < 2 || in(p.Args[1], "list", "static-nodes")) {
			return
		}
		if b == "bpftool" && (len(p.Args) < 2 || !hasArg(p.Args, "load", "loadall", "attach", "pin")) {
			// bpftool prog show / map dump: inspection, not a load.
			if !hasArg(p.Args, "run") {
				return
			}
		}
		ctx.Emit(ev, Report{
			Key:         "exec:" + b,
			Explanation: who(ev) + " ran " + cmdline(p) + " in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "module_tool"},
		})
	case event.KindSyscall:
		s := ev.Sys
		if s == nil {
			return
		}
		switch s.Name {
		case "init_module", "finit_module":
			ctx.Emit(ev, Report{
				Key:         "module",
				Explanation: who(ev) + " called " + s.Name + resultNote(s.Ret) + " in " + where(ev) + ".",
				Attrs:       map[string]string{"condition": "module_syscall", "syscall": s.Name, "params": s.Arg},
			})
		case "bpf":
			if s.Flags != bpfProgLoad {
				return
			}
			ctx.Emit(ev, Report{
				Key:         "bpf",
				Explanation: who(ev) + " loaded an eBPF program (bpf BPF_PROG_LOAD)" + resultNote(s.Ret) + " in " + where(ev) + ".",
				Attrs:       map[string]string{"condition": "bpf_prog_load"},
			})
		}
	case event.KindOpen:
		f := ev.File
		if f == nil || p.CapEff&capSysModule == 0 || !isKernelModule(baseName(f.Path)) {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "ko:" + f.Path,
			Explanation: who(ev) + " opened kernel module " + f.Path + " with CAP_SYS_MODULE in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "module_open", "path": f.Path},
		})
	}
}
