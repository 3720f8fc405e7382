package runtime

import "golang.org/x/sys/unix"

// sysHandlers routes x86-64 syscalls to their handlers. Native numbers come
// from golang.org/x/sys/unix; compat numbers are i386's
// (arch/x86/entry/syscalls/syscall_32.tbl, checked against x/sys's 386
// table by TestCompatSyscallNumbers), reached by 32-bit binaries and by
// int 0x80 from 64-bit ones, an evasion path of tools that watch only the
// 64-bit calls. i386 connects through socketcall(2) are not decoded: the
// cgroup connect hooks report them, without fd and result. x32 calls
// (number | __X32_SYSCALL_BIT) dispatch as native, except the x32-only
// numbers of ptrace and process_vm_readv/writev listed last
// (syscall_64.tbl, 512..547).
var sysHandlers = []sysHandler{
	{"open", unix.SYS_OPEN, 5},
	{"openat", unix.SYS_OPENAT, 295},
	{"openat2", unix.SYS_OPENAT2, 437},
	{"creat", unix.SYS_CREAT, 8},
	{"open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT, 342},
	{"name_to_handle_at", unix.SYS_NAME_TO_HANDLE_AT, 341},
	{"connect", unix.SYS_CONNECT, 362},
	{"accept", unix.SYS_ACCEPT, noSyscall}, // i386 accepts through socketcall only
	{"accept", unix.SYS_ACCEPT4, 364},
	{"mount", unix.SYS_MOUNT, 21},
	{"fsopen", unix.SYS_FSOPEN, 430},
	{"fsconfig", unix.SYS_FSCONFIG, 431},
	{"fsmount", unix.SYS_FSMOUNT, 432},
	{"move_mount", unix.SYS_MOVE_MOUNT, 429},
	{"open_tree", unix.SYS_OPEN_TREE, 428},
	{"umount", unix.SYS_UMOUNT2, 52},
	{"oldumount", noSyscall, 22},
	{"unshare", unix.SYS_UNSHARE, 310},
	{"setns", unix.SYS_SETNS, 346},
	{"ptrace", unix.SYS_PTRACE, 26},
	{"process_vm_readv", unix.SYS_PROCESS_VM_READV, 347},
	{"process_vm_writev", unix.SYS_PROCESS_VM_WRITEV, 348},
	{"init_module", unix.SYS_INIT_MODULE, 128},
	{"finit_module", unix.SYS_FINIT_MODULE, 350},
	{"delete_module", unix.SYS_DELETE_MODULE, 129},
	{"bpf", unix.SYS_BPF, 357},
	{"pidfd_getfd", unix.SYS_PIDFD_GETFD, 438},
	{"memfd_create", unix.SYS_MEMFD_CREATE, 356},
	{"pivot_root", unix.SYS_PIVOT_ROOT, 217},
	{"chroot", unix.SYS_CHROOT, 61},
	{"mknod", unix.SYS_MKNOD, 14},
	{"mknodat", unix.SYS_MKNODAT, 297},
	{"unlink", unix.SYS_UNLINK, 10},
	{"unlinkat", unix.SYS_UNLINKAT, 301},
	{"rename", unix.SYS_RENAME, 38},
	{"renameat", unix.SYS_RENAMEAT, 302},
	{"renameat2", unix.SYS_RENAMEAT2, 353},
	{"link", unix.SYS_LINK, 9},
	{"linkat", unix.SYS_LINKAT, 303},
	{"symlink", unix.SYS_SYMLINK, 83},
	{"symlinkat", unix.SYS_SYMLINKAT, 304},
	{"truncate", unix.SYS_TRUNCATE, 92},
	{"truncate64", noSyscall, 193},
	{"dup2", unix.SYS_DUP2, 63},
	{"dup3", unix.SYS_DUP3, 330},
	// x32-only numbers.
	{"ptrace", 521, noSyscall},
	{"process_vm_readv", 539, noSyscall},
	{"process_vm_writev", 540, noSyscall},
}
