/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* File opens: open, openat, openat2 and creat, filtered in the kernel.
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
 * leading '/', suffix_gate by the last two bytes lower-cased. sys_exit skips
 * its stash lookup while no watched open is in flight (open_pending).
 *
 * A relative path is also joined with its base directory (the cwd or the
 * dirfd's, cached by dentry in dir_cache) for the prefix lookup.
 *
 * Only a match stashes the call in open_stash; sys_exit then reads the result
 * and, on success, the absolute path of the opened file (dentry walk). A
 * failed relative open gets the base directory (cwd or dirfd) and user space
 * joins it with the raw path. */
#pragma once

#include "path.h"

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

/* Watched opens between sys_enter and sys_exit, all threads together. While
 * it is zero, sys_exit has nothing to look up. An entry lost to LRU eviction
 * or a killed thread only leaves it high, which costs lookups, never events. */
__u64 open_pending = 0;

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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_rec);
} open_rec_scratch SEC(".maps");

/* What sys_enter hands to sys_exit for a watched open. */
struct open_args {
	__u64 path; /* user pointer */
	__s32 dirfd;
	__u32 flags;
	__u32 mode;
	__u16 call;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct open_args);
} open_stash SEC(".maps");

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

static __always_inline void open_enter(const char *path, __s32 dirfd, __u32 flags, __u32 mode, __u16 call)
{
	if (is_self())
		return;
	if (!watched(path, dirfd))
		return;
	__u64 id = bpf_get_current_pid_tgid();
	struct open_args a = {
		.path = (__u64)path,
		.dirfd = dirfd,
		.flags = flags,
		.mode = mode,
		.call = call,
	};
	if (bpf_map_update_elem(&open_stash, &id, &a, BPF_ANY) < 0) {
		count_drop(DROP_STASH_FULL);
		return;
	}
	__sync_fetch_and_add(&open_pending, 1);
}


static __always_inline void open_exit(long ret)
{
	if (open_pending == 0)
		return;
	__u64 id = bpf_get_current_pid_tgid();
	struct open_args *a = bpf_map_lookup_elem(&open_stash, &id);
	if (!a)
		return;
	__sync_fetch_and_add(&open_pending, -1);
	__u32 zero = 0;
	struct open_rec *r = bpf_map_lookup_elem(&open_rec_scratch, &zero);
	if (!r)
		goto out;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	bool trunc = false;

	fill_hdr(&r->h, REC_OPEN, 0);
	r->result = ret;
	r->flags = a->flags;
	r->mode = a->mode;
	r->dirfd = a->dirfd;
	r->call = a->call;
	r->rflags = 0;
	r->ino = 0;
	r->size = 0;
	r->dev = 0;
	r->_pad = 0;
	long n = bpf_probe_read_user_str(r->raw, RAW_SLOT, (const char *)a->path);
	if (n < 1) {
		n = 1;
		r->raw[0] = 0;
	}
	r->raw_len = n - 1;
	if (n == RAW_SLOT)
		r->rflags |= OPEN_F_RAW_TRUNC;

	__u32 plen = 0;
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
		}
	} else if (r->raw[0] != '/') {
		struct path p;
		if (a->dirfd == -100 /* AT_FDCWD */ || a->call == CALL_OPEN || a->call == CALL_CREAT) {
			p = BPF_CORE_READ(t, fs, pwd);
			plen = resolve_path(&p, r->path, &trunc);
			r->rflags |= OPEN_F_PATH_BASE;
		} else {
			struct file *f = fd_file(t, a->dirfd);
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
	if (bpf_ringbuf_output(&events, r, size, submit_flags()) < 0)
		count_drop(DROP_RINGBUF_RESERVE);
out:
	bpf_map_delete_elem(&open_stash, &id);
}

/* Per-syscall tracepoints rather than one raw sys_enter dispatcher: only the
 * four open calls run this code. */
SEC("tracepoint/syscalls/sys_enter_openat")
int kestrel_openat(struct trace_event_raw_sys_enter *ctx)
{
	open_enter((const char *)ctx->args[1], ctx->args[0], ctx->args[2], ctx->args[3], CALL_OPENAT);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int kestrel_openat_x(struct trace_event_raw_sys_exit *ctx)
{
	open_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_open")
int kestrel_open(struct trace_event_raw_sys_enter *ctx)
{
	open_enter((const char *)ctx->args[0], -100, ctx->args[1], ctx->args[2], CALL_OPEN);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_open")
int kestrel_open_x(struct trace_event_raw_sys_exit *ctx)
{
	open_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_creat")
int kestrel_creat(struct trace_event_raw_sys_enter *ctx)
{
	/* creat(path, mode) == open(path, O_CREAT|O_WRONLY|O_TRUNC, mode) */
	open_enter((const char *)ctx->args[0], -100, 0x40 | 0x1 | 0x200, ctx->args[1], CALL_CREAT);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_creat")
int kestrel_creat_x(struct trace_event_raw_sys_exit *ctx)
{
	open_exit(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int kestrel_openat2(struct trace_event_raw_sys_enter *ctx)
{
	struct open_how how = {};
	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	open_enter((const char *)ctx->args[1], ctx->args[0], how.flags, how.mode, CALL_OPENAT2);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int kestrel_openat2_x(struct trace_event_raw_sys_exit *ctx)
{
	open_exit(ctx->ret);
	return 0;
}
