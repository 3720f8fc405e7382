package detect

import (
	"errors"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/kestrel-sec/kestrel/internal/detect/model"
	"github.com/kestrel-sec/kestrel/internal/event"
)

var errNotIndex = errors.New("not a GPU index")

// GPU — GPU-node and inference-workload rules (docs/rules.md,
// GPU-001…008).

// inferenceServers are the server executables of GPU-001's parent test.
var inferenceServers = []string{"tritonserver", "text-generation-server", "text-generation-launcher",
	"llama-server", "ollama", "vllm", "sglang"}

// isServer reports whether p is an inference server: a known server binary,
// or python running vllm, sglang, lmdeploy or ray.
func isServer(p *event.Process) bool {
	b := argv0Base(p)
	if in(b, inferenceServers...) || in(exeBase(p), inferenceServers...) {
		return true
	}
	if !isInterpreter(exeBase(p)) || !strings.HasPrefix(exeBase(p), "python") {
		return false
	}
	for i := 1; i < len(p.Args) && i < 6; i++ {
		x := p.Args[i]
		if strings.Contains(x, "vllm") || strings.Contains(x, "sglang") || strings.Contains(x, "lmdeploy") ||
			x == "ray" || strings.HasPrefix(x, "ray.") || strings.HasSuffix(x, "/ray") {
			return true
		}
	}
	return false
}

// gpuChildTools are GPU-001's network tools besides shells and interpreters.
var gpuChildTools = []string{"curl", "wget", "nc", "ncat", "netcat", "socat", "telnet", "ssh", "scp"}

// reverseShellMarks make a GPU-001 child critical.
var reverseShellMarks = []string{"/dev/tcp/", "/dev/udp/", "nc -e", "ncat -e", "bash -i", "sh -i", "mkfifo",
	"socket.", "pty.spawn", "base64 -d", "base64 --decode"}

type gpu001 struct {
	baseRule
	buf []byte // "<argv0 basename> <args...>" for the allowlist, reused
}

// childAllowed is Settings.IsGPUChildAllowed without allocating.
func (r *gpu001) childAllowed(s *Settings, p *event.Process) bool {
	return s.gpuChildAllowedBuf(&r.buf, p)
}

func newGPU001(*Settings) Rule {
	return &gpu001{baseRule: baseRule{Meta{
		ID:       "GPU-001",
		Title:    "Inference/GPU process spawns a shell, one-liner interpreter or network tool",
		MITRE:    []string{"T1059.004", "T1059.006", "T1190", "AML.T0050", "AML.T0011.000"},
		Severity: event.SevHigh,
		Description: "In a container, a process whose fork-time lineage holds a GPU owner of the same container, " +
			"or whose parent is an inference server (tritonserver, TGI, llama-server, ollama, python running " +
			"vllm/sglang/lmdeploy/ray), runs a shell, curl, wget, nc, socat, telnet, ssh, scp, or python/perl/" +
			"ruby/php with -c/-e, and does not match gpu_child_allowlist. Critical when argv carries reverse-shell " +
			"marks (/dev/tcp/, bash -i, nc -e, mkfifo, pty.spawn, base64 -d, curl|sh) or during model load (within " +
			"promote_grace after the owner first opened a model file). Children and connects of the last " +
			"10 s are judged again when NVML first lists an ancestor (the sampler runs behind the process).",
		Knobs: []string{"gpu_child_allowlist", "promote_grace"},
		Kinds: kinds(event.KindExec, event.KindGPU),
	}}}
}

// isGPUChild reports whether p is what GPU-001 looks for: a shell, a
// network tool, or an interpreter running a one-liner.
func isGPUChild(p *event.Process) bool {
	b := argv0Base(p)
	eb := exeBase(p)
	child := isShell(b) || isShell(eb) || in(b, gpuChildTools...) || in(eb, gpuChildTools...)
	if !child && (isInterpreter(b) || isInterpreter(eb)) {
		child = hasArg(p.Args, "-c", "-e", "-E", "-r")
	}
	return child
}

func (r *gpu001) Eval(ctx *Context, ev *event.Event) {
	if ev.Kind == event.KindGPU {
		// Children that ran before NVML listed their ancestor as an owner.
		for i := range ctx.eng.ai.late {
			if l := &ctx.eng.ai.late[i]; l.kind == event.KindExec {
				r.check(ctx, l.event(), l.owner)
			}
		}
		return
	}
	r.check(ctx, ev, 0)
}

// check evaluates an exec; lateOwner is the owner found after the fact
// (0: look the lineage up now).
func (r *gpu001) check(ctx *Context, ev *event.Event, lateOwner uint32) {
	p := ev.Process
	if !inContainer(ev) || p == nil || !isGPUChild(p) {
		return
	}
	b := argv0Base(p)
	a := ctx.eng.ai
	owner, ok := lateOwner, lateOwner != 0
	if !ok {
		owner, ok = ancestorOwner(ctx.State, p, ev.Container)
	}
	server := false
	if !ok {
		par, found := a.procs.Peek(p.ForkParent)
		if !found || par.p == nil || !isServer(par.p) {
			return
		}
		owner, server = p.ForkParent, true
	}
	if r.childAllowed(ctx.Settings, p) {
		return
	}
	why := "GPU owner pid " + itoa(uint64(owner)) + " in its lineage"
	if server {
		par, _ := a.procs.Peek(owner)
		why = "inference server parent " + baseName(par.exe) + " (pid " + itoa(uint64(owner)) + ")"
	}
	line := cmdline(p)
	var sev event.Severity
	mark := ""
	for _, m := range reverseShellMarks {
		if strings.Contains(line, m) {
			mark = m
			break
		}
	}
	if mark == "" && (strings.Contains(line, "curl") || strings.Contains(line, "wget")) &&
		(strings.Contains(line, "| sh") || strings.Contains(line, "| bash") || strings.Contains(line, "|sh") ||
			strings.Contains(line, "|bash")) {
		mark = "download piped into a shell"
	}
	load := false
	if o, found := a.procs.Peek(owner); found && !o.firstModel.IsZero() && ctx.Now.Sub(o.firstModel) <= a.grace {
		load = true
	}
	attrs := map[string]string{"child": b, "cmdline": line, "lineage": why}
	if mark != "" {
		sev = event.SevCritical
		attrs["indicator"] = mark
	}
	if load {
		sev = event.SevCritical
		attrs["during_model_load"] = "true"
	}
	note := ""
	if lateOwner != 0 {
		attrs["late_lineage"] = "true"
		note = " (seen before NVML listed the owner)"
	}
	ctx.Emit(ev, Report{
		Key:         "child:" + b + ":" + itoa(uint64(owner)),
		Severity:    sev,
		Explanation: who(ev) + " (" + line + ") was spawned with " + why + " in " + where(ev) + note + ".",
		Attrs:       attrs,
	})
}

// minerBinaries are Falco's miner_binaries.
var minerBinaries = []string{"xmrig", "xmr-stak", "minerd", "minergate", "cpuminer", "ccminer", "ethminer",
	"cgminer", "bfgminer", "sgminer", "claymore", "nbminer", "t-rex", "gminer", "lolminer", "phoenixminer",
	"teamredminer", "nanominer", "bminer", "wildrig", "srbminer", "xmrig-cuda", "xmrig-nvidia"}

// minerArgs are stratum URLs and miner options.
var minerArgs = []string{"stratum+tcp", "stratum2+tcp", "stratum+ssl", "stratum2+ssl", "--donate-level", "-o pool."}

// minerPorts are Falco's miner_ports.
var minerPorts = []uint16{3333, 3334, 3335, 3336, 3357, 4444, 5555, 5556, 5588, 5730, 6099, 6666, 7777, 7778,
	8000, 8001, 8008, 8080, 8118, 8333, 8888, 8899, 9332, 9999, 14433, 14444, 45560, 45700, 25}

// minerSet is minerBinaries as a set.
var minerSet = func() map[string]bool {
	m := make(map[string]bool, len(minerBinaries))
	for _, b := range minerBinaries {
		m[b] = true
	}
	return m
}()

// isMinerName reports whether the basename b (any case) is a miner binary.
func isMinerName(b string) bool {
	if len(b) == 0 || len(b) > 16 {
		return false
	}
	var buf [16]byte
	n := copy(buf[:], b)
	for i := 0; i < n; i++ {
		if c := buf[i]; 'A' <= c && c <= 'Z' {
			buf[i] = c + 'a' - 'A'
		}
	}
	return minerSet[string(buf[:n])] // the conversion in a map index does not allocate
}

// minerIndicator returns the miner indicator of p's exec, or "". It does
// not allocate when there is none.
func minerIndicator(p *event.Process) string {
	if p == nil {
		return ""
	}
	if b := argv0Base(p); isMinerName(b) {
		return "name " + strings.ToLower(b)
	}
	if b := exeBase(p); isMinerName(b) {
		return "name " + strings.ToLower(b)
	}
	for i := 1; i < len(p.Args); i++ {
		x := p.Args[i]
		if len(x) < 2 || x[0] == '/' {
			continue
		}
		if x == "-o" && i+1 < len(p.Args) && strings.HasPrefix(p.Args[i+1], "pool.") {
			return "argv -o pool."
		}
		if strings.HasPrefix(x, "--donate-level") {
			return "argv --donate-level"
		}
		if j := strings.Index(x, "stratum"); j >= 0 {
			for _, m := range minerArgs {
				if strings.HasPrefix(x[j:], m) {
					return "argv " + m
				}
			}
		}
	}
	return ""
}

type gpu002 struct{ baseRule }

func newGPU002(*Settings) Rule {
	return &gpu002{baseRule{Meta{
		ID:       "GPU-002",
		Title:    "Unexpected process gains GPU memory (compute hijack)",
		MITRE:    []string{"T1496", "T1496.001", "AML.T0034"},
		Severity: event.SevHigh,
		Description: "NVML lists a new GPU owner and (a) its exe differs from its container's first owner after " +
			"startup_grace and is not in gpu_workload_allowlist, (b) its container was given no GPU or another " +
			"GPU (alloc(c): PodResources, then NVIDIA_VISIBLE_DEVICES of the first process, then " +
			"gpu.static_alloc), (c) it is a host process outside gpu_agent_allowlist and gpu_workload_allowlist " +
			"'host', (d) its lineage holds a shell started by a container runtime that is not the entrypoint " +
			"(an exec session) in an inference container, or (e) its exe lies in /tmp, /var/tmp, /dev/shm, is a " +
			"memfd, or was written in the container. Critical with miner indicators; low for allowlisted " +
			"workloads.",
		Knobs: []string{"gpu_workload_allowlist", "gpu_agent_allowlist", "startup_grace", "gpu.static_alloc"},
		Kinds: kinds(event.KindGPU),
	}}}
}

func (r *gpu002) Eval(ctx *Context, ev *event.Event) {
	g := ev.GPU
	if g == nil || g.Change != event.GPUStart || g.PID == 0 {
		return
	}
	p := ev.Process
	if p == nil || p.PID != g.PID {
		p = &event.Process{PID: g.PID, TID: g.PID}
	}
	a := ctx.eng.ai
	c := ev.Container
	s := ctx.Settings
	allowed := s.IsGPUWorkloadAllowed(c, p.Exe)
	var conds []string
	if c == nil {
		if !s.IsGPUAgent(p, nil) && !allowed {
			conds = append(conds, "host process outside gpu_agent_allowlist")
		}
	} else {
		cs, _ := a.ctrs.Peek(c.ID)
		if !allowed && cs.baselineExe != "" && p.Exe != "" && cs.baselineExe != p.Exe &&
			!ctx.State.InStartupGrace(c, ctx.Now, s.Config.StartupGrace.D()) {
			conds = append(conds, "exe differs from the container's GPU owner "+cs.baselineExe)
		}
		al := a.allocOf(c)
		switch {
		case al.empty():
			conds = append(conds, "container was given no GPU ("+al.src+")")
		case al.known && !al.has(g.Index, g.UUID, g.MIG):
			conds = append(conds, "GPU "+itoaSigned(int64(g.Index))+" "+g.UUID+" is outside the container's allocation ("+al.src+")")
		}
		if a.isInference(ctx.State, c) {
			ep := uint32(0)
			if st := ctx.State.Container(c.ID); st != nil {
				ep = st.Entrypoint
			}
			for i := 0; i+1 < len(p.Ancestors); i++ {
				an := p.Ancestors[i]
				if an.PID != ep && isShell(baseName(an.Exe)) && s.IsRuntime(p.Ancestors[i+1].Exe) {
					conds = append(conds, "lineage holds shell "+an.Exe+" started by runtime "+p.Ancestors[i+1].Exe)
					break
				}
			}
		}
	}
	switch exe := p.Exe; {
	case p.ExeMemfd || strings.HasPrefix(exe, "memfd:"):
		conds = append(conds, "exe is a memfd")
	case exe != "" && underAny(exe, tmpDirs):
		conds = append(conds, "exe "+exe+" lies in a temporary directory")
	case c != nil && exe != "" && !ctx.State.WasWritten(c.ID, exe).IsZero():
		conds = append(conds, "exe "+exe+" was written in the container")
	}
	if len(conds) == 0 {
		return
	}
	var sev event.Severity
	attrs := map[string]string{"conditions": strings.Join(conds, "; "), "gpu_uuid": g.UUID,
		"gpu_index": itoaSigned(int64(g.Index)), "used_bytes": itoa(g.UsedBytes), "exe": p.Exe}
	if allowed {
		sev = event.SevLow
	}
	if m := minerIndicator(p); m != "" {
		sev = event.SevCritical
		attrs["miner_indicator"] = m
	}
	ctx.Emit(ev, Report{
		Key:         "owner:" + itoa(uint64(p.PID)),
		Severity:    sev,
		Explanation: who(ev) + " gained " + itoa(g.UsedBytes) + " bytes on GPU " + itoaSigned(int64(g.Index)) + " in " + where(ev) + ": " + strings.Join(conds, "; ") + ".",
		Attrs:       attrs,
	})
}

// nvidiaDevIndex parses /dev/nvidia<N>.
func nvidiaDevIndex(p string) (int, bool) {
	const pre = "/dev/nvidia"
	if !strings.HasPrefix(p, pre) || !isDigits(p[len(pre):]) || len(p)-len(pre) > 4 {
		return 0, false
	}
	return int(atoiPID(p[len(pre):])), true
}

// nvidiaControlNode reports whether p is a control/UVM/caps node.
func nvidiaControlNode(p string) bool {
	return in(p, "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset") ||
		strings.HasPrefix(p, "/dev/nvidia-caps/")
}

type gpu003 struct{ baseRule }

func newGPU003(*Settings) Rule {
	return &gpu003{baseRule{Meta{
		ID:       "GPU-003",
		Title:    "GPU device access outside the container's allocation",
		MITRE:    []string{"T1611", "T1496"},
		Severity: event.SevHigh,
		Description: "A container process (GPU agents excepted) (1) opens /dev/nvidia<N> with N outside alloc(c), " +
			"failed opens included; (2) opens nvidiactl, nvidia-uvm[-tools] or nvidia-caps/* while alloc(c) is " +
			"empty; (3) creates a node under /dev/nvidia* (O_CREAT or mknod); or (4) writes /proc/driver/nvidia/*. " +
			"An unknown allocation is not judged.",
		Knobs: []string{"gpu_agent_allowlist", "gpu.static_alloc"},
		Kinds: kinds(event.KindOpen, event.KindSyscall),
	}}}
}

func (r *gpu003) Eval(ctx *Context, ev *event.Event) {
	if !inContainer(ev) || ev.Process == nil {
		return
	}
	a := ctx.eng.ai
	var path, cond string
	res := int64(0)
	switch ev.Kind {
	case event.KindSyscall:
		sy := ev.Sys
		if sy == nil || !strings.HasPrefix(sy.Name, "mknod") || !strings.HasPrefix(sy.Path, "/dev/nvidia") {
			return
		}
		path, cond, res = sy.Path, "mknod", sy.Ret
	case event.KindOpen:
		f := ev.File
		if f == nil {
			return
		}
		path, res = f.Path, int64(f.Result)
		if path == "" {
			path = f.RawPath
		}
		switch {
		case strings.HasPrefix(path, "/proc/driver/nvidia/"):
			if !f.IsWrite() {
				return
			}
			cond = "driver_proc_write"
		case !strings.HasPrefix(path, "/dev/nvidia"):
			return
		case f.Flags&event.OCreat != 0:
			cond = "create_device_node"
		default:
			al := a.allocOf(ev.Container)
			if n, ok := nvidiaDevIndex(path); ok {
				has, decided := a.hasIndex(al, n)
				if !decided || has {
					return
				}
				cond = "device_outside_allocation"
			} else if nvidiaControlNode(path) && al.empty() {
				cond = "control_node_without_allocation"
			} else {
				return
			}
		}
	default:
		return
	}
	if ctx.Settings.IsGPUAgent(ev.Process, ev.Container) {
		return
	}
	ctx.Emit(ev, Report{
		Key:         cond + ":" + path,
		Explanation: who(ev) + " " + cond + " " + path + resultNote(res) + " in " + where(ev) + ".",
		Attrs:       map[string]string{"condition": cond, "path": path, "result": itoaSigned(res)},
	})
}

// debuggers are GPU-004's attach-capable tools.
var debuggers = []string{"gdb", "cuda-gdb", "lldb", "gcore", "nsys", "ncu", "compute-sanitizer", "py-spy",
	"pyrasite", "strace", "ltrace"}

// ptraceRequests are PTRACE_PEEK*/POKE*/ATTACH/SEIZE.
var ptraceRequests = []uint64{1, 2, 3, 4, 5, 6, 16, 0x4206}

type gpu004 struct{ baseRule }

func newGPU004(*Settings) Rule {
	return &gpu004{baseRule{Meta{
		ID:       "GPU-004",
		Title:    "Memory or ptrace access to a GPU-owning process",
		MITRE:    []string{"T1055.008", "T1003.007", "AML.T0035"},
		Severity: event.SevCritical,
		Description: "Another process (GPU agents excepted) opens /proc/<owner>/mem, task/*/mem or map_files/* " +
			"(critical; maps then mem within 10 s is certain), or from a container /proc/<owner>/environ (high) " +
			"or maps (medium); " +
			"ptrace attach/seize/peek/poke or process_vm_readv/writev on an owner; runs gdb, cuda-gdb, lldb, " +
			"gcore, py-spy, pyrasite, strace, nsys, ncu or compute-sanitizer against an owner's pid; or opens " +
			"/dev/nvidia-uvm-tools without owning a GPU (high). Pids in syscalls, paths and arguments are the " +
			"actor's: an actor in a container's PID namespace (/proc/1/mem of the server beside it) is mapped " +
			"to host pids through the namespace's members.",
		Knobs: []string{"gpu_agent_allowlist"},
		Kinds: kinds(event.KindOpen, event.KindSyscall, event.KindExec),
	}}}
}

func (r *gpu004) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if p == nil {
		return
	}
	st := ctx.State
	isOwner := func(t uint32) bool { return t != 0 && t != p.PID && st.IsGPUOwner(t) }
	// owner maps a pid as the actor names it to a GPU owner's host pid.
	owner := func(n uint32) (uint32, bool) {
		t, ok := st.HostPID(p, n, ctx.Now)
		return t, ok && isOwner(t)
	}
	emit := func(t uint32, cond string, sev event.Severity, detail string) {
		if ctx.Settings.IsGPUAgent(p, ev.Container) {
			return
		}
		ctx.Emit(ev, Report{
			Key:         cond + ":" + itoa(uint64(t)),
			Severity:    sev,
			Explanation: who(ev) + " " + detail + " of GPU owner pid " + itoa(uint64(t)) + " from " + where(ev) + ".",
			Attrs:       map[string]string{"condition": cond, "target_pid": itoa(uint64(t))},
		})
	}
	switch ev.Kind {
	case event.KindOpen:
		f := ev.File
		if f == nil {
			return
		}
		if f.Path == "/dev/nvidia-uvm-tools" && !p.GPUOwner && !st.IsGPUOwner(p.PID) {
			if ctx.Settings.IsGPUAgent(p, ev.Container) {
				return
			}
			ctx.Emit(ev, Report{
				Key:         "uvm-tools",
				Severity:    event.SevHigh,
				Explanation: who(ev) + " opened the GPU profiling interface /dev/nvidia-uvm-tools" + resultNote(int64(f.Result)) + " without owning a GPU, from " + where(ev) + ".",
				Attrs:       map[string]string{"condition": "uvm_tools", "path": f.Path},
			})
			return
		}
		raw := f.RawPath
		var t uint32
		var rest string
		if f.TargetPID != 0 && (f.Knob == event.KnobProcMem || f.Knob == event.KnobProcMaps || f.Knob == event.KnobProcEnviron) {
			// The kernel named the process the entry belongs to by its
			// host pid, whatever path or pid namespace reached it.
			t, rest = f.TargetPID, strings.TrimPrefix(f.Knob, "proc_pid_")
			if !isOwner(t) {
				return
			}
		} else {
			if _, _, ok := procPath(raw); !ok {
				raw = f.Path
			}
			pid, r, ok := procPath(raw)
			if !ok || !(r == "mem" || r == "environ" || r == "maps" || r == "smaps" ||
				strings.HasPrefix(r, "map_files/")) {
				return
			}
			if t, ok = owner(atoiPID(pid)); !ok {
				return
			}
			rest = r
		}
		a := ctx.eng.ai
		switch {
		case rest == "mem":
			rec, _ := a.procs.Peek(p.PID)
			if rec.mapsOwner == t && ctx.Now.Sub(rec.mapsAt) <= mapsMemWindow {
				emit(t, "maps_and_mem", event.SevCritical, "read the maps and then the memory ("+raw+")")
				return
			}
			emit(t, "proc_mem", event.SevCritical, "opened the memory ("+raw+resultNote(int64(f.Result))+")")
		case strings.HasPrefix(rest, "map_files/"):
			emit(t, "map_files", event.SevCritical, "opened a mapped file ("+raw+")")
		case ev.Container == nil:
			// Host tools (ps e, pmap, lsof) read environ and maps of
			// every process; memory and mapped files are what matter there.
		case rest == "environ":
			emit(t, "environ", event.SevHigh, "read the environment ("+raw+")")
		case rest == "maps" || rest == "smaps":
			rec := a.proc(p, ev.Container)
			rec.mapsAt, rec.mapsOwner = ctx.Now, t
			emit(t, "maps", event.SevMedium, "read the memory map ("+raw+")")
		}
	case event.KindSyscall:
		sy := ev.Sys
		if sy == nil || sy.Name != "ptrace" && sy.Name != "process_vm_readv" && sy.Name != "process_vm_writev" {
			return
		}
		t, ok := owner(sy.Target)
		if !ok {
			return
		}
		switch sy.Name {
		case "ptrace":
			for _, rq := range ptraceRequests {
				if sy.Flags == rq {
					emit(t, "ptrace", event.SevCritical, "ptrace request "+itoa(sy.Flags)+resultNote(sy.Ret))
					return
				}
			}
		case "process_vm_readv", "process_vm_writev":
			emit(t, sy.Name, event.SevCritical, sy.Name+resultNote(sy.Ret))
		}
	case event.KindExec:
		b := argv0Base(p)
		if !in(b, debuggers...) && !in(exeBase(p), debuggers...) {
			return
		}
		if in(b, "nsys", "ncu", "compute-sanitizer") && argContains(p.Args, "--target-processes") {
			emit(0, "profiler_attach", event.SevHigh, "ran "+cmdline(p)+" attaching to GPU processes")
			return
		}
		for i := 1; i < len(p.Args); i++ {
			x := p.Args[i]
			if j := strings.IndexByte(x, '='); j > 0 {
				x = x[j+1:]
			}
			if n := atoiPID(x); n == 0 {
				continue
			} else if t, ok := owner(n); ok {
				emit(t, "debugger", event.SevCritical, "ran "+cmdline(p)+" against the process")
				return
			}
		}
	}
}

type gpu005 struct{ baseRule }

func newGPU005(*Settings) Rule {
	return &gpu005{baseRule{Meta{
		ID:       "GPU-005",
		Title:    "Model artifact tampering",
		MITRE:    []string{"T1565.001", "AML.T0018", "AML.T0010.003", "AML.T0018.002"},
		Severity: event.SevHigh,
		Description: "A process outside model_updaters opens for writing (write, create, truncate) a registered " +
			"model file, a model file under a model root or in a Hugging Face/Ollama/Triton store, or a model " +
			"config (config.json, generation_config.json, tokenizer*.json, chat_template*, *.jinja, config.pbtxt, " +
			"Triton model.py, model.safetensors.index.json) where models live; or renames, links or truncates " +
			"onto or over one. HF .incomplete and .lock files are ignored, and so is a load into a " +
			"content-addressed store (Hugging Face blobs/<sha>, Ollama blobs/sha256-<hex>): a new blob renamed, " +
			"linked or written there under a name no registered model file has, and a new snapshot symlink " +
			"pointing at a blob of its own repository. Critical when the file has a GPU owner already (the " +
			"served model is changed under the server) or a pickle format replaces safetensors.",
		Knobs: []string{"model_updaters", "model_roots"},
		Kinds: kinds(event.KindOpen, event.KindSyscall),
	}}}
}

// modelStoreReasons are matcher reasons that name a model store location.
var modelStoreReasons = []string{"hf_blob", "ollama_blob", "triton_repo", "trtllm_engine", "under_root"}

// tamperTarget reports whether path is a model artifact whose change is
// tampering, and whether the registry knows it with an owner. A file the
// registry first saw in this very event (the write that created it) does
// not count as known.
func (a *aiState) tamperTarget(raw, path string, dev, ino uint64, now time.Time) (bool, bool) {
	if path == "" || strings.HasSuffix(path, ".incomplete") || strings.HasSuffix(path, ".lock") ||
		strings.Contains(path, "/.locks/") {
		return false, false
	}
	if ino != 0 {
		if e, ok := a.reg.Get(model.KeyOf(dev, ino, path)); ok && (e.Opens > 1 || e.FirstSeen.Before(now)) {
			return true, len(e.Owners) > 0
		}
	}
	if a.match.IsModelConfig(path) {
		return true, false
	}
	ok, reason := a.match.IsModel(raw, path, -1)
	if !ok {
		return false, false
	}
	if a.match.UnderRoot(path) || in(reason, modelStoreReasons...) {
		return true, false
	}
	return false, false
}

// newBlob reports whether p names a blob of a content-addressed model store
// (its name is its content's hash) that no registered model file had before
// now: a downloader putting a new file there loads it, it does not change
// one. ino (when not 0) is the file the event opened, which the registry
// may have learned from this very event.
func (a *aiState) newBlob(p string, dev, ino uint64, now time.Time) bool {
	_, reason := a.match.IsModel("", p, -1)
	if reason != model.ReasonHFBlob && reason != model.ReasonOllamaBlob {
		return false
	}
	if ino != 0 {
		e, ok := a.reg.Get(model.KeyOf(dev, ino, p))
		return !ok || e.Opens <= 1 && !e.FirstSeen.Before(now)
	}
	return !a.reg.HasPath(p)
}

// newSnapshotPointer reports whether symlink(target, link) creates a Hugging
// Face snapshot pointer: link in <repo>/snapshots/, target resolving to a
// blob of the same repository, and no registered model known by link
// (replacing a served model's pointer is tampering).
func (a *aiState) newSnapshotPointer(target, link string) bool {
	i := strings.Index(link, "/snapshots/")
	if i < 0 || target == "" || a.reg.HasPath(link) {
		return false
	}
	blob := target
	if blob[0] != '/' {
		blob = path.Join(path.Dir(link), target)
	}
	repo := link[:i]
	if !strings.HasPrefix(blob, repo+"/blobs/") {
		return false
	}
	_, reason := a.match.IsModel("", blob, -1)
	return reason == model.ReasonHFBlob
}

func isPickleName(p string) bool {
	b := strings.ToLower(baseName(p))
	return strings.HasSuffix(b, ".bin") || strings.HasSuffix(b, ".pt") || strings.HasSuffix(b, ".pth") ||
		strings.HasSuffix(b, ".pkl") || strings.HasSuffix(b, ".pickle") || strings.HasSuffix(b, ".ckpt")
}

func (r *gpu005) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if p == nil {
		return
	}
	a := ctx.eng.ai
	var path, cond string
	owned := false
	switch ev.Kind {
	case event.KindOpen:
		f := ev.File
		if f == nil || f.Result < 0 || !f.IsWrite() || f.Flags&event.ODirectry != 0 {
			return
		}
		ok, o := a.tamperTarget(f.RawPath, f.Path, f.Dev, f.Inode, ctx.Now)
		// The kernel knowing the inode as a model file makes any write
		// tampering, whatever the file is called now.
		ok = ok || f.Match.Has(event.MatchModel)
		if !ok || !o && f.Flags&event.OCreat != 0 && a.newBlob(f.Path, f.Dev, f.Inode, ctx.Now) {
			return
		}
		path, owned, cond = f.Path, o, "write"
		if f.Flags&event.OTrunc != 0 {
			cond = "truncate"
		}
	case event.KindSyscall:
		sy := ev.Sys
		if sy == nil || sy.Ret < 0 {
			return
		}
		switch {
		case strings.HasPrefix(sy.Name, "rename"), strings.HasPrefix(sy.Name, "link"), strings.HasPrefix(sy.Name, "symlink"):
			if strings.HasSuffix(sy.Path, ".incomplete") {
				return
			}
			dst := absPath(sy.Path2, p.Cwd)
			if strings.HasPrefix(sy.Name, "symlink") && a.newSnapshotPointer(sy.Path, dst) ||
				!strings.HasPrefix(sy.Name, "symlink") && a.newBlob(dst, 0, 0, ctx.Now) {
				return // a download landing in its store
			}
			if ok, _ := a.tamperTarget("", sy.Path2, 0, 0, ctx.Now); ok {
				path, cond = sy.Path2, sy.Name+" onto"
				if isPickleName(sy.Path) && strings.HasSuffix(strings.ToLower(sy.Path2), ".safetensors") {
					owned = true
				}
			} else if ok, _ := a.tamperTarget("", sy.Path, 0, 0, ctx.Now); ok && strings.HasPrefix(sy.Name, "rename") {
				path, cond = sy.Path, sy.Name+" away"
			} else {
				return
			}
		case strings.HasSuffix(sy.Name, "truncate"):
			ok, o := a.tamperTarget("", sy.Path, 0, 0, ctx.Now)
			if !ok {
				return
			}
			path, owned, cond = sy.Path, o, "truncate"
		default:
			return
		}
	default:
		return
	}
	if a.isModelUpdater(ctx.State, p, ev.Container) {
		return
	}
	var sev event.Severity
	if owned {
		sev = event.SevCritical
	}
	ctx.Emit(ev, Report{
		Key:         cond + ":" + path,
		Severity:    sev,
		Explanation: who(ev) + " (" + cmdline(p) + ") changed model artifact " + path + " (" + cond + ") from " + where(ev) + ", not a model_updaters entry.",
		Attrs:       map[string]string{"condition": cond, "path": path, "owned": boolStr(owned)},
	})
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

type gpu006 struct{ baseRule }

func newGPU006(*Settings) Rule {
	return &gpu006{baseRule{Meta{
		ID:       "GPU-006",
		Title:    "GPU-owning process or its descendants connect to a non-allowlisted destination",
		MITRE:    []string{"T1041", "AML.T0025", "AML.T0072"},
		Severity: event.SevHigh,
		Description: "A GPU owner, or a process with a GPU owner of the same container in its fork-time lineage " +
			"(re-parenting does not hide it), connects to an inet destination outside egress_allowlist, or sends " +
			"datagrams to one without connecting (UDP sendto, raw and ICMP sockets). High where egress_allowlist " +
			"lists destinations beyond loopback for the workload; where it lists none, low until the socket carries " +
			"model-scale bytes (10 % of the largest model file its container opened, 64 KiB to 1 MiB), then high. " +
			"Critical on a miner pool port or once the socket sent exfil_bytes_threshold to it. Sockets it accepted " +
			"(clients that connected in) do not count. Connects of the last 10 s are judged again when NVML first " +
			"lists an ancestor.",
		Knobs: []string{"egress_allowlist", "exfil_bytes_threshold"},
		Kinds: kinds(event.KindConnect, event.KindEgress, event.KindGPU),
	}}}
}

func (r *gpu006) Eval(ctx *Context, ev *event.Event) {
	if ev.Kind == event.KindGPU {
		for i := range ctx.eng.ai.late {
			if l := &ctx.eng.ai.late[i]; l.kind == event.KindConnect {
				r.check(ctx, l.event(), l.owner)
			}
		}
		return
	}
	r.check(ctx, ev, 0)
}

func (r *gpu006) check(ctx *Context, ev *event.Event, lateOwner uint32) {
	n := ev.Net
	p := ev.Process
	if n == nil || p == nil || !n.DAddr.IsValid() || n.Class == event.ClassLoopback || n.DAddr.IsLoopback() ||
		n.Class == event.ClassUnix || n.Origin == event.OriginAccept { // answering a client that connected in
		return
	}
	if ctx.Settings.EgressAllowed(ev.Container, n.DAddr, n.DPort) {
		return
	}
	owner, ok := lateOwner, lateOwner != 0
	if !ok {
		owner, ok = gpuLineage(ctx.State, p, ev.Container)
	}
	if !ok {
		return
	}
	dst := netip.AddrPortFrom(n.DAddr, n.DPort).String()
	var sev event.Severity
	stage := "connect"
	attrs := map[string]string{"destination": dst, "class": n.Class, "owner_pid": itoa(uint64(owner))}
	// Without an allowlist beyond loopback nobody said where the server
	// talks: a webhook, a metrics push or a hub download at start is
	// context (low) until the socket carries model-scale bytes.
	configured := ctx.Settings.EgressConfigured(ev.Container)
	if !configured {
		sev = event.SevLow
		attrs["egress_allowlist"] = "none configured"
	}
	if in16(n.DPort, minerPorts) {
		sev = event.SevCritical
		attrs["miner_port"] = "true"
	}
	verb := "connected to "
	if ev.Kind == event.KindEgress {
		// A destination that came with the send has no connect event: its
		// first report stands for one.
		sk, _ := ctx.eng.ai.socks.Peek(sockKeyOf(n))
		switch {
		case n.BytesSent >= uint64(ctx.Settings.Config.ExfilBytesThreshold):
			sev, stage = event.SevCritical, "volume"
		case !configured && n.BytesSent >= ctx.eng.ai.modelScaleBytes(cidOf(ev.Container)):
			sev, stage = event.SevHigh, "model_scale"
		case n.Origin == event.OriginDatagram && sk.reports == 1:
			stage, verb = "datagram", "sent "+n.Protocol+" datagrams to "
		default:
			return
		}
		attrs["bytes_sent"] = itoa(n.BytesSent)
	}
	rel := "its lineage holds GPU owner pid " + itoa(uint64(owner))
	if owner == p.PID {
		rel = "it owns GPU memory"
	}
	if lateOwner != 0 {
		attrs["late_lineage"] = "true"
		rel += " (seen before NVML listed the owner)"
	}
	ctx.Emit(ev, Report{
		Key:         "dst:" + dst + ":" + stage,
		Severity:    sev,
		Explanation: who(ev) + " in " + where(ev) + " " + verb + dst + " (" + n.Class + "), " + allowNote(configured) + "; " + rel + ".",
		Attrs:       attrs,
	})
}

func allowNote(configured bool) string {
	if configured {
		return "outside egress_allowlist"
	}
	return "with no egress_allowlist configured beyond loopback"
}

func in16(v uint16, set []uint16) bool {
	for _, x := range set {
		if x == v {
			return true
		}
	}
	return false
}

// gpuReconfig returns the reconfiguring option of an nvidia-smi, dcgmi or
// nvidia-settings command line, or "".
func gpuReconfig(p *event.Process) string {
	b := argv0Base(p)
	switch b {
	case "nvidia-persistenced":
		return "nvidia-persistenced"
	case "dcgmi":
		if len(p.Args) > 2 && p.Args[1] == "config" && hasArg(p.Args, "--set") {
			return "dcgmi config --set"
		}
	case "nvidia-settings":
		if hasArg(p.Args, "-a", "--assign") {
			return "nvidia-settings -a"
		}
	case "nvidia-smi":
		for i := 1; i < len(p.Args); i++ {
			x := p.Args[i]
			if j := strings.IndexByte(x, '='); j > 0 {
				x = x[:j]
			}
			switch x {
			case "-r", "--gpu-reset", "-pm", "--persistence-mode", "-mig", "--multi-instance-gpu", "-c",
				"--compute-mode", "-pl", "--power-limit", "-lgc", "--lock-gpu-clocks", "-rgc", "--reset-gpu-clocks",
				"-lmc", "--lock-memory-clocks", "-rmc", "--reset-memory-clocks", "-ac", "--applications-clocks",
				"-rac", "--reset-applications-clocks", "-e", "--ecc-config", "drain":
				return "nvidia-smi " + x
			case "mig":
				if hasArg(p.Args, "-cgi", "-dgi", "-cci", "-dci", "--create-gpu-instance", "--destroy-gpu-instance",
					"--create-compute-instance", "--destroy-compute-instance") {
					return "nvidia-smi mig"
				}
			}
		}
	}
	return ""
}

type gpu007 struct{ baseRule }

func newGPU007(*Settings) Rule {
	return &gpu007{baseRule{Meta{
		ID:       "GPU-007",
		Title:    "GPU reconfiguration / reset / MIG or power change from a workload",
		MITRE:    []string{"T1489", "T1499", "AML.T0029"},
		Severity: event.SevMedium,
		Description: "nvidia-smi with -r/--gpu-reset, -pm, -mig, mig -cgi/-dgi/-cci/-dci, -c, -pl, -lgc/-rgc, " +
			"-lmc/-rmc, -ac/-rac, -e or drain; nvidia-persistenced; dcgmi config --set; nvidia-settings -a — run in " +
			"a container outside gpu_agent_allowlist, or on the host by a process whose parent is not a GPU agent. " +
			"High when -i names a GPU outside the container's allocation.",
		Knobs: []string{"gpu_agent_allowlist", "gpu.static_alloc"},
		Kinds: kinds(event.KindExec),
	}}}
}

func (r *gpu007) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if p == nil {
		return
	}
	opt := gpuReconfig(p)
	if opt == "" {
		return
	}
	s := ctx.Settings
	c := ev.Container
	if c != nil {
		if s.IsGPUAgent(p, c) {
			return
		}
	} else if len(p.Ancestors) > 0 && s.IsGPUAgent(&event.Process{Exe: p.Ancestors[0].Exe}, nil) {
		return
	}
	var sev event.Severity
	attrs := map[string]string{"option": opt, "cmdline": cmdline(p)}
	if c != nil {
		a := ctx.eng.ai
		al := a.allocOf(c)
		if v, ok := argValue(p.Args, "-i", "--id"); ok {
			attrs["target"] = v
			for _, x := range strings.Split(v, ",") {
				if n, err := parseIndex(x); err == nil {
					if has, decided := a.hasIndex(al, n); decided && !has {
						sev = event.SevHigh
					}
				} else if al.known && !al.has(-1, x, x) {
					sev = event.SevHigh
				}
			}
		} else if al.empty() {
			sev = event.SevHigh
		}
		if sev == event.SevHigh {
			attrs["outside_allocation"] = "true"
		}
	}
	ctx.Emit(ev, Report{
		Key:         "reconfig:" + opt,
		Severity:    sev,
		Explanation: who(ev) + " reconfigured the GPU (" + cmdline(p) + ") from " + where(ev) + ".",
		Attrs:       attrs,
	})
}

func parseIndex(s string) (int, error) {
	s = strings.TrimSpace(s)
	if !isDigits(s) || len(s) > 4 {
		return 0, errNotIndex
	}
	return int(atoiPID(s)), nil
}

type gpu008 struct{ baseRule }

func newGPU008(*Settings) Rule {
	return &gpu008{baseRule{Meta{
		ID:       "GPU-008",
		Title:    "Cryptominer indicators on a GPU node",
		MITRE:    []string{"T1496"},
		Severity: event.SevCritical,
		Description: "A known miner binary runs (xmrig, t-rex, lolminer, nbminer, ethminer …), argv carries a " +
			"stratum URL, --donate-level or -o pool.; or a GPU owner, its descendants or an inference container " +
			"connects outside egress_allowlist to a miner pool port (3333, 4444, 5555, 7777, 14444 …); shells and " +
			"NVIDIA hooks dialling out are left to C2-001 and NVT-003.",
		Knobs: []string{"egress_allowlist"},
		Kinds: kinds(event.KindExec, event.KindConnect),
	}}}
}

func (r *gpu008) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if p == nil {
		return
	}
	switch ev.Kind {
	case event.KindExec:
		m := minerIndicator(p)
		if m == "" {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "exec:" + exeBase(p),
			Explanation: who(ev) + " (" + cmdline(p) + ") shows a cryptominer " + m + " in " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "miner_exec", "indicator": m, "cmdline": cmdline(p)},
		})
	case event.KindConnect:
		n := ev.Net
		if n == nil || !n.DAddr.IsValid() || !in16(n.DPort, minerPorts) || n.DAddr.IsLoopback() ||
			ctx.Settings.EgressAllowed(ev.Container, n.DAddr, n.DPort) {
			return
		}
		// Shells and NVIDIA hooks dialling out are C2-001 and NVT-003.
		if isShell(exeBase(p)) || isShell(argv0Base(p)) || IsNVHook(p.Exe) {
			return
		}
		_, gpu := gpuLineage(ctx.State, p, ev.Container)
		if !gpu && !ctx.eng.ai.isInference(ctx.State, ev.Container) {
			return
		}
		dst := netip.AddrPortFrom(n.DAddr, n.DPort).String()
		ctx.Emit(ev, Report{
			Key:         "pool:" + dst,
			Explanation: who(ev) + " connected to miner pool port " + dst + " (" + n.Class + ") from " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "pool_port", "destination": dst, "class": n.Class},
		})
	}
}
