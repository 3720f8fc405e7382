/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Escape-primitive syscalls (REC_SYSCALL): mount and the new mount API
 * (fsopen, fsconfig, fsmount, move_mount, open_tree), umount2, unshare, setns,
 * ptrace, process_vm_readv/writev, init/finit/delete_module, memfd_create,
 * pivot_root, chroot, mknod(at), the rename, unlink, link and symlink
 * families and truncate (watched paths only, by the open filter), dup2/dup3 of a socket
 * onto fds 0-2, and name_to_handle_at (the first step of opening a file by
 * handle, with no path). bpf and pidfd_getfd are in self.bpf.h; signals to
 * the sensor, whatever call sent them, are its signal_generate program.
 * Handlers are tail-called by the syscall dispatcher
 * (dispatch.bpf.h), native and 32-bit compat calls alike.
 *
 * sys_enter decides and fills the record (arguments, strings) in the task's
 * sys_inflight storage; sys_exit adds the return value and sends it, so
 * that failed attempts are reported with their -errno. Syscalls that are
 * common on any host are filtered: dup2 on enter, unlink and
 * rename at exit (below).
 *
 * A call refused before sys_enter ran (seccomp filters run first, and a
 * tracer may skip the call) reaches sys_exit with nothing staged: the exit
 * handler decides on the argument registers, which still hold the
 * arguments, and reports it flagged SYS_F_EXIT_ONLY. This is done for the
 * escape primitives and dup, whatever the result.
 *
 * The path families (rename, unlink, link, symlink, truncate) and name_to_handle_at
 * have no sys_enter handler: SYS_EXIT_HANDLER decides at sys_exit from the
 * registers and the path filter of open.bpf.h, so a call refused before
 * sys_enter is reported like one that ran, and the common unlink of an
 * unwatched path costs one program and one path read. */
#pragma once

#include "open.bpf.h"

#define SYS_ARG_SLOT 64

/* Calls; the numbers are a contract with internal/runtime/decode_syscall.go. */
enum sys_call {
	SYS_MOUNT = 0,
	SYS_UMOUNT = 1,
	SYS_UNSHARE = 2,
	SYS_SETNS = 3,
	SYS_PTRACE = 4,
	SYS_VM_READV = 5,
	SYS_VM_WRITEV = 6,
	SYS_INIT_MODULE = 7,
	SYS_FINIT_MODULE = 8,
	SYS_DELETE_MODULE = 9,
	SYS_BPF = 10,
	SYS_MEMFD_CREATE = 11,
	SYS_RENAME = 12,
	SYS_UNLINK = 13,
	SYS_LINK = 14,
	SYS_SYMLINK = 15,
	SYS_DUP = 16,
	SYS_MKNOD = 17,
	SYS_PIVOT_ROOT = 18,
	SYS_CHROOT = 19,
	SYS_KILL = 20,        /* no longer sent: signals are self.bpf.h's REC_SIGNAL */
	SYS_NAME_TO_HANDLE = 21,
	SYS_PIDFD_GETFD = 22, /* self.bpf.h */
	SYS_TRUNCATE = 23,
	SYS_FSOPEN = 24,
	SYS_FSCONFIG = 25,
	SYS_FSMOUNT = 26,
	SYS_MOVE_MOUNT = 27,
	SYS_OPEN_TREE = 28,
	SYS_CALL_MAX,
};

/* sys_rec.sflags */
#define SYS_F_SOCKET (1 << 0)     /* dup: the old fd is a socket */
#define SYS_F_PATH_FD (1 << 1)    /* path was resolved from an fd (finit_module) */
#define SYS_F_PATH_TRUNC (1 << 2)
#define SYS_F_EXIT_ONLY (1 << 3)  /* refused before sys_enter: seen at sys_exit only */
#define SYS_F_COMPAT (1 << 4)     /* a 32-bit compat syscall (int 0x80, 32-bit binary) */
#define SYS_F_IO_URING (1 << 5)   /* an io_uring request, not a syscall (io_uring.bpf.h) */
#define SYS_F_SELF_OBJ (1 << 6)   /* bpf, pidfd_getfd: the call names one of the sensor's objects (self.bpf.h) */
#define SYS_F_PENDING (1 << 7)    /* sent at sys_enter, before the call ran; ret is not its result */

struct sys_rec {
	struct rec_hdr h;
	__s64 ret;
	__u64 flags;      /* clone/mount/umount flags, nstype, ptrace request, bpf cmd, signal, mknod mode */
	__u64 arg2;       /* bpf: prog type; mknod: dev; rename/link: flags; truncate: length; fsconfig: aux; fsmount: attr_flags */
	__u32 target;     /* pid of ptrace, process_vm_*; the object id or pid of self.bpf.h's calls */
	__s32 fd;         /* setns fd, finit_module fd, dup oldfd, *at dirfd */
	__s32 fd2;        /* dup newfd, second dirfd */
	__u32 ns_inode;   /* setns: namespace inode behind fd */
	__u16 call;       /* enum sys_call */
	__u16 sflags;     /* SYS_F_* */
	__u16 path_len;
	__u16 path2_len;
	__u16 arg_len;
	__u16 _pad;
	__u32 _pad2;
	char path[PATH_SLOT];
	char path2[PATH_SLOT];
	char arg[SYS_ARG_SLOT];
};

/* A watched call in flight, per task (see open_inflight). */
struct sys_inflight {
	struct sys_rec r;
	__u32 pending; /* call + 1 while r waits for its sys_exit */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sys_inflight);
} sys_inflight SEC(".maps");

static __always_inline void sys_begin(struct sys_rec *r, __u16 call, struct sys_args *a, __u16 sflags)
{
	fill_hdr(&r->h, REC_SYSCALL, sizeof(*r));
	r->ret = 0;
	r->flags = 0;
	r->arg2 = 0;
	r->target = 0;
	r->fd = -1;
	r->fd2 = -1;
	r->ns_inode = 0;
	r->call = call;
	r->sflags = sflags | (a->compat ? SYS_F_COMPAT : 0);
	r->path_len = 0;
	r->path2_len = 0;
	r->arg_len = 0;
	r->_pad = 0;
	r->_pad2 = 0;
	r->path[0] = 0;
	r->path2[0] = 0;
	r->arg[0] = 0;
}

/* user_str reads a user string into dst (size bytes) and returns its length
 * without the NUL; an unreadable pointer gives "". */
static __always_inline __u16 user_str(char *dst, __u32 size, const void *src)
{
	long n = bpf_probe_read_user_str(dst, size, src);
	if (n <= 0) {
		dst[0] = 0;
		return 0;
	}
	return n - 1;
}

/* A path that fills its RAW_SLOT read is flagged: user space marks it. */
#define SYS_PATH(r, p)                                                        \
	((r)->path_len = user_str((r)->path, RAW_SLOT, (const void *)(p)),    \
	 (r)->sflags |= (r)->path_len >= RAW_SLOT - 1 ? SYS_F_PATH_TRUNC : 0)
#define SYS_PATH2(r, p)                                                       \
	((r)->path2_len = user_str((r)->path2, RAW_SLOT, (const void *)(p)),  \
	 (r)->sflags |= (r)->path2_len >= RAW_SLOT - 1 ? SYS_F_PATH_TRUNC : 0)
#define SYS_ARG(r, p) ((r)->arg_len = user_str((r)->arg, SYS_ARG_SLOT, (const void *)(p)))

/* Escape primitives are priority records (common.h). */
static __always_inline void sys_emit(struct sys_rec *r, long ret)
{
	r->ret = ret;
	emit_record(r, sizeof(*r), CLASS_PRIO);
}

/* SYS_HANDLERS defines the handler pair of the table rows named name:
 * enter_NAME fills a record with BODY (r and a in scope) when the
 * expression WANT holds, and exit_NAME sends it with the result. With
 * nothing staged, exit_NAME rebuilds the call from the registers when
 * REFUSED (ret in scope) and WANT hold. WANT and BODY read arguments with
 * ARG(i). The filter runs first, so a call that is not reported costs only
 * WANT. */
#define SYS_HANDLERS(name, call, want, refused, body)                              \
	static __always_inline void sys_body_##name(struct sys_rec *r, struct sys_args *a) \
	{                                                                          \
		body;                                                              \
	}                                                                          \
	SYS_ENTER(name)                                                            \
	{                                                                          \
		struct sys_args args, *a = &args;                                  \
		if (is_self())                                                     \
			return 0;                                                  \
		sys_args_get(regs, a);                                             \
		if (!(want))                                                       \
			return 0;                                                  \
		struct sys_inflight *st = bpf_task_storage_get(                    \
			&sys_inflight, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE); \
		if (!st) {                                                         \
			count_drop(DROP_INFLIGHT);                                 \
			return 0;                                                  \
		}                                                                  \
		sys_begin(&st->r, call, a, 0);                                     \
		sys_body_##name(&st->r, a);                                        \
		st->pending = call + 1;                                            \
		return 0;                                                          \
	}                                                                          \
	SYS_EXIT(name)                                                             \
	{                                                                          \
		struct sys_args args, *a = &args;                                  \
		struct task_struct *t = bpf_get_current_task_btf();                \
		struct sys_inflight *st = bpf_task_storage_get(&sys_inflight, t, 0, 0); \
		if (!st || st->pending != call + 1) {                              \
			if (!(refused) || is_self())                               \
				return 0;                                          \
			sys_args_get(regs, a);                                     \
			if (!(want))                                               \
				return 0;                                          \
			st = bpf_task_storage_get(&sys_inflight, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE); \
			if (!st) {                                                 \
				count_drop(DROP_INFLIGHT);                         \
				return 0;                                          \
			}                                                          \
			sys_begin(&st->r, call, a, SYS_F_EXIT_ONLY);               \
			sys_body_##name(&st->r, a);                                \
		}                                                                  \
		st->pending = 0;                                                   \
		sys_emit(&st->r, ret);                                             \
		return 0;                                                          \
	}

/* The per-CPU record of the exit-only handlers. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sys_rec);
} sys_scratch SEC(".maps");

/* SYS_EXIT_HANDLER defines the handler of a table row that has no
 * sys_enter handler: exit_NAME fills and sends a record with BODY (r and a
 * in scope) when WANT holds, read from the argument registers. */
#define SYS_EXIT_HANDLER(name, call, want, body)                                   \
	static __always_inline void sys_body_##name(struct sys_rec *r, struct sys_args *a) \
	{                                                                          \
		body;                                                              \
	}                                                                          \
	SYS_EXIT(name)                                                             \
	{                                                                          \
		struct sys_args args, *a = &args;                                  \
		__u32 zero = 0;                                                    \
		if (is_self())                                                     \
			return 0;                                                  \
		sys_args_get(regs, a);                                             \
		if (!(want))                                                       \
			return 0;                                                  \
		struct sys_rec *r = bpf_map_lookup_elem(&sys_scratch, &zero);      \
		if (!r)                                                            \
			return 0;                                                  \
		sys_begin(r, call, a, 0);                                          \
		sys_body_##name(r, a);                                             \
		sys_emit(r, ret);                                                  \
		return 0;                                                          \
	}

/* The result conditions for an exit-only report. */
#define ANY_RESULT true

#define ARG(i) (a->a[i])
/* WATCHED(i) for a path argument relative to the cwd, WATCHED_AT(d, i) for
 * one relative to the dirfd in argument d. */
#define WATCHED(i) watched((const char *)ARG(i), KS_AT_FDCWD)
#define WATCHED_AT(d, i) watched((const char *)ARG(i), (int)ARG(d))

SYS_HANDLERS(mount, SYS_MOUNT, true, ANY_RESULT, {
	SYS_PATH(r, ARG(0));
	SYS_PATH2(r, ARG(1));
	SYS_ARG(r, ARG(2));
	r->flags = ARG(3);
})

/* The new mount API mounts with no mount(2): fsopen names the filesystem
 * type, fsconfig gives it a source and options, fsmount makes a detached
 * mount of it and move_mount attaches it; open_tree(OPEN_TREE_CLONE) copies
 * an existing tree (a bind mount) for move_mount. Every call is reported,
 * whatever the result, as mount(2) is. */
SYS_HANDLERS(fsopen, SYS_FSOPEN, true, ANY_RESULT, {
	SYS_ARG(r, ARG(0)); /* fs type */
	r->flags = ARG(1);
})

/* fsconfig(fd, cmd, key, value, aux): value is a string only for
 * SET_STRING, SET_PATH and SET_PATH_EMPTY; for the other commands it is a
 * binary blob or unused, and is not read. */
#define FSCONFIG_SET_STRING_K 1
#define FSCONFIG_SET_PATH_K 3
#define FSCONFIG_SET_PATH_EMPTY_K 4
SYS_HANDLERS(fsconfig, SYS_FSCONFIG, true, ANY_RESULT, {
	__u32 cmd = ARG(1);
	r->fd = ARG(0);
	r->flags = cmd;
	SYS_ARG(r, ARG(2)); /* key */
	if (cmd == FSCONFIG_SET_STRING_K || cmd == FSCONFIG_SET_PATH_K || cmd == FSCONFIG_SET_PATH_EMPTY_K)
		SYS_PATH(r, ARG(3));
	r->arg2 = ARG(4); /* aux: a dirfd for the path commands */
})

SYS_HANDLERS(fsmount, SYS_FSMOUNT, true, ANY_RESULT, {
	r->fd = ARG(0);
	r->flags = ARG(1);
	r->arg2 = ARG(2); /* attr_flags */
})

/* move_mount(from_dfd, from_path, to_dfd, to_path, flags) */
SYS_HANDLERS(move_mount, SYS_MOVE_MOUNT, true, ANY_RESULT, {
	r->fd = ARG(0);
	SYS_PATH(r, ARG(1));
	r->fd2 = ARG(2);
	SYS_PATH2(r, ARG(3));
	r->flags = ARG(4);
})

/* open_tree(dfd, filename, flags) */
SYS_HANDLERS(open_tree, SYS_OPEN_TREE, true, ANY_RESULT, {
	r->fd = ARG(0);
	SYS_PATH(r, ARG(1));
	r->flags = ARG(2);
})

SYS_HANDLERS(umount, SYS_UMOUNT, true, ANY_RESULT, {
	SYS_PATH(r, ARG(0));
	r->flags = ARG(1);
})

/* i386's umount(name): umount2 without flags. */
SYS_HANDLERS(oldumount, SYS_UMOUNT, true, ANY_RESULT, { SYS_PATH(r, ARG(0)); })

SYS_HANDLERS(unshare, SYS_UNSHARE, true, ANY_RESULT, { r->flags = ARG(0); })

SYS_HANDLERS(setns, SYS_SETNS, true, ANY_RESULT, {
	r->fd = ARG(0);
	r->flags = ARG(1);
	struct file *f = fd_file((struct task_struct *)bpf_get_current_task_btf(), r->fd);
	if (f) {
		struct inode *ino = BPF_CORE_READ(f, f_inode);
		if (BPF_CORE_READ(ino, i_sb, s_magic) == NSFS_MAGIC_K)
			r->ns_inode = BPF_CORE_READ(ino, i_ino);
	}
})

/* Requests that read or change another process: attach, seize, pokes, set
 * registers. PEEKs by an attached tracer are not reported one by one. */
static __always_inline bool ptrace_reported(long req)
{
	switch (req) {
	case 0:      /* TRACEME */
	case 4:      /* POKETEXT */
	case 5:      /* POKEDATA */
	case 6:      /* POKEUSER */
	case 13:     /* SETREGS */
	case 15:     /* SETFPREGS */
	case 16:     /* ATTACH */
	case 0x4205: /* SETREGSET */
	case 0x4206: /* SEIZE */
		return true;
	}
	return false;
}

SYS_HANDLERS(ptrace, SYS_PTRACE, ptrace_reported(ARG(0)), ANY_RESULT, {
	r->flags = ARG(0);
	r->target = ARG(1);
})

SYS_HANDLERS(process_vm_readv, SYS_VM_READV, true, ANY_RESULT, { r->target = ARG(0); })
SYS_HANDLERS(process_vm_writev, SYS_VM_WRITEV, true, ANY_RESULT, { r->target = ARG(0); })

SYS_HANDLERS(init_module, SYS_INIT_MODULE, true, ANY_RESULT, {
	r->arg2 = ARG(1); /* image length */
	SYS_ARG(r, ARG(2));
})

SYS_HANDLERS(finit_module, SYS_FINIT_MODULE, true, ANY_RESULT, {
	r->fd = ARG(0);
	SYS_ARG(r, ARG(1));
	r->flags = ARG(2);
	struct file *f = fd_file((struct task_struct *)bpf_get_current_task_btf(), r->fd);
	if (f) {
		bool trunc;
		struct path p = BPF_CORE_READ(f, f_path);
		r->path_len = resolve_path(&p, r->path, &trunc);
		r->sflags |= SYS_F_PATH_FD | (trunc ? SYS_F_PATH_TRUNC : 0);
	}
})

SYS_HANDLERS(delete_module, SYS_DELETE_MODULE, true, ANY_RESULT, {
	SYS_ARG(r, ARG(0));
	r->flags = ARG(1);
})

SYS_HANDLERS(memfd_create, SYS_MEMFD_CREATE, true, ANY_RESULT, {
	SYS_ARG(r, ARG(0));
	r->flags = ARG(1);
})

SYS_HANDLERS(pivot_root, SYS_PIVOT_ROOT, true, ANY_RESULT, {
	SYS_PATH(r, ARG(0));
	SYS_PATH2(r, ARG(1));
})

SYS_HANDLERS(chroot, SYS_CHROOT, true, ANY_RESULT, { SYS_PATH(r, ARG(0)); })

SYS_HANDLERS(mknod, SYS_MKNOD, true, ANY_RESULT, {
	SYS_PATH(r, ARG(0));
	r->flags = ARG(1);
	r->arg2 = ARG(2);
})

SYS_HANDLERS(mknodat, SYS_MKNOD, true, ANY_RESULT, {
	r->fd = ARG(0);
	SYS_PATH(r, ARG(1));
	r->flags = ARG(2);
	r->arg2 = ARG(3);
})

/* Path families: reported only when a path is watched by the open filter. */
SYS_EXIT_HANDLER(unlink, SYS_UNLINK, WATCHED(0), { SYS_PATH(r, ARG(0)); })

SYS_EXIT_HANDLER(unlinkat, SYS_UNLINK, WATCHED_AT(0, 1), {
	r->fd = ARG(0);
	SYS_PATH(r, ARG(1));
	r->flags = ARG(2);
})

SYS_EXIT_HANDLER(rename, SYS_RENAME, WATCHED(0) || WATCHED(1), {
	SYS_PATH(r, ARG(0));
	SYS_PATH2(r, ARG(1));
})

SYS_EXIT_HANDLER(renameat, SYS_RENAME, WATCHED_AT(0, 1) || WATCHED_AT(2, 3), {
	r->fd = ARG(0);
	SYS_PATH(r, ARG(1));
	r->fd2 = ARG(2);
	SYS_PATH2(r, ARG(3));
})

SYS_EXIT_HANDLER(renameat2, SYS_RENAME, WATCHED_AT(0, 1) || WATCHED_AT(2, 3), {
	r->fd = ARG(0);
	SYS_PATH(r, ARG(1));
	r->fd2 = ARG(2);
	SYS_PATH2(r, ARG(3));
	r->arg2 = ARG(4);
})

SYS_EXIT_HANDLER(link, SYS_LINK, WATCHED(0) || WATCHED(1), {
	SYS_PATH(r, ARG(0));
	SYS_PATH2(r, ARG(1));
})

SYS_EXIT_HANDLER(linkat, SYS_LINK, WATCHED_AT(0, 1) || WATCHED_AT(2, 3), {
	r->fd = ARG(0);
	SYS_PATH(r, ARG(1));
	r->fd2 = ARG(2);
	SYS_PATH2(r, ARG(3));
	r->arg2 = ARG(4);
})

/* symlink(target, linkpath): the target is any string; a link pointing at or
 * placed on a watched path is reported. */
SYS_EXIT_HANDLER(symlink, SYS_SYMLINK, WATCHED(0) || WATCHED(1), {
	SYS_PATH(r, ARG(0));
	SYS_PATH2(r, ARG(1));
})

SYS_EXIT_HANDLER(symlinkat, SYS_SYMLINK, WATCHED(0) || WATCHED_AT(1, 2), {
	SYS_PATH(r, ARG(0));
	r->fd2 = ARG(1);
	SYS_PATH2(r, ARG(2));
})

/* truncate(path, length) changes a file with no open at all, so the open
 * programs never see it. ftruncate needs a descriptor opened for writing,
 * and that open was reported (as is io_uring's FTRUNCATE, fd-based too). */
SYS_EXIT_HANDLER(truncate, SYS_TRUNCATE, WATCHED(0), {
	SYS_PATH(r, ARG(0));
	r->arg2 = ARG(1); /* length */
})

/* i386's truncate64(path, lo, hi), what 32-bit libcs call for truncate. */
SYS_EXIT_HANDLER(truncate64, SYS_TRUNCATE, WATCHED(0), {
	SYS_PATH(r, ARG(0));
	r->arg2 = (ARG(2) << 32) | (__u32)ARG(1);
})

/* name_to_handle_at(dirfd, path, handle, mount_id, flags): every call; the
 * handle it returns opens the file later with no path at all. */
SYS_EXIT_HANDLER(name_to_handle_at, SYS_NAME_TO_HANDLE, true, {
	r->fd = ARG(0);
	SYS_PATH(r, ARG(1));
	r->flags = ARG(4);
})

static __always_inline bool fd_is_socket(int fd)
{
	struct file *f = fd_file((struct task_struct *)bpf_get_current_task_btf(), fd);
	if (!f)
		return false;
	return (BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT_K) == S_IFSOCK_K;
}

/* A socket dup'ed onto stdin/stdout/stderr: the shape of a reverse shell.
 * Only sockets are reported: every shell redirection and every fork+exec of
 * a Go or Python program dups onto 0-2, and those say nothing. */
#define SOCKET_ONTO_STDIO ((int)ARG(1) >= 0 && (int)ARG(1) <= 2 && fd_is_socket(ARG(0)))

SYS_HANDLERS(dup2, SYS_DUP, SOCKET_ONTO_STDIO, ANY_RESULT, {
	r->fd = ARG(0);
	r->fd2 = ARG(1);
	r->sflags |= SYS_F_SOCKET;
})

SYS_HANDLERS(dup3, SYS_DUP, SOCKET_ONTO_STDIO, ANY_RESULT, {
	r->fd = ARG(0);
	r->fd2 = ARG(1);
	r->flags = ARG(2);
	r->sflags |= SYS_F_SOCKET;
})

