package runtime

import "github.com/kestrel-sec/kestrel/internal/event"

// Layout of struct sys_rec (bpf/syscalls.bpf.h); TestRecordLayout checks it.
const (
	sysRet      = 56
	sysFlags    = 64
	sysArg2     = 72
	sysTarget   = 80
	sysFd       = 84
	sysFd2      = 88
	sysNSInode  = 92
	sysCall     = 96
	sysSFlags   = 98
	sysPathLen  = 100
	sysPath2Len = 102
	sysArgLen   = 104
	sysPath     = 112
	sysPath2    = 1136
	sysArg      = 2160
	sysArgSlot  = 64
	sysSize     = 2224

	sysFSocket   = 1 << 0
	sysFPathTr   = 1 << 2
	sysFExitOnly = 1 << 3
	sysFCompat   = 1 << 4
	sysFIOUring  = 1 << 5
	sysFSelfObj  = 1 << 6
	sysFPending  = 1 << 7
)

// sysCallNames are the event.Syscall names of enum sys_call.
var sysCallNames = [...]string{
	"mount", "umount", "unshare", "setns", "ptrace", "process_vm_readv", "process_vm_writev",
	"init_module", "finit_module", "delete_module", "bpf", "memfd_create", "rename", "unlink",
	"link", "symlink", "dup", "mknod", "pivot_root", "chroot", "kill", "name_to_handle_at",
	"pidfd_getfd", "truncate", "fsopen", "fsconfig", "fsmount", "move_mount", "open_tree",
}

type sysEvent struct {
	e event.Event
	p event.Process
	s event.Syscall
}

func (d *decoder) decodeSyscall(h *recHeader, b []byte) (*event.Event, error) {
	if len(b) != sysSize {
		return nil, malformed("syscall record of %d bytes, want %d", len(b), sysSize)
	}
	call := le.Uint16(b[sysCall:])
	if int(call) >= len(sysCallNames) {
		return nil, malformed("syscall id %d unknown", call)
	}
	path, err := slotString(b, sysPath, int(le.Uint16(b[sysPathLen:])), pathSlot, "syscall path")
	if err != nil {
		return nil, err
	}
	path2, err := slotString(b, sysPath2, int(le.Uint16(b[sysPath2Len:])), pathSlot, "syscall path2")
	if err != nil {
		return nil, err
	}
	arg, err := slotString(b, sysArg, int(le.Uint16(b[sysArgLen:])), sysArgSlot, "syscall arg")
	if err != nil {
		return nil, err
	}
	sflags := le.Uint16(b[sysSFlags:])
	se := &sysEvent{p: h.Process}
	se.s = event.Syscall{
		Name:       sysCallNames[call],
		Ret:        int64(le.Uint64(b[sysRet:])),
		Flags:      le.Uint64(b[sysFlags:]),
		Arg2:       le.Uint64(b[sysArg2:]),
		Target:     le.Uint32(b[sysTarget:]),
		Path:       path,
		Path2:      path2,
		Arg:        arg,
		Fd:         int32(le.Uint32(b[sysFd:])),
		Fd2:        int32(le.Uint32(b[sysFd2:])),
		NSInode:    le.Uint32(b[sysNSInode:]),
		FdIsSocket: sflags&sysFSocket != 0,
		ExitOnly:   sflags&sysFExitOnly != 0,
		Compat:     sflags&sysFCompat != 0,
		// SensorObject and Pending: the kernel sends a pending copy only
		// of a call on the sensor's objects.
		SensorObject: sflags&sysFSelfObj != 0,
		Pending:      sflags&(sysFSelfObj|sysFPending) == sysFSelfObj|sysFPending,
	}
	if sflags&sysFPathTr != 0 {
		se.s.Truncated = event.TruncPath
		// A path as passed that filled its slot ends with the mark; one
		// finit_module resolved from its fd starts with it.
		switch {
		case se.s.Name == "finit_module" && path != "":
			se.s.Path = truncatedMark + path
		default:
			if len(path) >= rawSlot-1 {
				se.s.Path = path + truncatedMark
			}
			if len(path2) >= rawSlot-1 {
				se.s.Path2 = path2 + truncatedMark
			}
		}
	}
	if sflags&sysFIOUring != 0 {
		se.s.Via = event.ViaIOUring
	}
	se.e = event.Event{Kind: event.KindSyscall, Time: h.Time, Process: &se.p, Sys: &se.s}
	return &se.e, nil
}
