package event

import "strconv"

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
	// FieldHeartbeat is set ("true") on the daemon's periodic heartbeat
	// status event (export.status_interval): its other fields and counters
	// are the sensor's health and losses so far.
	FieldHeartbeat = "heartbeat"
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

// A Syscall with SensorObject set names one of the sensor's own BPF
// objects:
//
//   - Name "bpf": Flags is the bpf(2) command (BPFMapUpdateElem ...),
//     Target the object's id, Fd2 its kind (BPFObjMap, BPFObjProg,
//     BPFObjLink), Arg its name (a link's: its program's), Arg2 a link's
//     program id, Fd the descriptor the call passed (-1 for the
//     GET_FD_BY_ID and OBJ_GET commands, which pass none);
//   - Name "pidfd_getfd": Target is the sensor's pid, Fd the descriptor
//     taken, Flags the call's flags; Fd2, Arg and Arg2 are the kind, name
//     and id of the BPF object that descriptor is (Fd2 0: another file).
//
// The sys_enter copy has Pending set; the sys_exit record has the result.

// Kinds of BPF objects (Syscall.Fd2 of a SensorObject call).
const (
	BPFObjMap  = 1
	BPFObjProg = 2
	BPFObjLink = 3
)

// bpf(2) commands the kernel side reports on the sensor's objects
// (Syscall.Flags of a SensorObject "bpf" call); BPFProgLoad is reported for
// every caller.
const (
	BPFMapUpdateElem           = 2
	BPFMapDeleteElem           = 3
	BPFProgLoad                = 5
	BPFObjPin                  = 6
	BPFObjGet                  = 7
	BPFProgAttach              = 8
	BPFProgDetach              = 9
	BPFProgGetFdByID           = 13
	BPFMapGetFdByID            = 14
	BPFMapLookupAndDeleteElem  = 21
	BPFMapFreeze               = 22
	BPFMapLookupAndDeleteBatch = 25
	BPFMapUpdateBatch          = 26
	BPFMapDeleteBatch          = 27
	BPFLinkUpdate              = 29
	BPFLinkGetFdByID           = 30
	BPFLinkDetach              = 34
)

var bpfCmdNames = map[uint64]string{
	BPFMapUpdateElem: "BPF_MAP_UPDATE_ELEM", BPFMapDeleteElem: "BPF_MAP_DELETE_ELEM", BPFProgLoad: "BPF_PROG_LOAD",
	BPFObjPin: "BPF_OBJ_PIN", BPFObjGet: "BPF_OBJ_GET", BPFProgAttach: "BPF_PROG_ATTACH",
	BPFProgDetach: "BPF_PROG_DETACH", BPFProgGetFdByID: "BPF_PROG_GET_FD_BY_ID",
	BPFMapGetFdByID: "BPF_MAP_GET_FD_BY_ID", BPFMapLookupAndDeleteElem: "BPF_MAP_LOOKUP_AND_DELETE_ELEM",
	BPFMapFreeze: "BPF_MAP_FREEZE", BPFMapLookupAndDeleteBatch: "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
	BPFMapUpdateBatch: "BPF_MAP_UPDATE_BATCH", BPFMapDeleteBatch: "BPF_MAP_DELETE_BATCH",
	BPFLinkUpdate: "BPF_LINK_UPDATE", BPFLinkGetFdByID: "BPF_LINK_GET_FD_BY_ID", BPFLinkDetach: "BPF_LINK_DETACH",
}

// BPFCmdName names a bpf(2) command ("BPF_MAP_UPDATE_ELEM"), or "bpf
// command N".
func BPFCmdName(cmd uint64) string {
	if n, ok := bpfCmdNames[cmd]; ok {
		return n
	}
	return "bpf command " + strconv.FormatUint(cmd, 10)
}

// BPFObjKindName names a BPF object kind: "map", "program", "link", or
// "file" for 0 (a descriptor that is no BPF object).
func BPFObjKindName(kind int32) string {
	switch kind {
	case BPFObjMap:
		return "map"
	case BPFObjProg:
		return "program"
	case BPFObjLink:
		return "link"
	}
	return "file"
}

// Lost sources of a flood (bpf/common.h). Their lost events carry the
// cgroup (Process.CgroupID), the last process that lost a record and, once
// enriched, the container: whoever made the flood.
const (
	// LostKernelRing: the ring buffer had no room for an ordinary record
	// (it holds a headroom that only priority records may fill).
	LostKernelRing = "kernel_ringbuf"
	// LostKernelRingPriority: the ring had no room even for a priority
	// record: security-relevant events were lost.
	LostKernelRingPriority = "kernel_ringbuf_priority"
	// LostRateLimit: ordinary records of a cgroup over its rate
	// (capture.flood.cgroup_rate).
	LostRateLimit = "cgroup_rate_limit"
	// LostQueue: the pipeline queue of ordinary events was full.
	LostQueue = "queue"
	// LostQueuePriority: the pipeline's priority queue was full, and so was
	// the ordinary one.
	LostQueuePriority = "queue_priority"
)
