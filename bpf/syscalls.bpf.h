/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Escape-primitive syscalls (REC_SYSCALL): mount, umount2, unshare, setns,
 * ptrace, process_vm_readv/writev, init/finit/delete_module, bpf
 * (BPF_PROG_LOAD), memfd_create, pivot_root, chroot, mknod(at), the rename,
 * unlink, link and symlink families (watched paths only, by the open
 * filter), dup2/dup3 of a socket onto fds 0-2, and kill/tgkill of the
 * sensor.
 *
 * sys_enter decides and fills the record (arguments, strings); it is kept
 * per thread in sys_stash until sys_exit adds the return value and sends it,
 * so that failed attempts are reported with their -errno. Syscalls that are
 * common on any host (unlink, rename, dup2, kill) are filtered on enter, and
 * the exit programs skip their lookup while nothing is pending. */
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
	SYS_KILL = 20,
	SYS_CALL_MAX,
};

/* sys_rec.sflags */
#define SYS_F_SOCKET (1 << 0)     /* dup: the old fd is a socket */
#define SYS_F_PATH_FD (1 << 1)    /* path was resolved from an fd (finit_module) */
#define SYS_F_PATH_TRUNC (1 << 2)

struct sys_rec {
	struct rec_hdr h;
	__s64 ret;
	__u64 flags;      /* clone/mount/umount flags, nstype, ptrace request, bpf cmd, signal, mknod mode */
	__u64 arg2;       /* bpf: prog type; mknod: dev; rename/link: flags */
	__u32 target;     /* pid of ptrace, process_vm_*, kill */
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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sys_rec);
} sys_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct sys_rec);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} sys_stash SEC(".maps");

/* Stashed syscalls not yet exited (see open_pending). */
__u64 sys_pending = 0;

static __always_inline struct sys_rec *sys_begin(__u16 call)
{
	__u32 zero = 0;
	if (is_self())
		return NULL;
	struct sys_rec *r = bpf_map_lookup_elem(&sys_scratch, &zero);
	if (!r)
		return NULL;
	fill_hdr(&r->h, REC_SYSCALL, sizeof(*r));
	r->ret = 0;
	r->flags = 0;
	r->arg2 = 0;
	r->target = 0;
	r->fd = -1;
	r->fd2 = -1;
	r->ns_inode = 0;
	r->call = call;
	r->sflags = 0;
	r->path_len = 0;
	r->path2_len = 0;
	r->arg_len = 0;
	r->_pad = 0;
	r->_pad2 = 0;
	r->path[0] = 0;
	r->path2[0] = 0;
	r->arg[0] = 0;
	return r;
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

#define SYS_PATH(r, p) ((r)->path_len = user_str((r)->path, RAW_SLOT, (const void *)(p)))
#define SYS_PATH2(r, p) ((r)->path2_len = user_str((r)->path2, RAW_SLOT, (const void *)(p)))
#define SYS_ARG(r, p) ((r)->arg_len = user_str((r)->arg, SYS_ARG_SLOT, (const void *)(p)))

static __always_inline void sys_stash_rec(struct sys_rec *r)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&sys_stash, &id, r, BPF_ANY) < 0) {
		count_drop(DROP_STASH_FULL);
		return;
	}
	__sync_fetch_and_add(&sys_pending, 1);
}

static __always_inline void sys_finish(long ret)
{
	if (sys_pending == 0)
		return;
	__u64 id = bpf_get_current_pid_tgid();
	struct sys_rec *r = bpf_map_lookup_elem(&sys_stash, &id);
	if (!r)
		return;
	__sync_fetch_and_add(&sys_pending, -1);
	r->ret = ret;
	if (bpf_ringbuf_output(&events, r, sizeof(*r), submit_flags()) < 0)
		count_drop(DROP_RINGBUF_RESERVE);
	bpf_map_delete_elem(&sys_stash, &id);
}

#define NSFS_MAGIC_K 0x6e736673
#define S_IFMT_K 00170000
#define S_IFSOCK_K 0140000

/* Defines the enter program kestrel_NAME on sys_enter_SC: when the
 * expression WANT (ctx in scope) holds, it fills a record with BODY (r and
 * ctx in scope) and stashes it; and the exit program kestrel_NAME_x. The
 * filter runs first, so a syscall that is not reported costs only WANT. */
#define SYS_PROGS(sc, name, call, want, body)                               \
	SEC("tracepoint/syscalls/sys_enter_" #sc)                          \
	int kestrel_##name(struct trace_event_raw_sys_enter *ctx)          \
	{                                                                  \
		if (!(want))                                               \
			return 0;                                          \
		struct sys_rec *r = sys_begin(call);                       \
		if (!r)                                                    \
			return 0;                                          \
		body;                                                      \
		sys_stash_rec(r);                                          \
		return 0;                                                  \
	}                                                                  \
	SEC("tracepoint/syscalls/sys_exit_" #sc)                           \
	int kestrel_##name##_x(struct trace_event_raw_sys_exit *ctx)       \
	{                                                                  \
		sys_finish(ctx->ret);                                      \
		return 0;                                                  \
	}

#define ARG(i) (ctx->args[i])
#define AT_FDCWD_K -100
/* WATCHED(i) for a path argument relative to the cwd, WATCHED_AT(d, i) for
 * one relative to the dirfd in argument d. */
#define WATCHED(i) watched((const char *)ARG(i), AT_FDCWD_K)
#define WATCHED_AT(d, i) watched((const char *)ARG(i), (int)ARG(d))

SYS_PROGS(mount, mount, SYS_MOUNT, true, {
	SYS_PATH(r, ARG(0));
	SYS_PATH2(r, ARG(1));
	SYS_ARG(r, ARG(2));
	r->flags = ARG(3);
})

SYS_PROGS(umount, umount, SYS_UMOUNT, true, {
	SYS_PATH(r, ARG(0));
	r->flags = ARG(1);
})

SYS_PROGS(unshare, unshare, SYS_UNSHARE, true, { r->flags = ARG(0); })

SYS_PROGS(setns, setns, SYS_SETNS, true, {
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

SYS_PROGS(ptrace, ptrace, SYS_PTRACE, ptrace_reported(ARG(0)), {
	r->flags = ARG(0);
	r->target = ARG(1);
})

SYS_PROGS(process_vm_readv, process_vm_readv, SYS_VM_READV, true, { r->target = ARG(0); })
SYS_PROGS(process_vm_writev, process_vm_writev, SYS_VM_WRITEV, true, { r->target = ARG(0); })

SYS_PROGS(init_module, init_module, SYS_INIT_MODULE, true, {
	r->arg2 = ARG(1); /* image length */
	SYS_ARG(r, ARG(2));
})

SYS_PROGS(finit_module, finit_module, SYS_FINIT_MODULE, true, {
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

SYS_PROGS(delete_module, delete_module, SYS_DELETE_MODULE, true, {
	SYS_ARG(r, ARG(0));
	r->flags = ARG(1);
})

SYS_PROGS(bpf, bpf, SYS_BPF, ARG(0) == 5 /* BPF_PROG_LOAD */, {
	r->flags = ARG(0);
	const union bpf_attr *attr = (const void *)ARG(1);
	__u32 ptype = 0;
	bpf_probe_read_user(&ptype, sizeof(ptype), &attr->prog_type);
	r->arg2 = ptype;
	r->arg_len = user_str(r->arg, sizeof(attr->prog_name) + 1, attr->prog_name);
})

SYS_PROGS(memfd_create, memfd_create, SYS_MEMFD_CREATE, true, {
	SYS_ARG(r, ARG(0));
	r->flags = ARG(1);
})

SYS_PROGS(pivot_root, pivot_root, SYS_PIVOT_ROOT, true, {
	SYS_PATH(r, ARG(0));
	SYS_PATH2(r, ARG(1));
})

SYS_PROGS(chroot, chroot, SYS_CHROOT, true, { SYS_PATH(r, ARG(0)); })

SYS_PROGS(mknod, mknod, SYS_MKNOD, true, {
	SYS_PATH(r, ARG(0));
	r->flags = ARG(1);
	r->arg2 = ARG(2);
})

SYS_PROGS(mknodat, mknodat, SYS_MKNOD, true, {
	r->fd = ARG(0);
	SYS_PATH(r, ARG(1));
	r->flags = ARG(2);
	r->arg2 = ARG(3);
})

/* Path families: reported only when a path is watched by the open filter. */
SYS_PROGS(unlink, unlink, SYS_UNLINK, WATCHED(0), { SYS_PATH(r, ARG(0)); })

SYS_PROGS(unlinkat, unlinkat, SYS_UNLINK, WATCHED_AT(0, 1), {
	r->fd = ARG(0);
	SYS_PATH(r, ARG(1));
	r->flags = ARG(2);
})

SYS_PROGS(rename, rename, SYS_RENAME, WATCHED(0) || WATCHED(1), {
	SYS_PATH(r, ARG(0));
	SYS_PATH2(r, ARG(1));
})

SYS_PROGS(renameat, renameat, SYS_RENAME, WATCHED_AT(0, 1) || WATCHED_AT(2, 3), {
	r->fd = ARG(0);
	SYS_PATH(r, ARG(1));
	r->fd2 = ARG(2);
	SYS_PATH2(r, ARG(3));
})

SYS_PROGS(renameat2, renameat2, SYS_RENAME, WATCHED_AT(0, 1) || WATCHED_AT(2, 3), {
	r->fd = ARG(0);
	SYS_PATH(r, ARG(1));
	r->fd2 = ARG(2);
	SYS_PATH2(r, ARG(3));
	r->arg2 = ARG(4);
})

SYS_PROGS(link, link, SYS_LINK, WATCHED(0) || WATCHED(1), {
	SYS_PATH(r, ARG(0));
	SYS_PATH2(r, ARG(1));
})

SYS_PROGS(linkat, linkat, SYS_LINK, WATCHED_AT(0, 1) || WATCHED_AT(2, 3), {
	r->fd = ARG(0);
	SYS_PATH(r, ARG(1));
	r->fd2 = ARG(2);
	SYS_PATH2(r, ARG(3));
	r->arg2 = ARG(4);
})

/* symlink(target, linkpath): the target is any string; a link pointing at or
 * placed on a watched path is reported. */
SYS_PROGS(symlink, symlink, SYS_SYMLINK, WATCHED(0) || WATCHED(1), {
	SYS_PATH(r, ARG(0));
	SYS_PATH2(r, ARG(1));
})

SYS_PROGS(symlinkat, symlinkat, SYS_SYMLINK, WATCHED(0) || WATCHED_AT(1, 2), {
	SYS_PATH(r, ARG(0));
	r->fd2 = ARG(1);
	SYS_PATH2(r, ARG(2));
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
#define SOCKET_ONTO_STDIO ((long)ARG(1) >= 0 && (long)ARG(1) <= 2 && fd_is_socket(ARG(0)))

SYS_PROGS(dup2, dup2, SYS_DUP, SOCKET_ONTO_STDIO, {
	r->fd = ARG(0);
	r->fd2 = ARG(1);
	r->sflags |= SYS_F_SOCKET;
})

SYS_PROGS(dup3, dup3, SYS_DUP, SOCKET_ONTO_STDIO, {
	r->fd = ARG(0);
	r->fd2 = ARG(1);
	r->flags = ARG(2);
	r->sflags |= SYS_F_SOCKET;
})

/* Signals to the sensor (self-protection); signal 0 only probes. */
SYS_PROGS(kill, kill, SYS_KILL, (__u32)ARG(0) == self_tgid && ARG(1) != 0, {
	r->target = ARG(0);
	r->flags = ARG(1);
})

SYS_PROGS(tgkill, tgkill, SYS_KILL, (__u32)ARG(0) == self_tgid && ARG(2) != 0, {
	r->target = ARG(0);
	r->flags = ARG(2);
})
