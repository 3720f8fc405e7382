package runtime

import "golang.org/x/sys/unix"

// sysHandlers routes arm64 syscalls to their handlers. arm64 has only the
// *at forms of the path calls, umount2 and dup3. AArch32 (compat) tasks are
// not handled: their numbers are not listed, so their calls go unwatched.
// Grace (GH200) cores run no AArch32 code at all.
var sysHandlers = []sysHandler{
	{"openat", unix.SYS_OPENAT, noSyscall},
	{"openat2", unix.SYS_OPENAT2, noSyscall},
	{"open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT, noSyscall},
	{"name_to_handle_at", unix.SYS_NAME_TO_HANDLE_AT, noSyscall},
	{"connect", unix.SYS_CONNECT, noSyscall},
	{"accept", unix.SYS_ACCEPT, noSyscall},
	{"accept", unix.SYS_ACCEPT4, noSyscall},
	{"mount", unix.SYS_MOUNT, noSyscall},
	{"fsopen", unix.SYS_FSOPEN, noSyscall},
	{"fsconfig", unix.SYS_FSCONFIG, noSyscall},
	{"fsmount", unix.SYS_FSMOUNT, noSyscall},
	{"move_mount", unix.SYS_MOVE_MOUNT, noSyscall},
	{"open_tree", unix.SYS_OPEN_TREE, noSyscall},
	{"umount", unix.SYS_UMOUNT2, noSyscall},
	{"unshare", unix.SYS_UNSHARE, noSyscall},
	{"setns", unix.SYS_SETNS, noSyscall},
	{"ptrace", unix.SYS_PTRACE, noSyscall},
	{"process_vm_readv", unix.SYS_PROCESS_VM_READV, noSyscall},
	{"process_vm_writev", unix.SYS_PROCESS_VM_WRITEV, noSyscall},
	{"init_module", unix.SYS_INIT_MODULE, noSyscall},
	{"finit_module", unix.SYS_FINIT_MODULE, noSyscall},
	{"delete_module", unix.SYS_DELETE_MODULE, noSyscall},
	{"bpf", unix.SYS_BPF, noSyscall},
	{"pidfd_getfd", unix.SYS_PIDFD_GETFD, noSyscall},
	{"memfd_create", unix.SYS_MEMFD_CREATE, noSyscall},
	{"pivot_root", unix.SYS_PIVOT_ROOT, noSyscall},
	{"chroot", unix.SYS_CHROOT, noSyscall},
	{"mknodat", unix.SYS_MKNODAT, noSyscall},
	{"unlinkat", unix.SYS_UNLINKAT, noSyscall},
	{"renameat", unix.SYS_RENAMEAT, noSyscall},
	{"renameat2", unix.SYS_RENAMEAT2, noSyscall},
	{"linkat", unix.SYS_LINKAT, noSyscall},
	{"symlinkat", unix.SYS_SYMLINKAT, noSyscall},
	{"truncate", unix.SYS_TRUNCATE, noSyscall},
	{"dup3", unix.SYS_DUP3, noSyscall},
}
