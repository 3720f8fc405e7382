package detect

import (
	"slices"
	"strconv"
	"syscall"
	"time"

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

// self005: another process called bpf(2) on one of the sensor's BPF objects,
// or took one of its descriptors with pidfd_getfd.
type self005 struct {
	baseRule
	// pending holds the sys_enter records waiting for their sys_exit
	// (the same thread and call), bounded by maxSelfPending.
	pending map[selfCallKey]*event.Event
}

type selfCallKey struct {
	tid  uint32
	name string
	cmd  uint64
}

const (
	// maxSelfPending bounds the calls waiting for their result.
	maxSelfPending = 256
	// selfPendingWait is how long a call's sys_enter record waits for its
	// sys_exit before it is reported without a result.
	selfPendingWait = time.Second
)

func newSELF005(*Settings) Rule {
	return &self005{baseRule: baseRule{Meta{
		ID:       "SELF-005",
		Title:    "Sensor BPF object accessed by another process",
		MITRE:    []string{"T1562.001"},
		Severity: event.SevCritical,
		Description: "Another process called bpf(2) on one of the sensor's own maps, programs or links, or took one of " +
			"its descriptors with pidfd_getfd: BPF_MAP/PROG/LINK_GET_FD_BY_ID with one of its ids (found in " +
			"/proc/<sensor>/fdinfo or with bpftool), map updates, deletes and freezes (single and batch), link " +
			"update and detach, program attach (replacing it) and detach, pinning it or opening its pin. The " +
			"object is the sensor's by its kernel id, read from the descriptor the call passed, whatever names " +
			"were used. The kernel side records each call before it runs and again with its result; the finding " +
			"says what the kernel did (a frozen map refuses writes with EPERM), or that no result came within a " +
			"second (the call did not return, or its record was lost). A program descriptor taken by id is " +
			"high: inventory tools (bpftool prog show) do that; everything else is critical. Allow an inventory " +
			"agent with rules.SELF-005.allow_exe.",
		Knobs: []string{"rules.SELF-005.allow_exe"},
		Kinds: kinds(event.KindSyscall),
	}}, pending: map[selfCallKey]*event.Event{}}
}

func (r *self005) Eval(ctx *Context, ev *event.Event) {
	s := ev.Sys
	if s == nil || !s.SensorObject || ev.Process == nil {
		return
	}
	k := selfCallKey{tid: ev.Process.TID, name: s.Name, cmd: s.Flags}
	if s.Pending {
		if len(r.pending) >= maxSelfPending {
			r.expire(ctx, time.Time{}) // report everything waiting rather than lose it
		}
		r.pending[k] = ev
		return
	}
	enter := r.pending[k]
	delete(r.pending, k)
	r.report(ctx, ev, enter)
}

// Flush reports the calls whose sys_exit did not come within
// selfPendingWait.
func (r *self005) Flush(ctx *Context, now time.Time) {
	r.expire(ctx, now.Add(-selfPendingWait))
}

// expire reports the pending calls made before t (all of them when t is
// zero), oldest first.
func (r *self005) expire(ctx *Context, t time.Time) {
	var due []selfCallKey
	for k, ev := range r.pending {
		if t.IsZero() || ev.Time.Before(t) {
			due = append(due, k)
		}
	}
	slices.SortFunc(due, func(a, b selfCallKey) int { return r.pending[a].Time.Compare(r.pending[b].Time) })
	for _, k := range due {
		ev := r.pending[k]
		delete(r.pending, k)
		ctx.Now = ev.Time
		r.report(ctx, ev, nil)
	}
}

// report emits the finding of one call: ev is its sys_exit record (with
// enter, its sys_enter record, or nil), or its sys_enter record alone when
// no result came.
func (r *self005) report(ctx *Context, ev, enter *event.Event) {
	s := ev.Sys
	obj := event.BPFObjKindName(s.Fd2) + " " + strconv.Quote(s.Arg) + " (id " + itoa(uint64(s.Target)) + ")"
	var what, key string
	var sev event.Severity
	attrs := map[string]string{"syscall": s.Name}
	if s.Name == "pidfd_getfd" {
		what = "took descriptor " + itoaSigned(int64(s.Fd)) + " of the sensor (pid " + itoa(uint64(s.Target)) + ") with pidfd_getfd"
		if s.Fd2 != 0 {
			obj = event.BPFObjKindName(s.Fd2) + " " + strconv.Quote(s.Arg) + " (id " + itoa(s.Arg2) + ")"
			what += ": its " + obj
			attrs["object_kind"], attrs["object_name"], attrs["object_id"] = event.BPFObjKindName(s.Fd2), s.Arg, itoa(s.Arg2)
		}
		key = "getfd:" + itoaSigned(int64(s.Fd))
	} else {
		cmd := event.BPFCmdName(s.Flags)
		what = "called " + cmd + " on the sensor's " + obj
		if s.Flags == event.BPFProgGetFdByID {
			sev = event.SevHigh
		}
		attrs["command"] = cmd
		attrs["object_kind"], attrs["object_name"], attrs["object_id"] = event.BPFObjKindName(s.Fd2), s.Arg, itoa(uint64(s.Target))
		if s.Fd2 == event.BPFObjLink {
			attrs["program_id"] = itoa(s.Arg2)
		}
		key = cmd + ":" + itoa(uint64(s.Target))
	}
	var result string
	switch {
	case s.Pending:
		result = "; no result came within " + selfPendingWait.String() +
			" (the call did not return, or its record was lost): it was recorded before it ran"
		attrs["result"] = "unknown"
	case s.Ret < 0:
		errno := syscall.Errno(-s.Ret)
		result = "; the kernel refused it: " + errno.Error()
		if errno == syscall.EPERM && (s.Flags == event.BPFMapUpdateElem || s.Flags == event.BPFMapDeleteElem ||
			s.Flags == event.BPFMapLookupAndDeleteElem || s.Flags == event.BPFMapUpdateBatch ||
			s.Flags == event.BPFMapDeleteBatch || s.Flags == event.BPFMapLookupAndDeleteBatch) {
			result += " (the map is frozen)"
		}
		attrs["result"] = itoaSigned(s.Ret)
	default:
		result = "; it succeeded"
		if s.Flags == event.BPFMapGetFdByID || s.Flags == event.BPFProgGetFdByID || s.Flags == event.BPFLinkGetFdByID ||
			s.Flags == event.BPFObjGet || s.Name == "pidfd_getfd" {
			result += " (descriptor " + itoaSigned(s.Ret) + ")"
		}
		attrs["result"] = itoaSigned(s.Ret)
	}
	if s.ExitOnly {
		result += ", before the call ran (seccomp or a tracer)"
	}
	var related []*event.Event
	if enter != nil {
		related = []*event.Event{enter}
	}
	ctx.Emit(ev, Report{
		Key:         key + ":" + itoa(uint64(pidOf(ev))),
		Severity:    sev,
		Explanation: who(ev) + " " + what + " from " + where(ev) + result + ".",
		Attrs:       attrs,
		Related:     related,
	})
}

// self006: the sensor dropped events: a flood, and who made it.
type self006 struct{ baseRule }

func newSELF006(*Settings) Rule {
	return &self006{baseRule{Meta{
		ID:       "SELF-006",
		Title:    "Sensor flooded: events dropped",
		MITRE:    []string{"T1562.001", "T1499"},
		Severity: event.SevHigh,
		Description: "The sensor dropped events because something produced them faster than it may or can take them: " +
			"a cgroup over its rate of ordinary events (capture.flood.cgroup_rate; medium: that container lost " +
			"its own ordinary events, nobody else's), the ring buffer or the pipeline queue full (high), or " +
			"even a priority record lost (critical: escape primitives, knob writes or attempts on the sensor " +
			"went unseen). A flood is how an attacker chooses what the sensor misses: the finding names the " +
			"cgroup, container and last process whose events were dropped, where the sensor could tell.",
		Kinds: kinds(event.KindLost),
	}}}
}

func (r *self006) Eval(ctx *Context, ev *event.Event) {
	l := ev.Lost
	if l == nil || l.Count == 0 {
		return
	}
	var sev event.Severity
	var what string
	switch l.Source {
	case event.LostRateLimit:
		sev, what = event.SevMedium, "over its cgroup's rate of ordinary events"
	case event.LostKernelRing:
		what = "the kernel ring buffer had no room for ordinary events"
	case event.LostQueue:
		what = "the pipeline queue was full"
	case event.LostKernelRingPriority:
		sev, what = event.SevCritical, "the kernel ring buffer had no room even for security-relevant records"
	case event.LostQueuePriority:
		sev, what = event.SevCritical, "both pipeline queues were full: security-relevant events were dropped"
	default:
		return
	}
	var cg uint64
	expl := "The sensor dropped " + itoa(l.Count) + " events (" + l.Source + ": " + what + ")"
	if p := ev.Process; p != nil && p.CgroupID != 0 {
		cg = p.CgroupID
		expl += " of cgroup " + itoa(cg) + " in " + where(ev)
		if p.PID != 0 {
			expl += ", the last of them by " + who(ev)
		}
	} else {
		expl += " that no cgroup accounts for"
	}
	ctx.Emit(ev, Report{
		Key:         l.Source + ":" + itoa(cg),
		Severity:    sev,
		Explanation: expl + ".",
		Attrs:       map[string]string{"source": l.Source, "count": itoa(l.Count), "cgroup_id": itoa(cg)},
	})
}
