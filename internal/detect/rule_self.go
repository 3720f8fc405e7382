package detect

import (
	"strconv"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// SelfIdentity tells the SELF-* rules which process is the sensor.
type SelfIdentity struct {
	// PID is the sensor's process id as other processes see it (the
	// DaemonSet runs in the host PID namespace); 0 turns SELF-003 off.
	PID uint32
	// IsThread reports whether tid is one of the sensor's threads (a
	// tracer may attach to any one of them); nil means only PID counts.
	IsThread func(tid uint32) bool
}

func (s SelfIdentity) is(pid uint32) bool {
	if s.PID == 0 || pid == 0 {
		return false
	}
	return pid == s.PID || s.IsThread != nil && s.IsThread(pid)
}

// Linux signal numbers and si_codes the SELF rules tell apart.
const (
	sigHup   = 1
	sigInt   = 2
	sigTerm  = 15
	sigStop  = 19
	siKernel = 0x80
)

// self001: the sensor's links or filter maps are not what it loaded.
type self001 struct{ baseRule }

func newSELF001(*Settings) Rule {
	return &self001{baseRule{Meta{
		ID:       "SELF-001",
		Title:    "Sensor BPF objects tampered with",
		MITRE:    []string{"T1562.001"},
		Severity: event.SevCritical,
		Description: "The sensor's periodic self-check (every 5 s) found one of its BPF links detached from its cgroup or " +
			"running another program, or one of its in-kernel filter maps holding other entries than it loaded: " +
			"someone with CAP_BPF or CAP_SYS_ADMIN used its object ids (bpftool, raw bpf(2)) to blind it. The " +
			"sensor attaches the link again, swaps its program back or refills the map where the kernel allows, " +
			"and says so; its status stops listing a program it could not attach again. Its maps are frozen at " +
			"load, so map writes are refused by the kernel in the first place.",
		Kinds: kinds(event.KindStatus),
	}}}
}

func (r *self001) Eval(ctx *Context, ev *event.Event) {
	st := ev.Status
	if st == nil || st.Fields[event.FieldSelfCheck] != event.SelfCheckTampered {
		return
	}
	ctx.Emit(ev, Report{
		Key:         st.Fields["objects"],
		Explanation: st.Message + " (" + st.Fields["repair"] + ").",
		Attrs:       map[string]string{"objects": st.Fields["objects"], "repair": st.Fields["repair"], "sensor_pid": st.Fields["sensor_pid"]},
	})
}

// self002: a signal was generated for one of the sensor's threads.
type self002 struct{ baseRule }

func newSELF002(*Settings) Rule {
	return &self002{baseRule{Meta{
		ID:       "SELF-002",
		Title:    "Signal sent to the sensor",
		MITRE:    []string{"T1562.001", "T1489"},
		Severity: event.SevCritical,
		Description: "Another process signalled the sensor: kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo, " +
			"pidfd_send_signal, a process group, kill(-1), or the SIGSTOP of a ptrace attach. Seen by one " +
			"tp_btf/signal_generate program wherever the signal came from, in the sender's context before the " +
			"signal lands, so a SIGSTOP is reported when the sensor resumes (a SIGKILL leaves it no time: watch " +
			"for the missing heartbeat). Critical, except a termination request (SIGTERM, SIGINT, SIGHUP) from a " +
			"host process, which is how the container runtime stops the pod (high), and a signal the kernel " +
			"generated itself, such as the OOM killer's SIGKILL (high; the process named is the one that was " +
			"running, not a sender).",
		Knobs: []string{"rules.SELF-002.allow_exe"},
		Kinds: kinds(event.KindSyscall),
	}}}
}

func (r *self002) Eval(ctx *Context, ev *event.Event) {
	s := ev.Sys
	if s == nil || s.Name != event.SyscallSignal {
		return
	}
	sig, code := int(s.Flags), s.Fd
	var sev event.Severity
	expl := who(ev) + " sent " + s.Arg + " to the sensor (thread " + itoa(uint64(s.Target)) + ") from " + where(ev)
	switch {
	case code == siKernel && sig == sigStop:
		expl = who(ev) + " stopped the sensor (thread " + itoa(uint64(s.Target)) + ") with " + s.Arg +
			": a ptrace attach, from " + where(ev)
	case code == siKernel:
		sev = event.SevHigh
		expl = "the kernel generated " + s.Arg + " for the sensor (thread " + itoa(uint64(s.Target)) +
			") while " + who(ev) + " ran in " + where(ev) + " (the OOM killer, a fault or a hangup)"
	case ev.Container == nil && (sig == sigTerm || sig == sigInt || sig == sigHup):
		sev = event.SevHigh
		expl += " (a termination request from the host: the container runtime stops pods this way)"
	}
	ctx.Emit(ev, Report{
		Key:         "sig" + strconv.Itoa(sig) + ":" + itoa(uint64(pidOf(ev))),
		Severity:    sev,
		Explanation: expl + signalVerdict(s.Ret) + ".",
		Attrs: map[string]string{"signal": strconv.Itoa(sig), "how": s.Arg, "si_code": strconv.Itoa(int(code)),
			"target_tid": itoa(uint64(s.Target))},
	})
}

func pidOf(ev *event.Event) uint32 {
	if ev.Process == nil {
		return 0
	}
	return ev.Process.PID
}

// signalVerdict renders the kernel's TRACE_SIGNAL_* result.
func signalVerdict(r int64) string {
	switch r {
	case 1:
		return "; the sensor ignores it"
	case 2:
		return "; one was already pending"
	case 3:
		return "; the signal queue was full"
	}
	return ""
}

// self003: the sensor was traced or its memory read or written.
type self003 struct {
	baseRule
	self SelfIdentity
}

func newSELF003(s *Settings) Rule {
	return &self003{baseRule: baseRule{Meta{
		ID:       "SELF-003",
		Title:    "Sensor traced or its memory accessed",
		MITRE:    []string{"T1562.001", "T1055.008"},
		Severity: event.SevCritical,
		Description: "A process called ptrace (attach, seize, or a poke or register write) or process_vm_readv/writev " +
			"on the sensor or one of its threads: gdb, strace or an injector taking it over, or reading its " +
			"memory (its map and link descriptors, its TLS keys). Attempts the kernel refused count. From the " +
			"ptrace and process_vm_* syscall capture; the SIGSTOP of an attach is SELF-002.",
		Kinds: kinds(event.KindSyscall),
	}}, self: s.Self}
}

// ptraceNames names the ptrace requests the kernel side reports.
var ptraceNames = map[uint64]string{
	0: "PTRACE_TRACEME", 4: "PTRACE_POKETEXT", 5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSER", 13: "PTRACE_SETREGS",
	15: "PTRACE_SETFPREGS", 16: "PTRACE_ATTACH", 0x4205: "PTRACE_SETREGSET", 0x4206: "PTRACE_SEIZE",
}

func (r *self003) Eval(ctx *Context, ev *event.Event) {
	s := ev.Sys
	if s == nil || ev.Process == nil || s.Name != "ptrace" && s.Name != "process_vm_readv" && s.Name != "process_vm_writev" {
		return
	}
	// The target is a pid as the caller sees it: mapped to the host pid (a
	// caller in a PID namespace of its own names only its members, never
	// the sensor).
	t, ok := ctx.State.HostPID(ev.Process, s.Target, ctx.Now)
	if !ok || !r.self.is(t) {
		return
	}
	var what string
	switch s.Name {
	case "ptrace":
		req, ok := ptraceNames[s.Flags]
		if !ok || s.Flags == 0 { // TRACEME names no target
			return
		}
		what = "called ptrace " + req + " on"
	case "process_vm_readv":
		what = "read the memory of"
	case "process_vm_writev":
		what = "wrote the memory of"
	default:
		return
	}
	ctx.Emit(ev, Report{
		Key: s.Name + ":" + itoa(uint64(pidOf(ev))),
		Explanation: who(ev) + " " + what + " the sensor (pid " + itoa(uint64(t)) + ")" + resultNote(s.Ret) +
			" from " + where(ev) + ".",
		Attrs: map[string]string{"syscall": s.Name, "target": itoa(uint64(t))},
	})
}

// self004: the sensor's reader did not run for a while.
type self004 struct{ baseRule }

func newSELF004(*Settings) Rule {
	return &self004{baseRule{Meta{
		ID:       "SELF-004",
		Title:    "Sensor paused",
		MITRE:    []string{"T1562.001"},
		Severity: event.SevHigh,
		Description: "The sensor's ring-buffer reader did not run for 2 s or more (at least 20 poll intervals) and " +
			"resumed: the process was stopped (SIGSTOP, a ptrace stop) or frozen (the cgroup freezer), which needs " +
			"no signal. Nothing was reported in real time meanwhile; kernel events waited in the ring buffer and " +
			"are delivered late, or counted as lost where it overflowed. Measured on the monotonic clock, so a " +
			"wall-clock step or a suspended machine does not count. The reader's thread's run-queue wait " +
			"(schedstat) tells a stop from CPU starvation: a starved reader (it waited for a CPU most of the gap) " +
			"is low. A stop by signal is also SELF-002.",
		Kinds: kinds(event.KindStatus),
	}}}
}

func (r *self004) Eval(ctx *Context, ev *event.Event) {
	st := ev.Status
	if st == nil || st.Fields[event.FieldSelfCheck] != event.SelfCheckGap {
		return
	}
	var sev event.Severity
	if st.Fields["cause"] == event.GapStarved {
		sev = event.SevLow
	}
	ctx.Emit(ev, Report{
		Key:         "gap:" + st.Fields["cause"],
		Severity:    sev,
		Explanation: "After resuming, the sensor found that " + st.Message + ".",
		Attrs: map[string]string{"gap": st.Fields["gap"], "cause": st.Fields["cause"],
			"from": st.Fields["from"], "to": st.Fields["to"]},
	})
}
