/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Process lifecycle: exec, fork (processes, not threads) and exit (the last
 * thread of a group). tp_btf gives typed task pointers with no tracefs, and
 * their fields are read with direct loads, which the verifier turns into
 * fault-guarded loads: no helper call per field.
 * Exec and fork first send the task's cgroup path when it is not yet known
 * (cgroup.bpf.h), so that user space never has to guess its container. */
#pragma once

#include "path.h"
#include "cgroup.bpf.h"

/* Capture table of the environment filter, set by the loader from
 * internal/runtime/env.go: env_first2 has a bit for every first two bytes
 * of a pattern (a cheap rejection of most names), env_pats holds the
 * patterns, "NAME=" for an exact name and "PREFIX" for a prefix, as the
 * little-endian words of their first ENV_PAT_LEN bytes and masks of their
 * length, and env_class their ENV_C_* bits. An entry is kept when its
 * first bytes equal a pattern's. */
#define ENV_PATS 32
#define ENV_PAT_LEN 24
#define ENV_PAT_WORDS (ENV_PAT_LEN / 8)

/* Classes of a pattern. A kept entry is cut at ENV_ENTRY_SHORT - 1 bytes,
 * which hold what user space keeps of a value, unless ENV_C_WHOLE says
 * that user space may need the whole value (a secret it hashes). Only
 * ENV_C_LOADER entries (the dynamic loader's variables) may use the last
 * ENV_LOADER_RESERVE bytes of the record: many long entries of other names
 * cannot crowd them out. */
#define ENV_C_WHOLE (1 << 0)
#define ENV_C_LOADER (1 << 1)
#define ENV_ENTRY_SHORT 384
#define ENV_LOADER_RESERVE 1024

struct env_pat {
	__u64 w[ENV_PAT_WORDS];
	__u64 m[ENV_PAT_WORDS];
};

volatile const __u8 env_first2[65536 / 8] = {};
volatile const struct env_pat env_pats[ENV_PATS] = {};
volatile const __u8 env_class[ENV_PATS] = {};
volatile const __u32 env_npats = 0;

/* Scanning the environment. The kernel laid out the new image's stack
 * (create_elf_tables) as argc, the argv pointers, NULL, the envp pointers,
 * NULL, at mm->start_stack, pointing into the block of strings that
 * mm->env_start..env_end spans. The scan reads the envp pointers (up to
 * ENV_PTRS) and the block (up to ENV_WIN bytes) once each, so that an entry
 * costs a few loads: its length is the distance to the next pointer, and
 * its name is compared in the copy of the block. Only a kept entry, and the
 * name of one past ENV_WIN, costs a read. Where the pointers do not lead to
 * the block (an image that is not ELF; whatever the pointers could not
 * reach), entries are read one by one with a string read each instead, up
 * to ENV_SCAN_MAX entries in all; more set EXEC_F_ENV_TRUNC. */
#define ENV_PTRS 1024
#define ENV_WIN 16384
#define ENV_SCAN_MAX 4096
/* A string is at most MAX_ARG_STRLEN (32 pages) long: the end of a long
 * entry is found in at most this many reads of ENV_ENTRY_MAX bytes. */
#define ENV_SKIP_READS 72

/* Masks that bound the variable offsets of data[] for the verifier: every
 * masked write lands in struct exec_scratch. */
#define EXEC_OFF_MASK (8192 - 1)

struct exec_scratch {
	struct exec_rec r;
	char spill[8192 + ENV_ENTRY_MAX + ENV_PAT_LEN - EXEC_DATA]; /* absorbs masked writes past data[] */
	char junk[ENV_ENTRY_MAX]; /* the rest of a long entry, read to find its end; a name */
};

/* The envp pointers and the block, in a map of their own: a per-CPU value
 * is at most 32 KiB. */
struct env_scratch {
	__u64 envp[ENV_PTRS];            /* the envp pointers (u32 for a 32-bit image) */
	char win[ENV_WIN + ENV_PAT_LEN]; /* the first ENV_WIN bytes of the block */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_scratch);
} exec_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct env_scratch);
} env_scratch SEC(".maps");

static __always_inline struct exec_scratch *exec_buf(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&exec_scratch, &zero);
}

static __always_inline struct env_scratch *env_buf(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&env_scratch, &zero);
}

static __always_inline __u32 read_user_block(char *dst, __u32 max, unsigned long start, unsigned long end, bool *trunc)
{
	__u64 len = end > start ? end - start : 0;
	*trunc = false;
	if (len > max) {
		len = max;
		*trunc = true;
	}
	if (len == 0)
		return 0;
	if (bpf_probe_read_user(dst, len, (void *)start) < 0)
		return 0;
	return len;
}

/* env_match returns 1 + the ENV_C_* bits of the pattern that the entry at
 * e (at least ENV_PAT_LEN readable bytes, NUL-terminated) matches, or 0. A
 * pattern has no NUL, so it never matches across the end of a shorter
 * entry. */
static __always_inline __u32 env_match(const char *e)
{
	__u32 first2 = (__u8)e[0] | (__u32)(__u8)e[1] << 8;
	if (!(env_first2[first2 >> 3] & (1 << (first2 & 7))))
		return 0;
	__u64 w0 = *(const __u64 *)e, w1 = *(const __u64 *)(e + 8), w2 = *(const __u64 *)(e + 16);
	__u32 n = env_npats;
	for (int i = 0; i < ENV_PATS; i++) {
		if (i >= n)
			break;
		const volatile struct env_pat *p = &env_pats[i];
		if ((w0 & p->m[0]) == p->w[0] && (w1 & p->m[1]) == p->w[1] && (w2 & p->m[2]) == p->w[2])
			return 1 + env_class[i];
	}
	return 0;
}

struct env_scan {
	unsigned long p, end;   /* the next entry, the end of the block */
	unsigned long start;    /* the start of the block (env_start) */
	__u32 base;             /* offset in data[] of the first kept entry */
	__u32 used;             /* bytes of kept entries */
	__u32 flags;            /* EXEC_F_ENV_TRUNC when something was not looked at or kept */
	__u32 n;                /* entries with a pointer and a length */
	__u32 envc;             /* entries the kernel counted */
	__u32 win;              /* bytes of the block in win[] */
	bool compat;            /* 4-byte pointers */
};

/* env_room says whether a kept entry of len bytes (class from env_match,
 * minus one) fits, shortening it to what user space keeps of it; it marks
 * what cannot be kept whole. */
static __always_inline bool env_room(struct env_scan *c, __u32 class, __u32 *len, bool *cut)
{
	if (!(class & ENV_C_WHOLE) && *len > ENV_ENTRY_SHORT - 1) {
		*len = ENV_ENTRY_SHORT - 1;
		*cut = true;
	}
	__u32 room = class & ENV_C_LOADER ? ENV_KEPT_MAX : ENV_KEPT_MAX - ENV_LOADER_RESERVE;
	if (c->used + 2 + *len > room) {
		c->flags |= EXEC_F_ENV_TRUNC; /* no room: a shorter one may still fit */
		return false;
	}
	if (*cut)
		c->flags |= EXEC_F_ENV_TRUNC;
	return true;
}

/* env_put writes the header of a kept entry at hdr and counts it. */
static __always_inline void env_put(struct exec_scratch *s, struct env_scan *c, __u32 hdr, __u32 len, bool cut)
{
	__u16 h = len | (cut ? ENV_CUT : 0);
	s->r.data[hdr & EXEC_OFF_MASK] = h;
	s->r.data[(hdr + 1) & EXEC_OFF_MASK] = h >> 8;
	c->used += 2 + len;
}

/* env_ptr_step looks at entry i through the pointers. bpf_loop callback;
 * returns 1 to stop (c->p is then where the string reads go on). */
static long env_ptr_step(__u64 i, void *arg)
{
	struct env_scan *c = arg;
	if (i >= c->n)
		return 1;
	struct exec_scratch *s = exec_buf();
	struct env_scratch *v = env_buf();
	if (!s || !v)
		return 1;
	unsigned long p, next;
	if (c->compat) {
		const __u32 *p32 = (const __u32 *)v->envp;
		p = p32[i & (2 * ENV_PTRS - 1)];
		next = p32[(i + 1) & (2 * ENV_PTRS - 1)];
	} else {
		p = v->envp[i & (ENV_PTRS - 1)];
		next = v->envp[(i + 1) & (ENV_PTRS - 1)];
	}
	if (next == 0 && i + 1 == c->envc)
		next = c->end; /* the last entry: the NULL after it */
	/* Pointers that do not walk the block in order: read strings instead. */
	if (p != c->p || next <= p || next > c->end)
		return 1;
	c->p = next;
	__u32 len = next - p - 1; /* the NUL excluded */
	__u64 off = p - c->start;
	const char *name;
	if (off + len < c->win) { /* the entry and its NUL are in win[] */
		name = &v->win[off & (ENV_WIN - 1)];
	} else {
		/* Its name, up to its NUL: the last entry may end a few bytes
		 * short of the top of the stack. */
		__u32 n = len + 1 < ENV_PAT_LEN ? len + 1 : ENV_PAT_LEN;
		barrier_var(n);
		if (bpf_probe_read_user(s->junk, n & 31 /* ENV_PAT_LEN <= 31 */, (void *)p) < 0) {
			c->flags |= EXEC_F_ENV_TRUNC;
			return 0;
		}
		name = s->junk;
	}
	__u32 class = env_match(name);
	if (!class--)
		return 0;
	bool cut = len > ENV_ENTRY_MAX - 1;
	if (cut)
		len = ENV_ENTRY_MAX - 1;
	if (!env_room(c, class, &len, &cut))
		return 0;
	__u32 hdr = (c->base + c->used) & EXEC_OFF_MASK;
	barrier_var(len); /* keep the mask: the verifier needs it */
	__u32 size = len & (ENV_ENTRY_MAX - 1);
	if (size == 0 || bpf_probe_read_user(&s->r.data[(hdr + 2) & EXEC_OFF_MASK], size, (void *)p) < 0) {
		c->flags |= EXEC_F_ENV_TRUNC;
		return 0;
	}
	env_put(s, c, hdr, len, cut);
	return 0;
}

/* The end of an entry longer than one read: env_skip_step reads on from q
 * until a read ends before its buffer does. bpf_loop callback, so that the
 * verifier walks one read, not ENV_SKIP_READS of them per entry. */
struct env_skip {
	unsigned long q; /* the next byte to read; after the NUL when done */
	bool cut;        /* the entry is longer than ENV_ENTRY_MAX - 1 bytes */
	bool done;       /* its end was found */
};

static long env_skip_step(__u64 i, void *arg)
{
	struct env_skip *k = arg;
	struct exec_scratch *s = exec_buf();
	if (!s)
		return 1;
	long m = bpf_probe_read_user_str(s->junk, sizeof(s->junk), (void *)k->q);
	if (m <= 0)
		return 1;
	if (m < ENV_ENTRY_MAX) {
		k->q += m;
		k->cut = k->cut || i > 0 || m > 1;
		k->done = true;
		return 1;
	}
	k->q += ENV_ENTRY_MAX - 1;
	return 0;
}

/* env_str_step looks at the entry at c->p with a string read: it reads it
 * in place after the kept entries, and keeps it there when env_match says
 * so. bpf_loop callback; returns 1 to stop. */
static long env_str_step(__u64 i, void *arg)
{
	struct env_scan *c = arg;
	if (c->p >= c->end)
		return 1;
	struct exec_scratch *s = exec_buf();
	if (!s)
		return 1;
	__u32 hdr = (c->base + c->used) & EXEC_OFF_MASK;
	char *e = &s->r.data[(hdr + 2) & EXEC_OFF_MASK];
	long n = bpf_probe_read_user_str(e, ENV_ENTRY_MAX, (void *)c->p);
	if (n <= 0) {
		c->flags |= EXEC_F_ENV_TRUNC; /* unreadable: nothing after it is known */
		return 1;
	}
	bool cut = false;
	if (n == ENV_ENTRY_MAX) { /* maybe longer: find its end */
		struct env_skip k = { .q = c->p + ENV_ENTRY_MAX - 1 };
		bpf_loop(ENV_SKIP_READS, env_skip_step, &k, 0);
		if (!k.done) {
			c->flags |= EXEC_F_ENV_TRUNC;
			return 1;
		}
		c->p = k.q;
		cut = k.cut;
	} else {
		c->p += n;
	}
	__u32 class = env_match(e);
	if (!class--)
		return 0;
	__u32 len = n - 1;
	if (env_room(c, class, &len, &cut))
		env_put(s, c, hdr, len, cut);
	return 0;
}

/* env_pointers reads the envp pointers and the block into v and sets c->n
 * to the entries they describe, or to 0 where they do not describe the
 * block: then every entry is read as a string. */
static __always_inline void env_pointers(struct env_scratch *s, struct env_scan *c, struct mm_struct *mm,
					 struct linux_binprm *bprm)
{
	__u32 envc = bprm->envc, argc = bprm->argc;
	unsigned long sp = mm->start_stack;
	c->n = 0;
	c->envc = envc;
	if (envc == 0 || envc > (1 << 20) || argc > (1 << 20))
		return;
	/* The entries' pointers and the one after (NULL after the last). */
	__u32 n = envc + 1 > ENV_PTRS ? ENV_PTRS : envc + 1;
	__u32 size = n * 8;
	if (size > sizeof(s->envp))
		size = sizeof(s->envp);
	barrier_var(size);
	if (bpf_probe_read_user(s->envp, size, (void *)(sp + 8 * ((unsigned long)argc + 2))) < 0 || s->envp[0] != c->start) {
		/* A 32-bit image: 4-byte pointers. */
		size = n * 4;
		if (size > sizeof(s->envp))
			size = sizeof(s->envp);
		barrier_var(size);
		if (bpf_probe_read_user(s->envp, size, (void *)(sp + 4 * ((unsigned long)argc + 2))) < 0 ||
		    *(__u32 *)s->envp != c->start)
			return;
		c->compat = true;
	}
	c->n = n - 1;
	__u64 blen = c->end - c->start;
	__u32 win = blen > ENV_WIN ? ENV_WIN : blen;
	barrier_var(win);
	if (win == 0 || bpf_probe_read_user(s->win, win, (void *)c->start) < 0)
		win = 0;
	c->win = win;
}

/* pid_ns_inum is the inode of t's pid namespace: that of its pid at the
 * deepest level, as task_active_pid_ns() finds it. */
static __always_inline __u32 pid_ns_inum(struct task_struct *t)
{
	struct pid *p = t->thread_pid;
	unsigned int level = p->level;
	__u64 a = (__u64)p + bpf_core_field_offset(struct pid, numbers) + (__u64)(level & 63) * sizeof(struct upid);
	struct upid *u = KCAST(struct upid, a);
	return u->ns->ns.inum;
}

/* The exec record: direct loads from the tracepoint's task and binprm;
 * helpers read only the strings. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(kestrel_exec, struct task_struct *t, pid_t old_pid, struct linux_binprm *bprm)
{
	bool trunc;

	if (is_self())
		return 0;
	learn_task_cgroup(t);
	struct exec_scratch *s = exec_buf();
	if (!s)
		return 0;
	struct exec_rec *r = &s->r;
	fill_hdr(&r->h, REC_EXEC, 0);
	__u32 flags = 0;
	r->ppid = t->real_parent->tgid;
	const struct cred *cred = t->cred;
	r->cap_eff = cred->cap_effective.val;
	r->cap_prm = cred->cap_permitted.val;
	r->start_ns = t->group_leader->start_boottime;
	struct nsproxy *nsp = t->nsproxy;
	r->ns[NS_MNT] = nsp->mnt_ns->ns.inum;
	r->ns[NS_PID] = pid_ns_inum(t);
	r->ns[NS_NET] = nsp->net_ns->ns.inum;
	r->ns[NS_USER] = cred->user_ns->ns.inum;
	r->ns[NS_UTS] = nsp->uts_ns->ns.inum;
	r->ns[NS_IPC] = nsp->ipc_ns->ns.inum;
	r->ns[NS_CGROUP] = nsp->cgroup_ns->ns.inum;
	if (t->signal->tty)
		flags |= EXEC_F_TTY;

	/* exe, then cwd, each with its NUL, then the argv block. Each offset
	 * is read back from the record: a fresh load tells the verifier only
	 * its bounds, so that the paths of one walk do not each go through
	 * the next walk (the walks' count would multiply). */
	struct path exe = bprm->file->f_path;
	r->exe_len = resolve_path(&exe, r->data, &trunc);
	if (trunc)
		flags |= EXEC_F_EXE_TRUNC;
	__u32 off = (*(volatile __u16 *)&r->exe_len + 1) & (PATH_SLOT - 1);
	struct path pwd = t->fs->pwd;
	r->cwd_len = resolve_path(&pwd, &r->data[off], &trunc);
	if (trunc)
		flags |= EXEC_F_CWD_TRUNC;
	off = (off + *(volatile __u16 *)&r->cwd_len + 1) & (2 * PATH_SLOT - 1);

	struct mm_struct *mm = t->mm;
	r->args_len = read_user_block(&r->data[off], ARGS_SLOT, mm->arg_start, mm->arg_end, &trunc);
	if (trunc)
		flags |= EXEC_F_ARGS_TRUNC;
	off = (off + *(volatile __u16 *)&r->args_len) & (4 * PATH_SLOT - 1);

	struct env_scan c = { .p = mm->env_start, .end = mm->env_end, .start = mm->env_start, .base = off };
	struct env_scratch *v = env_buf();
	if (c.end > c.p && v) {
		env_pointers(v, &c, mm, bprm);
		long done = 0;
		if (c.n)
			done = bpf_loop(ENV_PTRS, env_ptr_step, &c, 0);
		/* What the pointers did not cover, string by string, up to
		 * ENV_SCAN_MAX entries in all. */
		if (c.p < c.end) {
			__u32 left = done > 0 && done < ENV_SCAN_MAX ? ENV_SCAN_MAX - done : ENV_SCAN_MAX;
			long loops = bpf_loop(left, env_str_step, &c, 0);
			if (loops < 0 || (loops == left && c.p < c.end))
				c.flags |= EXEC_F_ENV_TRUNC;
		}
	}
	flags |= c.flags;

	r->flags = flags;
	r->env_len = c.used;
	__u32 size = offsetof(struct exec_rec, data) + off + c.used;
	if (size > sizeof(*r))
		size = sizeof(*r);
	barrier_var(size);
	r->h.size = size;
	emit_record(r, size & EXEC_OFF_MASK, CLASS_BULK);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(kestrel_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 tgid = child->tgid;
	if (child->pid != tgid) /* a thread */
		return 0;
	/* The sensor's own forks are reported: they cannot feed back. */
	learn_task_cgroup(child);
	struct fork_rec rec, *r = &rec;
	fill_hdr(&r->h, REC_FORK, sizeof(*r));
	r->child_tgid = tgid;
	r->parent_tgid = parent->tgid;
	r->child_start_ns = child->start_boottime;
	r->child_cgroup_id = child->cgroups->dfl_cgrp->kn->id;
	emit_record(r, sizeof(*r), CLASS_BULK);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(kestrel_exit, struct task_struct *t, bool group_dead)
{
	if (!group_dead) /* other threads live on */
		return 0;
	if (is_self())
		return 0;
	struct exit_rec rec, *r = &rec;
	fill_hdr(&r->h, REC_EXIT, sizeof(*r));
	__u32 code = t->exit_code;
	struct signal_struct *sig = t->signal;
	if (sig->flags & 0x00000004 /* SIGNAL_GROUP_EXIT */)
		code = sig->group_exit_code;
	r->exit_code = code;
	r->_pad = 0;
	r->start_ns = t->group_leader->start_boottime;
	emit_record(r, sizeof(*r), CLASS_BULK);
	return 0;
}
