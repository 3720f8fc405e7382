package runtime

import (
	goruntime "runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Layout of struct sig_rec (bpf/self.bpf.h); TestSignalRecordLayout checks
// it against the object's BTF.
const (
	recSignal = 30

	sigSig           = 56
	sigCode          = 60
	sigResult        = 64
	sigTargetTID     = 68
	sigSenderSyscall = 72
	sigGroup         = 80
	sigSize          = 88

	siKernel = 0x80 // si_code of a signal the kernel generated
)

// signalSenders names the syscalls that generate a signal for another
// task, by the number bpf/self.bpf.h reports: the native numbers of this
// architecture and, on amd64, the i386 ones (32-bit binaries, int 0x80)
// offset by sysCompatBase, as the syscall dispatcher numbers them.
var signalSenders = func() map[int64]string {
	m := map[int64]string{
		unix.SYS_KILL: "kill", unix.SYS_TKILL: "tkill", unix.SYS_TGKILL: "tgkill",
		unix.SYS_RT_SIGQUEUEINFO: "rt_sigqueueinfo", unix.SYS_RT_TGSIGQUEUEINFO: "rt_tgsigqueueinfo",
		unix.SYS_PIDFD_SEND_SIGNAL: "pidfd_send_signal", unix.SYS_PTRACE: "ptrace",
	}
	if goruntime.GOARCH == "amd64" { // arch/x86/entry/syscalls/syscall_32.tbl
		for nr, name := range map[int64]string{37: "kill", 238: "tkill", 270: "tgkill", 178: "rt_sigqueueinfo",
			335: "rt_tgsigqueueinfo", 424: "pidfd_send_signal", 26: "ptrace"} {
			m[sysCompatBase+nr] = name + " (32-bit)"
		}
	}
	return m
}()

var signalNames = [...]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
	9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM",
	16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU",
	23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO",
	30: "SIGPWR", 31: "SIGSYS",
}

// signalName returns the name of Linux signal sig ("SIGSTOP", "SIGRTMIN+3").
func signalName(sig int) string {
	switch {
	case sig > 0 && sig < len(signalNames):
		return signalNames[sig]
	case sig >= 34 && sig <= 64:
		return "SIGRTMIN+" + strconv.Itoa(sig-34)
	}
	return "signal " + strconv.Itoa(sig)
}

type sigEvent struct {
	e event.Event
	p event.Process
	s event.Syscall
}

func (d *decoder) decodeSignal(h *recHeader, b []byte) (*event.Event, error) {
	if len(b) != sigSize {
		return nil, malformed("signal record of %d bytes, want %d", len(b), sigSize)
	}
	sig := int32(le.Uint32(b[sigSig:]))
	if sig <= 0 || sig > 64 {
		return nil, malformed("signal number %d out of range", sig)
	}
	code := int32(le.Uint32(b[sigCode:]))
	nr := int64(le.Uint64(b[sigSenderSyscall:]))
	group := le.Uint32(b[sigGroup:])
	if group > 1 {
		return nil, malformed("signal group flag %d", group)
	}
	se := &sigEvent{p: h.Process}
	se.s = event.Syscall{
		Name:   event.SyscallSignal,
		Ret:    int64(int32(le.Uint32(b[sigResult:]))),
		Flags:  uint64(sig),
		Target: le.Uint32(b[sigTargetTID:]),
		Arg:    signalVia(int(sig), code, nr),
		Arg2:   uint64(nr),
		Fd:     code,
		Fd2:    int32(group),
		Compat: nr >= sysCompatBase,
	}
	se.e = event.Event{Kind: event.KindSyscall, Time: h.Time, Process: &se.p, Sys: &se.s}
	return &se.e, nil
}

// signalVia says how a signal came: "SIGSTOP via tgkill", "SIGKILL from the
// kernel", or the si_code when the sending syscall is unknown.
func signalVia(sig int, code int32, nr int64) string {
	s := signalName(sig)
	if name, ok := signalSenders[nr]; ok {
		return s + " via " + name
	}
	if code == siKernel {
		return s + " from the kernel"
	}
	return s + " (si_code " + strconv.Itoa(int(code)) + ")"
}
