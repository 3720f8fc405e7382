/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Self-protection: every signal generated for one of the sensor's threads,
 * and every bpf(2) or pidfd_getfd(2) call of another process that names one
 * of the sensor's BPF objects (below the signal program).
 *
 * signal_generate fires inside the kernel's one place where a signal is
 * queued (__send_signal_locked), whatever sent it: kill, tkill, tgkill,
 * rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_send_signal, a process group
 * or kill(-1), the SIGSTOP of a ptrace attach, the OOM killer. It runs in
 * the sender's context, before the signal is delivered, so the record is in
 * the ring buffer before a SIGSTOP takes effect (the reader sees it after
 * SIGCONT); only a SIGKILL leaves the sensor no time to read it.
 *
 * The header's task is the sender. Signals the sensor sends itself (the Go
 * runtime's SIGURG preemption, its timers) and the kernel's SIGCHLD about
 * its own children are not reported. The layout is a contract with
 * internal/runtime/decode_self.go. */
#pragma once

#include "common.h"
#include "dispatch.bpf.h" /* sys_nr, in_compat_syscall */
#include "syscalls.bpf.h" /* struct sys_rec, sys_inflight, sys_begin, sys_emit */

/* Record type of struct sig_rec (30..39: self-protection). */
#define REC_SIGNAL 30

#define SIGCHLD_K 17

struct sig_rec {
	struct rec_hdr h;     /* the sender: current when the signal was generated */
	__s32 sig;
	__s32 code;           /* si_code: SI_USER 0, SI_KERNEL 0x80, SI_QUEUE -1, SI_TKILL -6, ... */
	__s32 result;         /* TRACE_SIGNAL_*: 0 delivered, 1 ignored, 2 already pending, 3 overflow, 4 info lost */
	__u32 target_tid;     /* the sensor thread it was generated for */
	__s64 sender_syscall; /* syscall the sender was in (+SYS_COMPAT_BASE if 32-bit); -1 when unknown */
	__u32 group;          /* 1: for the whole thread group, 0: for the one thread */
	__u32 _pad;
};

/* Anchor so that BTF describes the record (TestSignalRecordLayout reads it). */
const struct sig_rec *_btf_sig_rec __attribute__((unused));

/* sender_syscall returns the number of the syscall current is in (the
 * dispatcher's sys_nr: x86-64 orig_ax, arm64 syscallno), offset by
 * SYS_COMPAT_BASE for a 32-bit call, as the dispatch table numbers them;
 * -1 where the kernel cannot say (no bpf_task_pt_regs before 5.15: a CO-RE
 * check, so there the branch is dead code and the program still loads). */
static __always_inline __s64 sender_syscall(void)
{
	if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs))
		return -1;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (!regs)
		return -1;
	long nr = sys_nr(regs);
	if (nr >= 0 && in_compat_syscall())
		nr += SYS_COMPAT_BASE;
	return nr;
}

SEC("tp_btf/signal_generate")
int BPF_PROG(kestrel_signal, int sig, struct kernel_siginfo *info, struct task_struct *task, int group, int result)
{
	if (BPF_CORE_READ(task, tgid) != self_tgid || is_self())
		return 0;
	/* SEND_SIG_NOINFO (0) means SI_USER, SEND_SIG_PRIV (1) SI_KERNEL, as
	 * the tracepoint itself decodes them. */
	__s32 code = 0x80;
	if ((unsigned long)info == 0)
		code = 0;
	else if ((unsigned long)info > 1)
		code = BPF_CORE_READ(info, si_code);
	if (sig == SIGCHLD_K && code > 0) /* CLD_*: the kernel about a child of ours */
		return 0;
	struct sig_rec rec, *r = &rec;
	fill_hdr(&r->h, REC_SIGNAL, sizeof(*r));
	r->sig = sig;
	r->code = code;
	r->result = result;
	r->target_tid = BPF_CORE_READ(task, pid);
	r->sender_syscall = sender_syscall();
	r->group = group != 0;
	r->_pad = 0;
	/* A priority record, which wakes the reader now: a stop or a kill
	 * may follow at once. */
	emit_record(r, sizeof(*r), CLASS_PRIO);
	return 0;
}

/* bpf(2) on the sensor's objects.
 *
 * A root process that finds the sensor's map, program or link ids (in
 * /proc/<sensor>/fdinfo, or with bpftool) gets a descriptor of its own
 * with BPF_*_GET_FD_BY_ID, or steals one with pidfd_getfd, and then
 * empties a filter map, detaches a link or swaps its program. Each of
 * those calls is reported here, with the caller, the command and the
 * object, whatever the result:
 *
 *   BPF_{MAP,PROG,LINK}_GET_FD_BY_ID naming one of our ids;
 *   BPF_MAP_UPDATE_ELEM, _DELETE_ELEM, _LOOKUP_AND_DELETE_ELEM, _FREEZE and
 *     the _UPDATE/_DELETE/_LOOKUP_AND_DELETE _BATCH commands on a map fd
 *     that is ours;
 *   BPF_LINK_UPDATE, BPF_LINK_DETACH on a link that is ours or runs one of
 *     our programs;
 *   BPF_PROG_ATTACH and BPF_PROG_DETACH naming one of our programs (as the
 *     program, or as the one to replace);
 *   BPF_OBJ_PIN of one of our objects, BPF_OBJ_GET whose result is one;
 *   pidfd_getfd of a descriptor of the sensor (whatever it is: the record
 *     says which BPF object it was, if one).
 *
 * "Ours" is decided on kernel facts, never on names: the descriptor's file
 * (its private_data is the bpf_map, bpf_prog or bpf_link; the command says
 * which, and where it does not, the kernel's own mark on the anon inode
 * file does) gives the object's id, which is looked up in self_ids, the
 * ids of every map, program and link of the sensor, filled by the loader
 * once everything is attached and then frozen. A link also counts as ours
 * when it runs one of our programs (a link the sensor attached again after
 * a detach has an id the frozen map does not hold).
 *
 * Such a call is sent twice: at sys_enter, before it runs, flagged
 * SYS_F_PENDING (whatever the call then does to the sensor, the attempt is
 * in the ring), and at sys_exit with its result. Both are priority
 * records. A call refused before sys_enter ran (seccomp) is reported at
 * sys_exit only, and a GET_FD_BY_ID or OBJ_GET whose result turns out to
 * be ours is decided there. BPF_PROG_LOAD is reported as before: at exit,
 * with the program type and name, whoever loads what. */

enum obj_kind { OBJ_MAP = 1, OBJ_PROG = 2, OBJ_LINK = 3 };

struct self_id {
	__u32 kind; /* enum obj_kind */
	__u32 id;
};

/* The object's name (map or program name; a link's program's name). */
struct self_name {
	char name[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct self_id);
	__type(value, struct self_name);
} self_ids SEC(".maps");

#define ANON_INODE_FS_MAGIC_K 0x09041934
#define PID_FS_MAGIC_K 0x50494446
/* The names the kernel gives the anon inode files of BPF objects and (before
 * pidfs, 6.9) of pidfds, as little-endian words of their first 8 bytes. */
#define ANON_BPF_MAP 0x0070616d2d667062ULL  /* "bpf-map\0" */
#define ANON_BPF_PROG 0x676f72702d667062ULL /* "bpf-prog" */
#define ANON_BPF_LINK 0x6b6e696c5f667062ULL /* "bpf_link" */
#define ANON_PIDFD 0x005d64666469705bULL    /* "[pidfd]\0" */

/* task_file returns the file at descriptor fd of task t, or NULL. */
static __always_inline struct file *task_file(struct task_struct *t, int fd)
{
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	if (fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* anon_name returns the first 8 bytes of the name of f's dentry as a word
 * when f is an anon inode file (the kernel's own files: BPF objects,
 * pidfds before pidfs), else 0. */
static __always_inline __u64 anon_name(struct file *f)
{
	if (BPF_CORE_READ(f, f_inode, i_sb, s_magic) != ANON_INODE_FS_MAGIC_K)
		return 0;
	__u64 w = 0;
	bpf_probe_read_kernel(&w, sizeof(w), BPF_CORE_READ(f, f_path.dentry, d_name.name));
	return w;
}

static __always_inline __u32 file_obj_kind(struct file *f)
{
	switch (anon_name(f)) {
	case ANON_BPF_MAP:
		return OBJ_MAP;
	case ANON_BPF_PROG:
		return OBJ_PROG;
	case ANON_BPF_LINK:
		return OBJ_LINK;
	}
	return 0;
}

static __always_inline bool self_obj(__u32 kind, __u32 id)
{
	struct self_id k = {.kind = kind, .id = id};
	return id && bpf_map_lookup_elem(&self_ids, &k);
}

/* obj_note fills r with the object behind f (of kind kind): its id in
 * target, the kind in fd2, its name in arg, a link's program id in arg2;
 * and says whether it is ours. */
static __always_inline bool obj_note(struct sys_rec *r, struct file *f, __u32 kind)
{
	void *pd = BPF_CORE_READ(f, private_data);
	__u32 id, prog = 0;
	long n;
	if (kind == OBJ_MAP) {
		struct bpf_map *m = pd;
		id = BPF_CORE_READ(m, id);
		n = BPF_CORE_READ_STR_INTO(&r->arg, m, name);
	} else {
		struct bpf_prog *p = pd;
		if (kind == OBJ_LINK) {
			struct bpf_link *l = pd;
			id = BPF_CORE_READ(l, id);
			p = BPF_CORE_READ(l, prog);
		}
		prog = BPF_CORE_READ(p, aux, id);
		if (kind == OBJ_PROG)
			id = prog;
		n = BPF_CORE_READ_STR_INTO(&r->arg, p, aux, name);
	}
	r->arg_len = n > 0 ? n - 1 : 0;
	r->target = id;
	r->fd2 = kind;
	if (kind == OBJ_LINK)
		r->arg2 = prog;
	return self_obj(kind, id) || (kind == OBJ_LINK && self_obj(OBJ_PROG, prog));
}

/* fd_obj_note is obj_note for the caller's descriptor fd; kind 0: find it
 * out from the file. */
static __always_inline bool fd_obj_note(struct sys_rec *r, int fd, __u32 kind)
{
	struct file *f = task_file(bpf_get_current_task_btf(), fd);
	if (!f)
		return false;
	if (!kind)
		kind = file_obj_kind(f);
	if (!kind)
		return false;
	r->fd = fd;
	return obj_note(r, f, kind);
}

/* id_obj_note notes an object named by id, from self_ids. */
static __always_inline bool id_obj_note(struct sys_rec *r, __u32 kind, __u32 id)
{
	struct self_id k = {.kind = kind, .id = id};
	struct self_name *v = bpf_map_lookup_elem(&self_ids, &k);
	r->target = id;
	r->fd2 = kind;
	if (!v)
		return false;
	long n = bpf_probe_read_kernel_str(r->arg, sizeof(v->name), v->name);
	r->arg_len = n > 0 ? n - 1 : 0;
	return true;
}

#define BPF_F_REPLACE_K (1U << 2)

static __always_inline __u32 attr_u32(const void *p)
{
	__u32 v = 0;
	bpf_probe_read_user(&v, sizeof(v), p);
	return v;
}

/* bpf_cmd_watched: the commands reported (BPF_PROG_LOAD for anyone, the
 * others on our objects). */
static __always_inline bool bpf_cmd_watched(__u64 cmd)
{
	switch (cmd) {
	case BPF_PROG_LOAD:
	case BPF_MAP_UPDATE_ELEM:
	case BPF_MAP_DELETE_ELEM:
	case BPF_MAP_LOOKUP_AND_DELETE_ELEM:
	case BPF_MAP_FREEZE:
	case BPF_MAP_LOOKUP_AND_DELETE_BATCH:
	case BPF_MAP_UPDATE_BATCH:
	case BPF_MAP_DELETE_BATCH:
	case BPF_PROG_ATTACH:
	case BPF_PROG_DETACH:
	case BPF_LINK_UPDATE:
	case BPF_LINK_DETACH:
	case BPF_OBJ_PIN:
	case BPF_OBJ_GET:
	case BPF_MAP_GET_FD_BY_ID:
	case BPF_PROG_GET_FD_BY_ID:
	case BPF_LINK_GET_FD_BY_ID:
		return true;
	}
	return false;
}

/* bpf_call_note fills r for a bpf(2) call cmd with attributes attr and says
 * whether it is reported. result is the call's return value at sys_exit, or
 * -1 at sys_enter: a descriptor it returned (GET_FD_BY_ID, OBJ_GET) is
 * looked at too. */
static __always_inline bool bpf_call_note(struct sys_rec *r, __u64 cmd, const union bpf_attr *attr, long result)
{
	r->flags = cmd;
	__u32 kind = 0;
	switch (cmd) {
	case BPF_PROG_LOAD: {
		__u32 ptype = 0;
		bpf_probe_read_user(&ptype, sizeof(ptype), &attr->prog_type);
		r->arg2 = ptype;
		r->arg_len = user_str(r->arg, sizeof(attr->prog_name) + 1, attr->prog_name);
		return true;
	}
	case BPF_MAP_UPDATE_ELEM:
	case BPF_MAP_DELETE_ELEM:
	case BPF_MAP_LOOKUP_AND_DELETE_ELEM:
	case BPF_MAP_FREEZE:
		return fd_obj_note(r, attr_u32(&attr->map_fd), OBJ_MAP);
	case BPF_MAP_LOOKUP_AND_DELETE_BATCH:
	case BPF_MAP_UPDATE_BATCH:
	case BPF_MAP_DELETE_BATCH:
		return fd_obj_note(r, attr_u32(&attr->batch.map_fd), OBJ_MAP);
	case BPF_PROG_ATTACH:
		if ((attr_u32(&attr->attach_flags) & BPF_F_REPLACE_K) &&
		    fd_obj_note(r, attr_u32(&attr->replace_bpf_fd), OBJ_PROG))
			return true;
		return fd_obj_note(r, attr_u32(&attr->attach_bpf_fd), OBJ_PROG);
	case BPF_PROG_DETACH:
		return fd_obj_note(r, attr_u32(&attr->attach_bpf_fd), OBJ_PROG);
	case BPF_LINK_UPDATE:
		return fd_obj_note(r, attr_u32(&attr->link_update.link_fd), OBJ_LINK);
	case BPF_LINK_DETACH:
		return fd_obj_note(r, attr_u32(&attr->link_detach.link_fd), OBJ_LINK);
	case BPF_OBJ_PIN:
		return fd_obj_note(r, attr_u32(&attr->bpf_fd), 0);
	case BPF_OBJ_GET:
		r->fd = -1;
		return result >= 0 && fd_obj_note(r, result, 0);
	case BPF_MAP_GET_FD_BY_ID:
		kind = OBJ_MAP;
		break;
	case BPF_PROG_GET_FD_BY_ID:
		kind = OBJ_PROG;
		break;
	case BPF_LINK_GET_FD_BY_ID:
		kind = OBJ_LINK;
		break;
	default:
		return false;
	}
	/* GET_FD_BY_ID: the id at enter; at exit the descriptor it returned. */
	r->fd = -1;
	if (id_obj_note(r, kind, attr_u32(&attr->start_id)))
		return true;
	return result >= 0 && fd_obj_note(r, result, kind);
}

/* bpf_pending sends a copy of the staged record r before the call runs. */
static __always_inline void bpf_pending(struct sys_rec *r)
{
	r->sflags |= SYS_F_PENDING;
	r->ret = 0;
	emit_record(r, sizeof(*r), CLASS_PRIO);
	r->sflags &= ~SYS_F_PENDING;
}

SYS_ENTER(bpf)
{
	if (is_self())
		return 0;
	struct sys_args args;
	sys_args_get(regs, &args);
	__u64 cmd = args.a[0];
	if (!bpf_cmd_watched(cmd))
		return 0;
	struct sys_inflight *st =
		bpf_task_storage_get(&sys_inflight, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		count_drop(DROP_INFLIGHT);
		return 0;
	}
	sys_begin(&st->r, SYS_BPF, &args, 0);
	if (!bpf_call_note(&st->r, cmd, (const void *)args.a[1], -1))
		return 0;
	st->pending = SYS_BPF + 1;
	if (cmd != BPF_PROG_LOAD) {
		st->r.sflags |= SYS_F_SELF_OBJ;
		bpf_pending(&st->r);
	}
	return 0;
}

SYS_EXIT(bpf)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct sys_inflight *st = bpf_task_storage_get(&sys_inflight, t, 0, 0);
	if (st && st->pending == SYS_BPF + 1) {
		st->pending = 0;
		sys_emit(&st->r, ret);
		return 0;
	}
	if (is_self())
		return 0;
	/* Nothing staged: refused before sys_enter ran, or a descriptor that
	 * became ours meanwhile, or a result that is ours. */
	struct sys_args args;
	sys_args_get(regs, &args);
	__u64 cmd = args.a[0];
	if (cmd == BPF_PROG_LOAD ? !refused_errno(ret) : !bpf_cmd_watched(cmd))
		return 0;
	st = bpf_task_storage_get(&sys_inflight, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		count_drop(DROP_INFLIGHT);
		return 0;
	}
	sys_begin(&st->r, SYS_BPF, &args, refused_errno(ret) ? SYS_F_EXIT_ONLY : 0);
	if (!bpf_call_note(&st->r, cmd, (const void *)args.a[1], ret))
		return 0;
	if (cmd != BPF_PROG_LOAD)
		st->r.sflags |= SYS_F_SELF_OBJ;
	sys_emit(&st->r, ret);
	return 0;
}

/* pidfd_task returns the task the pidfd f refers to, or NULL when f is not
 * a pidfd or the process is gone. A pidfd is a file of pidfs (6.9+), whose
 * inode's i_private is the struct pid, or before that an anon inode file
 * the kernel named "[pidfd]", whose private_data is. The pid's first task
 * (PIDTYPE_PID) is the thread it names. */
static __always_inline struct task_struct *pidfd_task(struct file *f)
{
	struct pid *pid;
	if (BPF_CORE_READ(f, f_inode, i_sb, s_magic) == PID_FS_MAGIC_K)
		pid = BPF_CORE_READ(f, f_inode, i_private);
	else if (anon_name(f) == ANON_PIDFD)
		pid = BPF_CORE_READ(f, private_data);
	else
		return NULL;
	struct hlist_node *first = BPF_CORE_READ(pid, tasks[PIDTYPE_PID].first);
	if (!first)
		return NULL;
	return (void *)first - bpf_core_field_offset(struct task_struct, pid_links);
}

/* pidfd_getfd(pidfd, targetfd, flags) of one of the sensor's descriptors:
 * target is the sensor's pid, fd the descriptor, flags the flags; fd2 and
 * arg are the kind and name of the BPF object the descriptor is (fd2 0
 * when it is none) and arg2 its id. */
static __always_inline bool getfd_note(struct sys_rec *r, struct sys_args *a)
{
	struct file *f = task_file(bpf_get_current_task_btf(), (int)a->a[0]);
	if (!f)
		return false;
	struct task_struct *task = pidfd_task(f);
	if (!task || BPF_CORE_READ(task, tgid) != self_tgid)
		return false;
	__u32 tgid = self_tgid;
	r->flags = a->a[2];
	r->fd = (int)a->a[1];
	struct file *tf = task_file(task, r->fd);
	__u32 kind = tf ? file_obj_kind(tf) : 0;
	if (kind) {
		obj_note(r, tf, kind);
		r->arg2 = r->target; /* the object's id; target is the sensor */
	}
	r->target = tgid;
	r->sflags |= SYS_F_SELF_OBJ;
	return true;
}

SYS_ENTER(pidfd_getfd)
{
	if (is_self())
		return 0;
	struct sys_args args;
	sys_args_get(regs, &args);
	struct sys_inflight *st =
		bpf_task_storage_get(&sys_inflight, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		count_drop(DROP_INFLIGHT);
		return 0;
	}
	sys_begin(&st->r, SYS_PIDFD_GETFD, &args, 0);
	if (!getfd_note(&st->r, &args))
		return 0;
	st->pending = SYS_PIDFD_GETFD + 1;
	bpf_pending(&st->r);
	return 0;
}

SYS_EXIT(pidfd_getfd)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct sys_inflight *st = bpf_task_storage_get(&sys_inflight, t, 0, 0);
	if (!st || st->pending != SYS_PIDFD_GETFD + 1) {
		if (is_self())
			return 0;
		struct sys_args args;
		sys_args_get(regs, &args);
		st = bpf_task_storage_get(&sys_inflight, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!st) {
			count_drop(DROP_INFLIGHT);
			return 0;
		}
		sys_begin(&st->r, SYS_PIDFD_GETFD, &args, refused_errno(ret) ? SYS_F_EXIT_ONLY : 0);
		if (!getfd_note(&st->r, &args))
			return 0;
	}
	st->pending = 0;
	sys_emit(&st->r, ret);
	return 0;
}
