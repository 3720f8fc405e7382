/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* File opens: open, openat, openat2 and creat, filtered in the kernel.
 * Their handlers are tail-called by the syscall dispatcher (dispatch.bpf.h)
 * on sys_enter and sys_exit, native and 32-bit compat calls alike.
 *
 * sys_enter reads the path once and decides with three table lookups, all
 * filled from config by the loader:
 *   - prefix_trie: LPM trie over the first FILTER_PREFIX bytes of the path;
 *   - suffix_trie: LPM trie over the path reversed and lower-cased (last
 *     SUFFIX_MAX bytes, with a '/' added in front of a short relative path so
 *     that "/release_agent" also matches a bare "release_agent"); exact
 *     basenames are stored as "/name" suffixes;
 *   - proc_trie: for /proc/<pid|self|thread-self>/[task/<tid>/]X, an LPM
 *     trie over X (ns/, root, mem, environ, ...) whose value says whether
 *     the entry counts for self as well as for a numeric pid (a process
 *     reading its own maps is routine; reading another's is not).
 * Cost matters: this runs on every open of the host, and reading the path
 * from user memory is already most of what it may cost. So before each trie
 * a bitmap in .rodata, indexed by two bytes, rejects almost every path with
 * two loads and no helper call: prefix_gate by the two bytes after the
 * leading '/', suffix_gate by the last two bytes lower-cased.
 *
 * A relative path is also joined with its base directory (the cwd or the
 * dirfd's, cached by dentry in dir_cache) for the prefix lookup.
 *
 * A match stages the record in the task's open_inflight storage, path
 * included (it is not read from user memory again); sys_exit adds the
 * result and, on success, the absolute path of the opened file (dentry
 * walk). A failed relative open gets the base directory (cwd or dirfd) and
 * user space joins it with the raw path. An open refused before sys_enter
 * ran (seccomp) is filtered and reported at sys_exit from the argument
 * registers, flagged OPEN_F_EXIT_ONLY. */
#pragma once

#include "path.h"
#include "dispatch.bpf.h"

#define FILTER_PREFIX 64
#define SUFFIX_MAX 32
#define PROC_KEY 16

struct prefix_key {
	__u32 plen;
	char data[FILTER_PREFIX];
};
struct suffix_key {
	__u32 plen;
	char data[SUFFIX_MAX];
};
/* proc_trie values: which /proc/<X>/ forms an entry is reported for. */
#define PROC_F_SELF 1 /* self, thread-self */
#define PROC_F_PID 2  /* a numeric pid */

struct proc_key {
	__u32 plen;
	char data[PROC_KEY];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct prefix_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} prefix_trie SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct suffix_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} suffix_trie SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__type(key, struct proc_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} proc_trie SEC(".maps");

/* Two-byte gates, one bit per byte pair, set by the loader: bit (a<<8|b)
 * of prefix_gate is set when some prefix starts with '/', a, b (all bits
 * when a prefix is shorter than three bytes); of suffix_gate when some
 * suffix or "/name" ends with a, b (lower-cased). */
#define GATE_BYTES 8192
volatile const __u8 prefix_gate[GATE_BYTES] = {};
volatile const __u8 suffix_gate[GATE_BYTES] = {};

static __always_inline bool gate(const volatile __u8 *g, __u8 a, __u8 b)
{
	__u32 bit = (__u32)a << 8 | b;
	return g[(bit >> 3) & (GATE_BYTES - 1)] & (1 << (bit & 7));
}

static __always_inline char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Scratch for the filter: the prefix key is the path buffer itself (plen in
 * front of raw), so the trie reads the path in place with no copy. */
struct open_scratch {
	__u32 plen;
	char raw[RAW_SLOT];
	struct suffix_key suf;
	struct proc_key proc;
	struct prefix_key rel; /* base directory + "/" + relative path */
	char dir[PATH_SLOT];   /* a base directory being resolved */
	__u32 raw_n;           /* bytes read into raw, with the NUL */
};

/* The first FILTER_PREFIX bytes of a directory's absolute path, cached by
 * (dentry, vfsmount) so that a relative open costs a walk only the first
 * time its base directory is seen. A renamed directory keeps its old path
 * until evicted; a relative path with ".." is joined, not normalized. */
struct dir_key {
	__u64 dentry;
	__u64 mnt;
};
struct dir_prefix {
	__u32 len;
	char data[FILTER_PREFIX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct dir_key);
	__type(value, struct dir_prefix);
} dir_cache SEC(".maps");

static __always_inline struct file *fd_file(struct task_struct *t, int fd)
{
	struct file **fds = BPF_CORE_READ(t, files, fdt, fd);
	struct file *f = NULL;
	if (fd < 0)
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_scratch);
} open_scratch_map SEC(".maps");


/* A watched open in flight, per task: sys_enter fills the record (the
 * path read from user memory once, here), sys_exit completes and sends it.
 * Task storage rather than a hash keyed by pid_tgid: no insert and delete
 * per open, nothing to evict or leak, freed with the task, and sys_exit
 * needs no host-wide "anything pending?" counter to stay cheap. */
struct open_inflight {
	struct open_rec r;
	__u32 pending; /* call + 1 while r waits for its sys_exit */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct open_inflight);
} open_inflight SEC(".maps");

static __always_inline bool proc_match(struct open_scratch *s, __u32 len)
{
	/* "/proc/" already matched; parse the pid component at s->raw[6]. */
	int i = 6;
	char c = s->raw[6];
	__u32 want = PROC_F_SELF;
	if (c >= '0' && c <= '9') {
		want = PROC_F_PID;
		for (int k = 0; k < 10; k++) {
			c = s->raw[(i) & (RAW_SLOT - 1)];
			if (c < '0' || c > '9')
				break;
			i++;
		}
	} else if (c == 's' && s->raw[7] == 'e' && s->raw[8] == 'l' && s->raw[9] == 'f') {
		i = 10;
	} else if (c == 't' && s->raw[7] == 'h' && s->raw[8] == 'r' && s->raw[9] == 'e' && s->raw[10] == 'a' &&
		   s->raw[11] == 'd' && s->raw[12] == '-' && s->raw[13] == 's' && s->raw[14] == 'e' &&
		   s->raw[15] == 'l' && s->raw[16] == 'f') {
		i = 17;
	} else {
		return false;
	}
	if (s->raw[i & (RAW_SLOT - 1)] != '/')
		return false;
	i++;
	/* task/<tid>/ */
	if (s->raw[i & (RAW_SLOT - 1)] == 't' && s->raw[(i + 1) & (RAW_SLOT - 1)] == 'a' &&
	    s->raw[(i + 2) & (RAW_SLOT - 1)] == 's' && s->raw[(i + 3) & (RAW_SLOT - 1)] == 'k' &&
	    s->raw[(i + 4) & (RAW_SLOT - 1)] == '/') {
		i += 5;
		for (int k = 0; k < 10; k++) {
			c = s->raw[i & (RAW_SLOT - 1)];
			if (c < '0' || c > '9')
				break;
			i++;
		}
		if (s->raw[i & (RAW_SLOT - 1)] != '/')
			return false;
		i++;
	}
	if ((__u32)i >= len)
		return false;
	__u32 rest = len - i;
	if (rest > PROC_KEY)
		rest = PROC_KEY;
	bpf_probe_read_kernel(s->proc.data, PROC_KEY, &s->raw[i & (RAW_SLOT / 2 - 1)]);
	s->proc.plen = rest * 8;
	__u32 *v = bpf_map_lookup_elem(&proc_trie, &s->proc);
	return v && (*v & want);
}

/* relative_prefix_match joins the base directory of a relative path (the
 * cwd, or dirfd's directory) with it and looks the result up in the prefix
 * trie, so that "cd /models && cat config.json" is seen like the absolute
 * open. */
static __always_inline bool relative_prefix_match(struct open_scratch *s, __u32 len, int dirfd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	struct path p;
	if (dirfd == -100 /* AT_FDCWD */) {
		/* Direct loads through the task's BTF pointer: no helper calls. */
		struct fs_struct *fs = t->fs;
		p.dentry = fs->pwd.dentry;
		p.mnt = fs->pwd.mnt;
	} else {
		struct file *f = fd_file(t, dirfd);
		if (!f)
			return false;
		p = BPF_CORE_READ(f, f_path);
	}
	struct dir_key k = {.dentry = (__u64)p.dentry, .mnt = (__u64)p.mnt};
	struct dir_prefix *dp = bpf_map_lookup_elem(&dir_cache, &k);
	if (!dp) {
		bool trunc;
		struct dir_prefix v = {};
		__u32 n = resolve_path(&p, s->dir, &trunc);
		if (n > FILTER_PREFIX)
			n = FILTER_PREFIX;
		v.len = n;
		__builtin_memcpy(v.data, s->dir, FILTER_PREFIX);
		bpf_map_update_elem(&dir_cache, &k, &v, BPF_ANY);
		dp = bpf_map_lookup_elem(&dir_cache, &k);
		if (!dp)
			return false;
	}
	__builtin_memcpy(s->rel.data, dp->data, FILTER_PREFIX);
	__u32 pos = dp->len;
	if (pos == 0 || s->rel.data[0] != '/')
		return false; /* not a path (a pseudo file) */
	__u32 idx;
	if (pos > 1 && pos < FILTER_PREFIX) { /* "/" needs no second slash */
		idx = pos++;
		barrier_var(idx); /* keep the mask: the verifier needs it */
		s->rel.data[idx & (FILTER_PREFIX - 1)] = '/';
	}
	for (__u32 i = 0; i < FILTER_PREFIX; i++) {
		if (i >= len || pos >= FILTER_PREFIX)
			break;
		idx = pos;
		barrier_var(idx);
		s->rel.data[idx & (FILTER_PREFIX - 1)] = s->raw[i & (RAW_SLOT - 1)];
		pos++;
	}
	if (!gate(prefix_gate, s->rel.data[1], s->rel.data[2]))
		return false;
	s->rel.plen = pos * 8;
	return bpf_map_lookup_elem(&prefix_trie, &s->rel) != NULL;
}

/* watched decides whether the path at upath (relative to dirfd when it is
 * not absolute) is reported. */
static __always_inline bool watched(const char *upath, int dirfd)
{
	__u32 zero = 0;
	struct open_scratch *s = bpf_map_lookup_elem(&open_scratch_map, &zero);
	if (!s)
		return false;
	long n = bpf_probe_read_user_str(s->raw, RAW_SLOT, upath);
	if (n <= 1)
		return false;
	s->raw_n = n;
	__u32 len = n - 1;

	if (s->raw[0] == '/' && gate(prefix_gate, s->raw[1], s->raw[2])) {
		__u32 pl = len < FILTER_PREFIX ? len : FILTER_PREFIX;
		s->plen = pl * 8;
		if (bpf_map_lookup_elem(&prefix_trie, s))
			return true;
	}

	if (len >= 2 && !gate(suffix_gate, lower(s->raw[(len - 2) & (RAW_SLOT - 1)]),
			      lower(s->raw[(len - 1) & (RAW_SLOT - 1)])))
		goto proc;

	/* Reverse the tail, lower-cased, into the suffix key. */
	__u32 k;
	for (k = 0; k < SUFFIX_MAX; k++) {
		if (k >= len) {
			s->suf.data[k] = '/';
			k++;
			break;
		}
		s->suf.data[k & (SUFFIX_MAX - 1)] = lower(s->raw[(len - 1 - k) & (RAW_SLOT - 1)]);
	}
	s->suf.plen = k * 8;
	if (bpf_map_lookup_elem(&suffix_trie, &s->suf))
		return true;
proc:
	if (s->raw[0] != '/')
		return relative_prefix_match(s, len, dirfd);
	if (len > 8 && s->raw[0] == '/' && s->raw[1] == 'p' && s->raw[2] == 'r' && s->raw[3] == 'o' &&
	    s->raw[4] == 'c' && s->raw[5] == '/')
		return proc_match(s, len);
	return false;
}

/* The arguments of one open call. */
struct open_argv {
	const char *path;
	__s32 dirfd;
	__u32 flags;
	__u32 mode;
};

#define KS_AT_FDCWD -100

/* open_call_args decodes the arguments of call (a constant once inlined). */
static __always_inline void open_call_args(__u16 call, struct sys_args *a, struct open_argv *oc)
{
	switch (call) {
	case CALL_OPEN:
		oc->path = (const char *)a->a[0];
		oc->dirfd = KS_AT_FDCWD;
		oc->flags = a->a[1];
		oc->mode = a->a[2];
		break;
	case CALL_CREAT: /* creat(path, mode) == open(path, O_CREAT|O_WRONLY|O_TRUNC, mode) */
		oc->path = (const char *)a->a[0];
		oc->dirfd = KS_AT_FDCWD;
		oc->flags = 0x40 | 0x1 | 0x200;
		oc->mode = a->a[1];
		break;
	case CALL_OPENAT2: {
		struct open_how how = {};
		bpf_probe_read_user(&how, sizeof(how), (void *)a->a[2]);
		oc->path = (const char *)a->a[1];
		oc->dirfd = a->a[0];
		oc->flags = how.flags;
		oc->mode = how.mode;
		break;
	}
	default:
		oc->path = (const char *)a->a[1];
		oc->dirfd = a->a[0];
		oc->flags = a->a[2];
		oc->mode = a->a[3];
	}
}

/* open_stage fills r with the call and the path that watched() left in s. */
static __always_inline void open_stage(struct open_rec *r, struct open_scratch *s, struct open_argv *oc,
				       __u16 call, __u16 rflags)
{
	__u32 n = s->raw_n;
	r->flags = oc->flags;
	r->mode = oc->mode;
	r->dirfd = oc->dirfd;
	r->call = call;
	r->rflags = rflags;
	if (n > RAW_SLOT)
		n = RAW_SLOT;
	if (n < 1)
		n = 1;
	bpf_probe_read_kernel(r->raw, n, s->raw);
	r->raw[(n - 1) & (RAW_SLOT - 1)] = 0;
	r->raw_len = n - 1;
	if (n == RAW_SLOT)
		r->rflags |= OPEN_F_RAW_TRUNC;
}

/* The class of an open record (common.h): a write (a knob, a runtime
 * binary, the loader's preload list) is a priority record whatever it
 * opened; so is any open of a file on proc, sysfs or cgroupfs (the kernel
 * knobs, /proc/<pid>/ entries) or of a block device, by the superblock and
 * inode the kernel opened. Other reads (model files) are bulk. */
#define PROC_SUPER_MAGIC_K 0x9fa0
#define SYSFS_MAGIC_K 0x62656572
#define CGROUP_SUPER_MAGIC_K 0x27e0eb
#define CGROUP2_SUPER_MAGIC_K 0x63677270
#define S_IFBLK_K 0060000

static __always_inline __u32 open_class(__u32 flags)
{
	return (flags & 3) || (flags & (0x40 | 0x200 | 0x400)) /* O_CREAT, O_TRUNC, O_APPEND */ ? CLASS_PRIO : CLASS_BULK;
}

static __always_inline __u32 open_file_class(struct inode *ino)
{
	unsigned long magic = BPF_CORE_READ(ino, i_sb, s_magic);
	if (magic == PROC_SUPER_MAGIC_K || magic == SYSFS_MAGIC_K || magic == CGROUP_SUPER_MAGIC_K ||
	    magic == CGROUP2_SUPER_MAGIC_K)
		return CLASS_PRIO;
	return (BPF_CORE_READ(ino, i_mode) & 00170000) == S_IFBLK_K ? CLASS_PRIO : CLASS_BULK;
}

/* open_finish adds the result, the header and the path of the opened file
 * (or the base directory of a failed relative open) to r and sends it. */
static __always_inline void open_finish(struct open_rec *r, long ret)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	bool trunc = false;

	fill_hdr(&r->h, REC_OPEN, 0);
	r->result = ret;
	r->ino = 0;
	r->size = 0;
	r->dev = 0;
	r->_pad = 0;

	__u32 plen = 0;
	__u32 cls = open_class(r->flags);
	if (ret >= 0) {
		struct file *f = fd_file(t, ret);
		if (f) {
			struct path p = BPF_CORE_READ(f, f_path);
			plen = resolve_path(&p, r->path, &trunc);
			r->rflags |= OPEN_F_PATH_KERNEL;
			struct inode *ino = BPF_CORE_READ(f, f_inode);
			r->ino = BPF_CORE_READ(ino, i_ino);
			r->size = BPF_CORE_READ(ino, i_size);
			r->dev = BPF_CORE_READ(ino, i_sb, s_dev);
			cls |= open_file_class(ino);
		}
	} else if (r->raw[0] != '/') {
		struct path p;
		if (r->dirfd == KS_AT_FDCWD || r->call == CALL_OPEN || r->call == CALL_CREAT) {
			p = BPF_CORE_READ(t, fs, pwd);
			plen = resolve_path(&p, r->path, &trunc);
			r->rflags |= OPEN_F_PATH_BASE;
		} else {
			struct file *f = fd_file(t, r->dirfd);
			if (f) {
				p = BPF_CORE_READ(f, f_path);
				plen = resolve_path(&p, r->path, &trunc);
				r->rflags |= OPEN_F_PATH_BASE;
			}
		}
	}
	if (trunc) {
		r->rflags |= OPEN_F_PATH_TRUNC;
		count_drop(DROP_PATH_TOO_LONG);
	}
	if (plen >= PATH_SLOT)
		plen = PATH_SLOT - 1;
	if (plen == 0)
		r->path[0] = 0;
	r->path_len = plen;
	__u32 size = offsetof(struct open_rec, path) + plen + 1;
	if (size > sizeof(*r))
		size = sizeof(*r);
	r->h.size = size;
	emit_record(r, size, cls);
}

static __always_inline void open_enter(struct pt_regs *regs, __u16 call)
{
	if (is_self())
		return;
	struct sys_args a;
	struct open_argv oc;
	sys_args_get(regs, &a);
	open_call_args(call, &a, &oc);
	if (!watched(oc.path, oc.dirfd))
		return;
	__u32 zero = 0;
	struct open_scratch *s = bpf_map_lookup_elem(&open_scratch_map, &zero);
	if (!s)
		return;
	struct open_inflight *st =
		bpf_task_storage_get(&open_inflight, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		count_drop(DROP_INFLIGHT);
		return;
	}
	open_stage(&st->r, s, &oc, call, a.compat ? OPEN_F_COMPAT : 0);
	st->pending = call + 1;
}

/* open_exit completes the open that sys_enter staged. With nothing staged
 * and a refusal errno, the call may have been stopped before sys_enter
 * (seccomp): the arguments are still in the registers, so it is filtered
 * and staged here, flagged OPEN_F_EXIT_ONLY. Both ways end in the one
 * open_finish, which keeps the program within the verifier's budget. */
static __always_inline void open_exit(struct pt_regs *regs, long ret, __u16 call)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct open_inflight *st = bpf_task_storage_get(&open_inflight, t, 0, 0);
	if (!st || st->pending != call + 1) {
		if (!refused_errno(ret) || is_self())
			return;
		struct sys_args a;
		struct open_argv oc;
		sys_args_get(regs, &a);
		open_call_args(call, &a, &oc);
		if (!watched(oc.path, oc.dirfd))
			return;
		__u32 zero = 0;
		struct open_scratch *s = bpf_map_lookup_elem(&open_scratch_map, &zero);
		if (!s)
			return;
		st = bpf_task_storage_get(&open_inflight, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!st) {
			count_drop(DROP_INFLIGHT);
			return;
		}
		open_stage(&st->r, s, &oc, call, OPEN_F_EXIT_ONLY | (a.compat ? OPEN_F_COMPAT : 0));
	}
	st->pending = 0;
	open_finish(&st->r, ret);
}

SYS_ENTER(openat)
{
	open_enter(regs, CALL_OPENAT);
	return 0;
}

SYS_EXIT(openat)
{
	open_exit(regs, ret, CALL_OPENAT);
	return 0;
}

SYS_ENTER(open)
{
	open_enter(regs, CALL_OPEN);
	return 0;
}

SYS_EXIT(open)
{
	open_exit(regs, ret, CALL_OPEN);
	return 0;
}

SYS_ENTER(creat)
{
	open_enter(regs, CALL_CREAT);
	return 0;
}

SYS_EXIT(creat)
{
	open_exit(regs, ret, CALL_CREAT);
	return 0;
}

SYS_ENTER(openat2)
{
	open_enter(regs, CALL_OPENAT2);
	return 0;
}

SYS_EXIT(openat2)
{
	open_exit(regs, ret, CALL_OPENAT2);
	return 0;
}
