package event

// The self-protection vocabulary: how the kernel side reports attempts on
// the sensor itself, for the rules (SELF-*) and for consumers.
const (
	// SyscallSignal is the Syscall.Name of a signal generated for one of
	// the sensor's own threads, whatever path sent it. The event's Process
	// is the sender; Flags is the signal number, Target the sensor thread,
	// Ret the kernel's verdict (0 delivered, 1 ignored, 2 already pending,
	// 3 queue overflow, 4 delivered without its siginfo), Arg a readable
	// summary ("SIGSTOP via pidfd_send_signal"), Arg2 the number of the
	// syscall the sender was in (^0 when unknown; Compat when it was a
	// 32-bit call), Fd the si_code, Fd2 1 when the signal was for the
	// whole process.
	SyscallSignal = "signal"

	// FieldSelfCheck is the Status.Fields key of a status event that
	// reports on the sensor's own integrity; its value says what was found.
	FieldSelfCheck = "self_check"
	// SelfCheckTampered: a BPF link or filter map of the sensor is not what
	// it loaded (detached, program replaced, contents changed). Message
	// says what changed and what was repaired.
	SelfCheckTampered = "tampered"
	// SelfCheckGap: the sensor's reader did not run for a while;
	// Fields["gap"] is how long, Fields["cause"] one of the Gap* values.
	SelfCheckGap = "gap"

	// GapStopped: the reader was not even runnable (SIGSTOP, a ptrace
	// stop, the cgroup freezer).
	GapStopped = "stopped"
	// GapStarved: the reader waited on a CPU run queue for most of the gap.
	GapStarved = "starved"
	// GapUnknown: the kernel keeps no scheduler statistics to tell.
	GapUnknown = "unknown"
)
