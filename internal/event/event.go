// Package event is the one vocabulary every stage of the sensor speaks: the
// typed events decoded from the kernel, the context joined onto them, and the
// findings produced by rules.
//
// It imports nothing of ours, so that runtime, gpu, detect and export can all
// depend on it without depending on each other.
//
// Ownership: a *Process and a *Container hung off an Event are immutable
// snapshots shared between events; stages must not modify them. Copy first.
// The one exception is the Process a source hangs off an exec or fork event
// it made: it belongs to that event until the enricher makes it the
// process's new snapshot, in place.
package event

import (
	"net/netip"
	"time"
)

// Kind says which payload of an Event is meaningful.
type Kind uint8

// Event kinds. The string forms (see Kind.String) are the "kind" field of the
// JSON contract (docs/output.md) and must not change.
const (
	KindInvalid Kind = iota
	KindExec
	KindFork
	KindExit
	KindOpen
	KindConnect
	KindEgress
	KindSyscall // mount, setns, unshare, ptrace, module load, bpf, memfd, rename, unlink, dup onto stdio ...
	KindGPU
	KindFinding
	KindLost
	KindStatus
	// KindAccept is an inbound connection a process accepted from a remote
	// peer (Net.DAddr/DPort are the peer, SAddr/SPort the local end).
	KindAccept
	kindMax
)

var kindNames = [...]string{
	KindInvalid: "invalid",
	KindExec:    "exec",
	KindFork:    "fork",
	KindExit:    "exit",
	KindOpen:    "open",
	KindConnect: "connect",
	KindEgress:  "egress",
	KindSyscall: "syscall",
	KindGPU:     "gpu",
	KindFinding: "finding",
	KindLost:    "lost",
	KindStatus:  "status",
	KindAccept:  "accept",
}

// String returns the contract name of k.
func (k Kind) String() string {
	if k >= kindMax {
		return "invalid"
	}
	return kindNames[k]
}

// ParseKind returns the Kind named s, or false.
func ParseKind(s string) (Kind, bool) {
	for k, n := range kindNames {
		if n == s && Kind(k) != KindInvalid {
			return Kind(k), true
		}
	}
	return KindInvalid, false
}

// Event is one thing the sensor saw or concluded. Exactly one of the payload
// fields matching Kind is set; the others are nil.
type Event struct {
	Kind Kind
	Time time.Time
	// Seq is assigned by the export ring; zero before that.
	Seq uint64
	// Priority is set on events the kernel sent as priority records
	// (escape-primitive syscalls, writes to watched files, opens of kernel
	// knobs, signals and bpf(2) calls aimed at the sensor): the pipeline
	// queues them apart from ordinary events (handled in emission order),
	// so that a flood of those cannot push them out. Not part of the
	// output contract.
	Priority bool

	// Process is the acting process, enriched with lineage; never nil after
	// enrichment (an unknown process has only PID and Comm filled).
	Process *Process
	// Container is nil for host processes.
	Container *Container

	File    *File
	Net     *Net
	Sys     *Syscall
	GPU     *GPU
	Exit    *Exit
	Finding *Finding
	Lost    *Lost
	Status  *Status
}

// Namespaces holds namespace inode numbers.
type Namespaces struct {
	Mnt, PID, Net, User, UTS, IPC, Cgroup uint32
}

// Ancestor is one step of a process lineage.
type Ancestor struct {
	PID uint32 `json:"pid"`
	Exe string `json:"exe"`
	// Comm is the ancestor's comm; it names kernel threads (kthreadd,
	// kworker/*), which have no Exe.
	Comm string `json:"comm,omitempty"`
}

// EnvVar is one captured environment variable. Only names on the capture
// allowlist are kept; Value is truncated, and replaced by "sha256:<hex>" where
// the name looks like a secret (tokens, keys, passwords).
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Process describes the acting process at the time of the event.
type Process struct {
	PID  uint32 // tgid
	TID  uint32
	PPID uint32 // current parent tgid
	// ForkParent is the tgid that forked this process: it survives
	// re-parenting, which is why rules use it for lineage.
	ForkParent uint32
	UID, EUID  uint32
	Comm       string
	Exe        string
	Args       []string
	Cwd        string
	Env        []EnvVar
	// StartTime is when the process (tgid) started.
	StartTime time.Time
	// ExecTime is when the current image was exec'd.
	ExecTime time.Time
	CgroupID uint64
	NS       Namespaces
	// NSPID is the pid in the process's own PID namespace (the last field
	// of NSpid in /proc/<pid>/status), which is the pid its container's
	// processes name it by; 0 when unknown. With NS.PID it maps the pids
	// that ptrace, process_vm_* and /proc/<pid>/ paths carry to host pids.
	NSPID     uint32
	CapEff    uint64
	CapPrm    uint64
	TTY       bool
	Ancestors []Ancestor
	// GPUOwner is true once NVML has listed this process as using a GPU.
	GPUOwner bool
	// ExeMemfd is true when the executable is a memfd (fileless execution).
	ExeMemfd bool
	// Truncated marks the fields the capture cut short (TruncArgs, TruncEnv,
	// TruncExe, TruncCwd): Args then holds only the start of the command line.
	Truncated Truncation
}

// Container is the runtime context of a process that is not on the host.
type Container struct {
	ID         string // full id; "unknown" if the layout matched but no id was found
	Runtime    string // containerd, cri-o, docker, podman, or "unknown"
	CgroupPath string
	PodUID     string
	Pod        string
	Namespace  string
	Name       string
	Image      string
	Labels     map[string]string
	// GPUs holds the GPU UUIDs assigned to this container (kubelet PodResources).
	GPUs []string
	// StartTime is when the sensor first saw a process of this container.
	StartTime time.Time
}

// Unknown is what context fields say when they cannot be resolved. It is never
// the empty string, so consumers can tell "not resolved" from "not set".
const Unknown = "unknown"

// PathSource tells where an absolute path came from.
type PathSource uint8

const (
	// PathAsPassed means the raw path was already absolute.
	PathAsPassed PathSource = iota
	// PathKernel means the kernel resolved it (cwd or dirfd walk in BPF).
	PathKernel
	// PathUser means user space joined the raw path to a cwd or dirfd it read
	// from /proc.
	PathUser
	// PathUnresolved means the relative path could not be resolved.
	PathUnresolved
)

func (s PathSource) String() string {
	switch s {
	case PathAsPassed:
		return "as_passed"
	case PathKernel:
		return "kernel"
	case PathUser:
		return "user"
	}
	return "unresolved"
}

// File is the payload of an open (or of a file-related syscall).
type File struct {
	// Path is absolute, unless Truncated has TruncPath (then it is the
	// deepest part, after "..."), or PathSource is PathUnresolved.
	Path       string
	RawPath    string // as passed to the syscall
	PathSource PathSource
	Flags      uint32
	Mode       uint32
	// Result is the fd on success or -errno on failure.
	Result int32
	Size   int64 // -1 when unknown
	Inode  uint64
	Dev    uint64
	// Syscall names the call: open, openat, openat2, creat,
	// open_by_handle_at; "held" for a model file a process held
	// (descriptor or mapping) when the sensor started, read from /proc.
	Syscall string
	// Via is ViaIOUring for an io_uring request, "" for a syscall.
	Via string
	// Match says how the kernel matched the open: by the path as passed
	// (MatchName, the only way for a failed open) or by what it opened,
	// whatever name reached it.
	Match FileMatch
	// Knob names the kernel knob of MatchKnob (a KnobNames value).
	Knob string
	// Type is the opened inode's type (FileType*), "" when unknown.
	Type string
	// Rdev is the device number of a device node (stat(2) encoding).
	Rdev uint64
	// TargetPID is, for a /proc/<pid> knob (KnobProcMem ...), the host pid
	// of the process the entry belongs to, whatever pid namespace or name
	// the caller reached it through.
	TargetPID uint32
	// Repeats counts the opens of the same file by the same process image
	// with the same access mode that the kernel counted instead of
	// reporting since the previous report of it (capture.open_repeat_window).
	Repeats uint32
	// ExitOnly is set when the open was refused before it ran (a seccomp
	// filter or a tracer; sys_enter never fired) and was seen at sys_exit
	// only, with the errno in Result. Opens are all seen at sys_exit now,
	// so the kernel no longer tells the two apart; it stays false.
	ExitOnly bool
	// Compat is set for a 32-bit syscall on a 64-bit kernel (a 32-bit
	// binary, or int 0x80 from a 64-bit one).
	Compat bool
	// Truncated marks a path cut short (TruncPath, TruncRawPath).
	Truncated Truncation
}

// FileMatch says how the kernel matched an open (File.Match): bits.
type FileMatch uint8

// File match bits.
const (
	// MatchName: the path as passed matched the capture filter.
	MatchName FileMatch = 1 << iota
	// MatchModel: the opened inode (device and inode number) is a model
	// file the model registry knows.
	MatchModel
	// MatchKnob: a kernel knob, by filesystem (proc, sysfs, cgroup,
	// binfmt_misc) and dentry name; File.Knob says which.
	MatchKnob
	// MatchDevice: a block device or kernel memory (/dev/mem, /dev/kmem,
	// /dev/port), by device number.
	MatchDevice
	// MatchNamespace: a namespace file of a namespace the caller is not in.
	MatchNamespace
	// MatchLayout: a model store blob by its dentry names
	// (blobs/sha256-<hex>, blobs/<64 hex>).
	MatchLayout
	// MatchCall: the call itself is reported (open_by_handle_at).
	MatchCall
	matchMax
)

// MatchNames are the names of the FileMatch bits, bit 0 first.
var MatchNames = [...]string{"name", "model", "knob", "device", "namespace", "layout", "call"}

// Has reports whether m has every bit of b.
func (m FileMatch) Has(b FileMatch) bool { return m&b == b && b != 0 }

// ByIdentity reports whether the kernel matched the file itself rather
// than the name passed.
func (m FileMatch) ByIdentity() bool {
	return m&(MatchModel|MatchKnob|MatchDevice|MatchNamespace|MatchLayout) != 0
}

// Names returns the names of m's bits, in bit order.
func (m FileMatch) Names() []string {
	var out []string
	for i, n := range MatchNames {
		if m&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String joins Names with ",".
func (m FileMatch) String() string {
	s := ""
	for _, n := range m.Names() {
		if s != "" {
			s += ","
		}
		s += n
	}
	return s
}

// ParseFileMatch parses the names String returns.
func ParseFileMatch(names []string) (FileMatch, bool) {
	var m FileMatch
	for _, n := range names {
		found := false
		for i, v := range MatchNames {
			if v == n {
				m |= 1 << i
				found = true
			}
		}
		if !found {
			return 0, false
		}
	}
	return m, true
}

// File types (File.Type), from the inode's S_IFMT bits.
const (
	FileTypeRegular = "regular"
	FileTypeDir     = "directory"
	FileTypeChar    = "char"
	FileTypeBlock   = "block"
	FileTypeFIFO    = "fifo"
	FileTypeSocket  = "socket"
	FileTypeSymlink = "symlink"
)

// FileTypeOf returns the File.Type of an i_mode, "" for none.
func FileTypeOf(mode uint32) string {
	switch mode & 0o170000 {
	case 0o100000:
		return FileTypeRegular
	case 0o040000:
		return FileTypeDir
	case 0o020000:
		return FileTypeChar
	case 0o060000:
		return FileTypeBlock
	case 0o010000:
		return FileTypeFIFO
	case 0o140000:
		return FileTypeSocket
	case 0o120000:
		return FileTypeSymlink
	}
	return ""
}

// Kernel knobs the capture recognises by identity (File.Knob). The kernel
// runs or acts on what is written to the first ones as root on the host.
const (
	KnobCorePattern     = "core_pattern"
	KnobCorePipeLimit   = "core_pipe_limit"
	KnobModprobe        = "modprobe"
	KnobSysrq           = "sysrq"
	KnobSysrqTrigger    = "sysrq-trigger"
	KnobHotplug         = "hotplug"
	KnobPoweroffCmd     = "poweroff_cmd"
	KnobUeventHelper    = "uevent_helper"
	KnobReleaseAgent    = "release_agent"
	KnobNotifyOnRelease = "notify_on_release"
	KnobBinfmtRegister  = "binfmt_misc/register"
	// KnobKcore is /proc/kcore, kernel memory.
	KnobKcore = "kcore"
	// Another process's /proc/<pid>/ entries (never the caller's own).
	KnobProcMem     = "proc_pid_mem"
	KnobProcEnviron = "proc_pid_environ"
	KnobProcMaps    = "proc_pid_maps"
)

// IsUMHKnob reports whether k is a knob whose value the kernel executes or
// acts on as root in the host's namespaces (usermode helpers, sysrq).
func IsUMHKnob(k string) bool {
	switch k {
	case KnobCorePattern, KnobCorePipeLimit, KnobModprobe, KnobSysrq, KnobSysrqTrigger, KnobHotplug,
		KnobPoweroffCmd, KnobUeventHelper, KnobBinfmtRegister:
		return true
	}
	return false
}

// Open flag bits (asm-generic, as on x86-64 and arm64).
const (
	OAccMode  = 0x3
	ORdonly   = 0x0
	OWronly   = 0x1
	ORdwr     = 0x2
	OCreat    = 0x40
	OTrunc    = 0x200
	OAppend   = 0x400
	ODirectry = 0x10000
)

// IsWrite reports whether flags open for writing, creating or truncating.
func (f *File) IsWrite() bool {
	return f.Flags&OAccMode != ORdonly || f.Flags&(OCreat|OTrunc|OAppend) != 0
}

// IsRead reports whether flags open for reading.
func (f *File) IsRead() bool {
	m := f.Flags & OAccMode
	return m == ORdonly || m == ORdwr
}

// Net class values.
const (
	ClassLoopback = "loopback"
	ClassNode     = "node"
	ClassPod      = "pod"
	ClassMetadata = "metadata"
	ClassExternal = "external"
	ClassUnix     = "unix"
)

// Net origins: how a socket came to send to its destination.
const (
	OriginConnect  = "connect"  // the socket connected to it
	OriginAccept   = "accept"   // the peer connected in and the socket was accepted
	OriginDatagram = "datagram" // the destination came with each send (sendto, raw, ICMP)
)

// Vias: how an operation reached the kernel other than by its own system
// call (File.Via, Syscall.Via, Net.Via).
const (
	ViaIOUring    = "io_uring"
	ViaSocketcall = "socketcall" // i386 socketcall(2)
	ViaFastOpen   = "fastopen"   // TCP fast open: sendto/sendmsg with MSG_FASTOPEN
	ViaKernel     = "kernel"     // a kernel thread
	ViaOther      = "other"
)

// Net is the payload of connect, accept and egress events. For an egress
// event DAddr/DPort are where the bytes went; for an accept, the remote peer.
type Net struct {
	// Protocol is tcp, udp, udplite, icmp, icmpv6 (ping sockets), raw (a
	// raw socket; IPProto says which protocol), other (IPProto says), unix,
	// or packet (an AF_PACKET socket: link-layer frames, no IP endpoints).
	Protocol string
	// IPProto is the IP protocol number of raw and other sockets, else 0.
	IPProto uint8
	SAddr   netip.Addr
	SPort   uint16
	// DAddr is invalid when the destination of a send is unknown (the
	// packet was dropped before it could be seen).
	DAddr netip.Addr
	DPort uint16
	// UnixPath is the sun_path of an AF_UNIX connect ("@name" for abstract),
	// as the caller passed it.
	UnixPath string
	// PeerPath is the sun_path the server of a connected AF_UNIX socket
	// bound, the server's own name for it whatever path the caller used
	// ("" when not connected or the server's end is unnamed).
	PeerPath string
	// PeerDev and PeerIno identify the socket file the server bound (PeerIno
	// 0: unknown, or an abstract socket). Links, symlinks and bind mounts
	// of the socket keep this identity.
	PeerDev, PeerIno uint64
	Class            string
	Cookie           uint64
	// BytesSent is cumulative for the socket (egress events).
	BytesSent uint64
	// Closed is set on the final egress report of a socket.
	Closed bool
	// Result is 0 or -errno for connects whose outcome is known.
	Result int32
	// Fd is the socket's descriptor in the caller, or -1.
	Fd int32
	// Origin is one of the Origin* values, or "" when the socket was first
	// seen sending (it is older than the sensor, or a loopback accept).
	Origin string
	// Via is one of the Via* values, or "" for the call's own syscall.
	Via string
}

// SyscallNames are the values Syscall.Name takes: one name per family of
// escape-primitive calls the kernel side reports (umount2 is "umount",
// renameat2 is "rename", dup3 is "dup"). Exporters map each of them; a new
// name is added here first. "kill" is no longer sent (a signal to the
// sensor is SyscallSignal, whatever call sent it); the name stays for
// events of older sensors.
var SyscallNames = []string{
	"mount", "umount", "unshare", "setns", "ptrace", "process_vm_readv", "process_vm_writev",
	"init_module", "finit_module", "delete_module", "bpf", "memfd_create", "rename", "unlink",
	"link", "symlink", "dup", "mknod", "pivot_root", "chroot", "kill", "name_to_handle_at",
	"pidfd_getfd", "truncate", "fsopen", "fsconfig", "fsmount", "move_mount", "open_tree",
}

// Syscall is the payload of the escape-primitive syscalls.
type Syscall struct {
	Name   string // one of SyscallNames
	Ret    int64
	Flags  uint64 // clone flags, mount flags, nstype, ptrace request, bpf cmd ...
	Target uint32 // target pid for ptrace, process_vm_*, kill; 0 if none
	// Path and Path2 are the path arguments (mount source/target, old/new name).
	Path, Path2 string
	// Arg is a short string argument: fs type, memfd name, module params.
	Arg string
	// Arg2 is a second numeric argument: bpf program type, mknod device,
	// rename/link flags, init_module image length, truncate length.
	Arg2 uint64
	// Fd and Fd2 are descriptor arguments (setns fd, dup old/new).
	Fd, Fd2 int32
	// NSInode is the namespace inode behind a setns fd, when known.
	NSInode uint32
	// FdIsSocket is set for dup onto stdio when the old fd is a socket.
	FdIsSocket bool
	// Via is ViaIOUring for an io_uring request, "" for a syscall.
	Via string
	// ExitOnly is set when the call was refused before it ran (a seccomp
	// filter or a tracer; sys_enter never fired) and was seen at sys_exit
	// only, with the errno in Ret: a blocked attempt. Calls decided at
	// sys_exit (the path families, name_to_handle_at) never set it.
	ExitOnly bool
	// Compat is set for a 32-bit syscall on a 64-bit kernel (a 32-bit
	// binary, or int 0x80 from a 64-bit one).
	Compat bool
	// Truncated marks a path cut short (TruncPath).
	Truncated Truncation
	// SensorObject is set when the call named one of the sensor's own
	// objects, decided by the kernel on the object's id: a bpf(2) command
	// on one of its maps, programs or links (Name "bpf"), or pidfd_getfd
	// of one of its descriptors (Name "pidfd_getfd"). See SensorObject in
	// self.go for what the other fields hold then.
	SensorObject bool
	// Pending is set on the copy of a SensorObject call sent at sys_enter,
	// before the call ran: Ret is not its result. The call's sys_exit
	// record, with its result, follows.
	Pending bool
}

// Exit is the payload of exit events.
type Exit struct {
	Code   int32
	Signal int32
}

// GPU change values.
const (
	GPUStart  = "start"
	GPUStop   = "stop"
	GPUUpdate = "update"
)

// GPU is the payload of gpu events: a change in which process holds memory on
// which GPU.
type GPU struct {
	Change    string
	UUID      string
	Index     int
	MIG       string // MIG instance UUID or "" when MIG is off
	Name      string
	PID       uint32 // host tgid
	UsedBytes uint64
}

// Severity orders findings. Higher is worse.
type Severity uint8

const (
	SevInfo Severity = iota + 1
	SevLow
	SevMedium
	SevHigh
	SevCritical
)

var sevNames = [...]string{"", "info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if int(s) < len(sevNames) && s > 0 {
		return sevNames[s]
	}
	return "invalid"
}

// ParseSeverity parses "info" .. "critical".
func ParseSeverity(s string) (Severity, bool) {
	for i, n := range sevNames {
		if n != "" && n == s {
			return Severity(i), true
		}
	}
	return 0, false
}

// Finding is what a rule concluded. Process and Container on the enclosing
// Event are the actor's.
type Finding struct {
	Rule        string
	Title       string
	Severity    Severity
	MITRE       []string
	Description string
	// Explanation is one sentence naming the concrete thing seen.
	Explanation string
	// Count is how many occurrences this finding stands for (aggregated bursts).
	Count int
	// Evidence holds the triggering events (immutable snapshots).
	Evidence []*Event
	// Attrs carries rule-specific facts (model files, bytes, destination).
	Attrs map[string]string
}

// Lost reports events dropped somewhere on the way.
type Lost struct {
	Source string // e.g. "kernel_ringbuf", "decoder", "queue", "subscriber", "encode_error"
	Count  uint64
	// Detail says more where there is more to say (an encoding error).
	Detail string
}

// Status reports sensor state (the first line of --tail, periodic health).
type Status struct {
	// Ready is true once every program is attached and the pipeline runs.
	Ready   bool
	Message string
	// GPUEnabled is true while the GPU sampler runs (NVML or replay): gpu
	// events and GPU ownership are reported.
	GPUEnabled bool
	Programs   []string
	Fields     map[string]string
	// Counters holds named counters: events and drops per source, ring fill.
	Counters map[string]uint64
}

// Inventory is the runtime AI bill of materials of one node: which GPU is
// owned by which process, container and pod, which model files those loaded,
// and which egress peers they talked to.
type Inventory struct {
	Node string
	Time time.Time
	GPUs []InventoryGPU
	// Unowned lists model files loaded by processes that own no GPU.
	Unowned []InventoryOwner
}

// InventoryGPU is one GPU (or MIG instance) and its owners.
type InventoryGPU struct {
	UUID   string
	Index  int
	Name   string
	MIG    string
	Owners []InventoryOwner
}

// InventoryOwner is one process holding GPU memory, with what it loaded and
// where it sent bytes.
type InventoryOwner struct {
	Process   *Process
	Container *Container
	UsedBytes uint64
	Models    []ModelFile
	Peers     []Peer
}

// ModelFile is a model artifact known to the model registry.
type ModelFile struct {
	Path  string
	Size  int64
	Inode uint64
	Dev   uint64
	// SHA256 is hex, or "" while the background hash is pending.
	SHA256      string
	FirstLoader uint32
	FirstSeen   time.Time
}

// Peer is an egress destination and the bytes sent to it.
type Peer struct {
	Addr      netip.Addr
	Port      uint16
	Protocol  string
	Class     string
	BytesSent uint64
}
