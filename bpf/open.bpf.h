/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* File opens: open, openat, openat2, creat and open_by_handle_at, decided
 * at sys_exit on what the call opened, inline in the syscall dispatcher of
 * dispatch.bpf.h (native and 32-bit compat calls alike; the open family has
 * no sys_enter handler at all). A report is built and sent by
 * tail_open_emit.
 *
 * A successful open is reported when the file it opened is one of these,
 * whatever name reached it (a symlink, a hard link, "//", "/./", "..", a
 * bind mount, a chdir, a chroot, a file handle; and an attacker thread
 * that rewrites the path buffer while the call runs changes nothing):
 *   - a model file: its (s_dev, i_ino) is in model_inodes, which user space
 *     keeps current (the model registry decides; internal/runtime/identity.go
 *     writes the map); model_bits, one bit per hash of i_ino, rejects almost
 *     every other file with one load before the hash lookup;
 *   - a model store blob by its dentry names (blobs/sha256-<hex>,
 *     blobs/<64 hex>), for stores the registry has not seen yet;
 *   - a kernel knob: the superblock magic says proc, sysfs, cgroup or
 *     binfmt_misc, and the dentry name is in knob_names (core_pattern,
 *     release_agent, uevent_helper, another process's mem ...);
 *   - a device by i_rdev: any block device, /dev/mem, /dev/kmem, /dev/port
 *     (a node made with mknod under another name is the same device);
 *   - a namespace file (nsfs) of a namespace the caller is not in.
 * Every other open, and every failed one (it has no file), is decided on
 * the path as passed, read once from user memory, with three table lookups
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
 * Cost matters: this runs on every open of the host. The identity checks
 * are plain loads (one hash lookup for a file whose inode bit is set), and
 * before each trie a gate in .rodata (prefix_gated, suffix_gated) rejects
 * almost every path with two loads and one short hash: no trie walk for
 * "/usr/lib/...", /etc, /proc/self or "x.py" (measured by sensorbench's
 * realistic storm). A relative path is also joined with its base directory
 * (the cwd or the dirfd's, cached by dentry in dir_cache) for the prefix
 * lookup.
 *
 * A report carries the path as passed and, on success, the absolute path of
 * the opened file (dentry walk) with its inode, device, size, i_mode and
 * i_rdev, and how it matched. A failed relative open carries its base
 * directory (the cwd or dirfd's; the root of a chrooted caller for an
 * absolute path) and user space joins it with the raw path.
 *
 * Repeats: the same process image (tgid and exec id) opening the same inode
 * with the same access mode again within repeat_window_ns is counted, not
 * reported (DROP_OPEN_REPEAT); the next report of that key says how many
 * it stands for. A first open, and a failed one, is always reported. */
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

/* Gates, set by the loader (internal/runtime/filter.go), in front of the
 * tries. A prefix's pair is its two bytes after the leading '/'; a
 * suffix's (or "/name"'s) pair its last two, lower-cased. prefix_klen[pair]
 * is 0 when no prefix has that pair, else the shortest length (capped at
 * GATE_MAX) among those that do: every one of them shares its first k bytes
 * with a path it matches, so one hash of the path's first k bytes, tested
 * in prefix_gate, says whether any may (suffix_klen and suffix_gate alike,
 * over the last k bytes reversed). So "/usr/lib/..." is rejected though a
 * prefix starts "/usr/share/ollama", and "x.py" though a suffix is ".npy",
 * with two loads, a k-byte hash and one bit test. */
#define PAIRS 65536
#define GATE_BYTES 65536 /* 2^19 bits */
#define GATE_SHIFT 13
#define GATE_MAX 12
#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u
volatile const __u8 prefix_klen[PAIRS] = {};
volatile const __u8 suffix_klen[PAIRS] = {};
volatile const __u8 prefix_gate[GATE_BYTES] = {};
volatile const __u8 suffix_gate[GATE_BYTES] = {};
/* proc_pairs: bit (a<<8|b) set for the first two bytes of every proc_trie
 * entry (every bit for a one-byte entry). */
#define PAIR_BYTES 8192
volatile const __u8 proc_pairs[PAIR_BYTES] = {};

static __always_inline bool pair_hit(const volatile __u8 *g, __u8 a, __u8 b)
{
	__u32 bit = (__u32)a << 8 | b;
	return g[(bit >> 3) & (PAIR_BYTES - 1)] & (1 << (bit & 7));
}

/* Repeats of one (process image, inode, access mode) within this window are
 * counted, not reported; 0 reports every open. Set by the loader. */
volatile const __u64 repeat_window_ns = 0;

/* gate_hit tests the bit of hash h in gate g. */
static __always_inline bool gate_hit(const volatile __u8 *g, __u32 h)
{
	/* FNV's high bits barely differ between short inputs that share a
	 * start: mix them (murmur3's finalizer steps) before taking them. */
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	__u32 bit = h >> GATE_SHIFT;
	return g[(bit >> 3) & (GATE_BYTES - 1)] & (1 << (bit & 7));
}

static __always_inline char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* prefix_gated reports whether buf (len bytes) may start with a watched
 * prefix. */
static __always_inline bool prefix_gated(const char *buf, __u32 len)
{
	if (len < 3)
		return true; /* too short to gate: the trie decides */
	__u32 k = prefix_klen[((__u32)(__u8)buf[1] << 8 | (__u8)buf[2]) & (PAIRS - 1)];
	if (k == 0 || k > len)
		return false;
	__u32 h = FNV_OFFSET;
	for (int i = 0; i < GATE_MAX; i++) {
		if (i >= k)
			break;
		h = (h ^ (__u8)buf[i]) * FNV_PRIME;
	}
	return gate_hit(prefix_gate, h);
}

/* The arguments of one open call. */
struct open_argv {
	__u64 path; /* user pointer */
	__s32 dirfd;
	__u32 flags;
	__u32 mode;
};

/* What the opened file is (identify). */
struct open_ident {
	__u64 f; /* the opened struct file, or 0 */
	__u32 target; /* a /proc/<pid> knob's host pid */
	__u8 match;
	__u8 knob;
};

/* An open decided for a report, handed from the exit handler to the
 * program that builds and sends the record (tail_open_emit). */
struct open_pending {
	struct rec_hdr hdr; /* with have_hdr: the header to send (an io_uring submitter's) */
	struct open_ident id;
	struct open_argv oc;
	long ret;
	long raw_n; /* bytes of the raw path in open_scratch.raw, with the NUL */
	__u32 repeats;
	__u16 call;
	__u16 rflags;
	__u32 have_hdr;
};

/* Scratch of an open being decided and reported: the prefix key is the path
 * buffer itself (plen in front of raw), so the trie reads the path in place
 * with no copy. */
struct open_scratch {
	__u32 plen;
	char raw[RAW_SLOT];
	struct suffix_key suf;
	struct proc_key proc;
	struct prefix_key rel; /* base directory + "/" + relative path */
	char dir[PATH_SLOT];   /* a base directory being resolved */
	struct open_pending pd; /* a decided open, for tail_open_emit */
	struct open_rec rec;   /* the record being built */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_scratch);
} open_scratch_map SEC(".maps");

/* suffix_gated reports whether s->raw (len bytes) may end with a watched
 * suffix or name; the bytes are those of the suffix trie key (reversed,
 * lower-cased, with a '/' after a short path's first byte). */
static __always_inline bool suffix_gated(struct open_scratch *s, __u32 len)
{
	if (len < 2)
		return false; /* suffixes are 3 bytes or more, "/" included */
	__u32 pair = (__u32)(__u8)lower(s->raw[(len - 2) & (RAW_SLOT - 1)]) << 8 |
		     (__u8)lower(s->raw[(len - 1) & (RAW_SLOT - 1)]);
	__u32 k = suffix_klen[pair & (PAIRS - 1)];
	if (k == 0 || k > len + 1)
		return false;
	__u32 h = FNV_OFFSET;
	for (int i = 0; i < GATE_MAX; i++) {
		if (i >= k)
			break;
		char c = i < len ? lower(s->raw[(len - 1 - i) & (RAW_SLOT - 1)]) : '/';
		h = (h ^ (__u8)c) * FNV_PRIME;
	}
	return gate_hit(suffix_gate, h);
}

/* The first FILTER_PREFIX bytes of a directory's absolute path, cached by
 * (dentry, vfsmount) so that a relative open costs a walk only the first
 * time its base directory is seen. A renamed directory keeps its old path
 * until evicted; a relative path with ".." is joined, not normalized (a
 * successful open is decided on its file anyway). */
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

/* fd_file returns the file at fd in t's table, or NULL. The slot is read
 * with a plain load (the fd array cast to the one-word struct fd): no
 * helper call on the path every successful open takes. */
static __always_inline struct file *fd_file(struct task_struct *t, int fd)
{
	if (fd < 0)
		return NULL;
	struct files_struct *files = t->files;
	if (!files)
		return NULL;
	struct fdtable *fdt = files->fdt;
	if (!fdt || (unsigned int)fd >= fdt->max_fds)
		return NULL;
	__u64 slot = (__u64)fdt->fd + (__u64)fd * sizeof(struct file *);
	return (struct file *)KCAST(struct fd, slot)->word;
}

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
	/* /proc/self/stat, status, cgroup ...: rejected on two bytes. */
	if (!pair_hit(proc_pairs, s->raw[i & (RAW_SLOT - 1)], s->raw[(i + 1) & (RAW_SLOT - 1)]))
		return false;
	bpf_probe_read_kernel(s->proc.data, PROC_KEY, &s->raw[i & (RAW_SLOT / 2 - 1)]);
	s->proc.plen = rest * 8;
	__u32 *v = bpf_map_lookup_elem(&proc_trie, &s->proc);
	return v && (*v & want);
}

/* base_dir returns the directory a relative path is looked up from: the cwd
 * for AT_FDCWD, else dirfd's file. */
static __always_inline bool base_dir(struct task_struct *t, int dirfd, struct path *p)
{
	if (dirfd == -100 /* AT_FDCWD */) {
		/* Direct loads through the task's BTF pointer: no helper calls. */
		struct fs_struct *fs = t->fs;
		p->dentry = fs->pwd.dentry;
		p->mnt = fs->pwd.mnt;
		return true;
	}
	struct file *f = fd_file(t, dirfd);
	if (!f)
		return false;
	f = KCAST(struct file, f);
	p->dentry = f->f_path.dentry;
	p->mnt = f->f_path.mnt;
	return true;
}

/* relative_prefix_match joins the base directory of a relative path (the
 * cwd, or dirfd's directory) with it and looks the result up in the prefix
 * trie, so that "cd /models && cat config.json" is seen like the absolute
 * open. */
static __always_inline bool relative_prefix_match(struct open_scratch *s, __u32 len, int dirfd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	struct path p;
	if (!base_dir(t, dirfd, &p))
		return false;
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
	if (!prefix_gated(s->rel.data, pos))
		return false;
	s->rel.plen = pos * 8;
	return bpf_map_lookup_elem(&prefix_trie, &s->rel) != NULL;
}

/* name_watched decides whether the path in s->raw (len bytes, then a NUL),
 * relative to dirfd when it is not absolute, is reported. A global function:
 * the verifier checks it once, not at each of its callers (the open exit,
 * every path family handler, io_uring's), which keeps each within budget.
 * s is open_scratch_map's value. */
__noinline int name_watched(struct open_scratch *s, __u32 len, int dirfd)
{
	if (!s || len == 0)
		return 0;
	if (len >= RAW_SLOT)
		len = RAW_SLOT - 1;
	if (s->raw[0] == '/' && prefix_gated(s->raw, len)) {
		__u32 pl = len < FILTER_PREFIX ? len : FILTER_PREFIX;
		s->plen = pl * 8;
		if (bpf_map_lookup_elem(&prefix_trie, s))
			return true;
	}

	if (suffix_gated(s, len)) {
		/* Reverse the tail, lower-cased, into the suffix key. */
		__u32 k, idx;
		for (k = 0; k < SUFFIX_MAX; k++) {
			idx = k;
			barrier_var(idx); /* keep the masks: clang would index by len */
			if (k >= len) {
				s->suf.data[idx & (SUFFIX_MAX - 1)] = '/';
				k++;
				break;
			}
			s->suf.data[idx & (SUFFIX_MAX - 1)] = lower(s->raw[(len - 1 - idx) & (RAW_SLOT - 1)]);
		}
		s->suf.plen = k * 8;
		if (bpf_map_lookup_elem(&suffix_trie, &s->suf))
			return true;
	}
	if (s->raw[0] != '/')
		return relative_prefix_match(s, len, dirfd);
	if (len > 8 && s->raw[1] == 'p' && s->raw[2] == 'r' && s->raw[3] == 'o' && s->raw[4] == 'c' &&
	    s->raw[5] == '/')
		return proc_match(s, len);
	return false;
}

/* watched reads the user path at upath and decides on it (the filter of
 * the path families in syscalls.bpf.h). */
static __always_inline bool watched(const char *upath, int dirfd)
{
	__u32 zero = 0;
	struct open_scratch *s = bpf_map_lookup_elem(&open_scratch_map, &zero);
	if (!s)
		return false;
	long n = bpf_probe_read_user_str(s->raw, RAW_SLOT, upath);
	if (n <= 1)
		return false;
	return name_watched(s, n - 1, dirfd);
}

/* Identity of an opened file. */

#define S_IFMT_K 00170000
#define S_IFSOCK_K 0140000
#define S_IFREG_K 0100000
#define S_IFBLK_K 0060000
#define S_IFCHR_K 0020000
#define KDEV(major, minor) ((__u32)(major) << 20 | (minor))

#define PROC_SUPER_MAGIC_K 0x9fa0
#define SYSFS_MAGIC_K 0x62656572
#define CGROUP_SUPER_MAGIC_K 0x27e0eb
#define CGROUP2_SUPER_MAGIC_K 0x63677270
#define BINFMTFS_MAGIC_K 0x42494e4d
#define NSFS_MAGIC_K 0x6e736673

/* Filesystem classes of knob_key.fs (a contract with identity.go). */
enum fs_class { FS_OTHER = 0, FS_PROC = 1, FS_SYSFS = 2, FS_CGROUP = 3, FS_CGROUP2 = 4, FS_BINFMT = 5, FS_CLASSES = 8 };

#define KNOB_NAME 20
struct knob_key {
	__u32 fs;             /* enum fs_class */
	char name[KNOB_NAME]; /* dentry name, NUL-padded */
};
#define KNOB_F_OTHER_PID 1 /* a /proc/<pid> entry: only another process's counts */
struct knob_val {
	__u8 id;
	__u8 flags;
	__u16 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct knob_key);
	__type(value, struct knob_val);
} knob_names SEC(".maps");

/* knob_lens[class]: bit n set when some knob of that class has an n-byte
 * name, so that a name of another length costs no lookup. */
volatile const __u32 knob_lens[FS_CLASSES] = {};

struct model_key {
	__u64 ino;
	__u32 dev; /* i_sb->s_dev */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct model_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} model_inodes SEC(".maps");

#define MODEL_BITS 65536
struct model_bitmap {
	__u64 w[MODEL_BITS / 64];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct model_bitmap);
} model_bits SEC(".maps");

/* model_bit is the bit of inode number ino in model_bits (identity.go
 * computes the same). */
static __always_inline __u32 model_bit(__u64 ino)
{
	return (ino * 0x9E3779B97F4A7C15ull) >> 48;
}

/* foreign_ns reports whether namespace inode inum is none of the caller's. */
static __always_inline bool foreign_ns(struct task_struct *t, __u64 inum)
{
	struct nsproxy *np = t->nsproxy;
	if (!np)
		return true;
	if (inum == np->mnt_ns->ns.inum || inum == np->net_ns->ns.inum || inum == np->uts_ns->ns.inum ||
	    inum == np->ipc_ns->ns.inum || inum == np->cgroup_ns->ns.inum ||
	    inum == np->pid_ns_for_children->ns.inum || inum == t->cred->user_ns->ns.inum)
		return false;
	if (bpf_core_field_exists(np->time_ns) && inum == BPF_CORE_READ(np, time_ns, ns.inum))
		return false;
	return true;
}

/* knob_match looks the dentry name of an opened file of filesystem class
 * cls up in knob_names. */
static __always_inline void knob_match(struct task_struct *t, struct file *f, struct inode *ino, __u32 cls,
				       struct open_ident *id)
{
	struct dentry *d = f->f_path.dentry;
	__u32 len = d->d_name.len;
	if (len >= KNOB_NAME || !(knob_lens[cls & (FS_CLASSES - 1)] & (1u << len)))
		return;
	struct knob_key k = {.fs = cls};
	bpf_probe_read_kernel(k.name, len, d->d_name.name);
	struct knob_val *v = bpf_map_lookup_elem(&knob_names, &k);
	if (!v)
		return;
	if (v->flags & KNOB_F_OTHER_PID) {
		/* The proc inode's pid is the process the entry belongs to. */
		__u64 a = (__u64)ino - bpf_core_field_offset(struct proc_inode, vfs_inode);
		struct proc_inode *pi = KCAST(struct proc_inode, a);
		int nr = BPF_CORE_READ(pi, pid, numbers[0].nr);
		if (nr == t->tgid || nr == t->pid)
			return;
		id->target = nr;
	}
	id->match = MATCH_KNOB;
	id->knob = v->id;
}

/* layout_match reports whether the dentry names of an opened regular file
 * are a model store blob: blobs/sha256-<64 hex> (Ollama) or blobs/<64 hex>
 * (Hugging Face). User space checks the hex and the size. */
static __always_inline bool layout_match(struct file *f)
{
	struct dentry *d = f->f_path.dentry;
	__u32 len = d->d_name.len;
	if (len != 64 && len != 71)
		return false;
	struct dentry *parent = d->d_parent;
	if (parent->d_name.len != 5)
		return false;
	char b[8] = {};
	bpf_probe_read_kernel(b, 5, parent->d_name.name);
	if (b[0] != 'b' || b[1] != 'l' || b[2] != 'o' || b[3] != 'b' || b[4] != 's')
		return false;
	if (len == 64)
		return true;
	bpf_probe_read_kernel(b, 7, d->d_name.name);
	return b[0] == 's' && b[1] == 'h' && b[2] == 'a' && b[3] == '2' && b[4] == '5' && b[5] == '6' &&
	       (b[6] == '-' || b[6] == ':');
}

/* identify sets id->match to what the opened file fp is, or 0. */
static __always_inline void identify(struct task_struct *t, struct file *fp, struct open_ident *id)
{
	struct file *f = KCAST(struct file, fp);
	struct inode *ino = f->f_inode;
	__u16 mode = ino->i_mode;
	id->f = (__u64)fp;
	id->target = 0;
	id->match = 0;
	id->knob = 0;
	switch (mode & S_IFMT_K) {
	case S_IFREG_K:
		break;
	case S_IFBLK_K:
		id->match = MATCH_DEVICE;
		return;
	case S_IFCHR_K: {
		__u32 rdev = ino->i_rdev;
		if (rdev == KDEV(1, 1) || rdev == KDEV(1, 2) || rdev == KDEV(1, 4)) /* mem, kmem, port */
			id->match = MATCH_DEVICE;
		return;
	}
	default:
		return;
	}
	struct super_block *sb = ino->i_sb;
	__u64 i = ino->i_ino;
	__u32 cls = FS_OTHER;
	switch (sb->s_magic) {
	case PROC_SUPER_MAGIC_K:
		cls = FS_PROC;
		break;
	case SYSFS_MAGIC_K:
		cls = FS_SYSFS;
		break;
	case CGROUP_SUPER_MAGIC_K:
		cls = FS_CGROUP;
		break;
	case CGROUP2_SUPER_MAGIC_K:
		cls = FS_CGROUP2;
		break;
	case BINFMTFS_MAGIC_K:
		cls = FS_BINFMT;
		break;
	case NSFS_MAGIC_K:
		if (foreign_ns(t, i))
			id->match = MATCH_NSFS;
		return;
	}
	if (cls != FS_OTHER) {
		knob_match(t, f, ino, cls, id);
		return;
	}
	__u32 zero = 0;
	struct model_bitmap *bm = bpf_map_lookup_elem(&model_bits, &zero);
	__u32 bit = model_bit(i);
	if (bm && (bm->w[(bit >> 6) & (MODEL_BITS / 64 - 1)] & (1ull << (bit & 63)))) {
		struct model_key k = {.ino = i, .dev = sb->s_dev};
		if (bpf_map_lookup_elem(&model_inodes, &k)) {
			id->match = MATCH_MODEL;
			return;
		}
	}
	if (layout_match(f))
		id->match = MATCH_LAYOUT;
}

/* Repeat suppression, keyed by process image, inode and access mode. */
struct repeat_key {
	__u64 ino;
	__u64 exec_id; /* the group's self_exec_id: a new image is a new key */
	__u32 dev;
	__u32 tgid;
	__u32 fmode; /* O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND of the call */
	__u32 _pad;
};
struct repeat_val {
	__u64 last_ns;    /* when the key was last reported */
	__u32 suppressed; /* opens counted since */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct repeat_key);
	__type(value, struct repeat_val);
} open_repeats SEC(".maps");

#define KS_O_FMODE (0x3 | 0x40 | 0x200 | 0x400)

/* repeated reports whether this successful open of file f repeats one
 * reported less than repeat_window_ns ago (and counts it); otherwise it
 * records the report and sets *repeats to the opens counted since the
 * previous one. */
/* The last key each CPU reported or counted, and the opens it counted
 * since without the hash lookup: a storm of one file by one process (a
 * loader re-reading its weights) costs a compare per open. Those counts go
 * to the key's open_repeats entry when another key takes the slot. */
struct repeat_cache {
	struct repeat_key k;
	__u64 last_ns; /* the key's last report */
	__u32 pending;
	__u32 valid;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct repeat_cache);
} repeat_cache_map SEC(".maps");

static __always_inline void repeat_key_of(struct task_struct *t, struct file *fp, __u32 flags, struct repeat_key *k)
{
	struct file *f = KCAST(struct file, fp);
	struct inode *ino = f->f_inode;
	k->ino = ino->i_ino;
	k->exec_id = t->self_exec_id;
	k->dev = ino->i_sb->s_dev;
	k->tgid = t->tgid;
	k->fmode = flags & KS_O_FMODE;
	k->_pad = 0;
}

static __always_inline bool repeat_key_eq(struct repeat_key *a, struct repeat_key *b)
{
	return a->ino == b->ino && a->dev == b->dev && a->tgid == b->tgid && a->exec_id == b->exec_id &&
	       a->fmode == b->fmode;
}

/* repeat_cached reports whether this successful open repeats, within the
 * window, the key this CPU last reported or counted (and counts it). It
 * runs before the name filter: a cached key was matched when reported. */
static __always_inline bool repeat_cached(struct task_struct *t, struct file *fp, __u32 flags)
{
	if (!repeat_window_ns)
		return false;
	__u32 zero = 0;
	struct repeat_cache *c = bpf_map_lookup_elem(&repeat_cache_map, &zero);
	if (!c || !c->valid)
		return false;
	if (c->k.ino != KCAST(struct file, fp)->f_inode->i_ino) /* the cheap test first */
		return false;
	struct repeat_key k;
	repeat_key_of(t, fp, flags, &k);
	if (!repeat_key_eq(&c->k, &k) || bpf_ktime_get_boot_ns() - c->last_ns >= repeat_window_ns)
		return false;
	c->pending++;
	count_drop(DROP_OPEN_REPEAT);
	return true;
}

/* repeat_cache_set makes k this CPU's cached key, first handing the counts
 * of the key it replaces to that key's open_repeats entry. */
static __always_inline void repeat_cache_set(struct repeat_key *k, __u64 last_ns)
{
	__u32 zero = 0;
	struct repeat_cache *c = bpf_map_lookup_elem(&repeat_cache_map, &zero);
	if (!c)
		return;
	if (c->valid && c->pending && !repeat_key_eq(&c->k, k)) {
		struct repeat_val *old = bpf_map_lookup_elem(&open_repeats, &c->k);
		if (old)
			__sync_fetch_and_add(&old->suppressed, c->pending);
	}
	if (!c->valid || !repeat_key_eq(&c->k, k)) {
		c->k = *k;
		c->pending = 0;
	}
	c->last_ns = last_ns;
	c->valid = 1;
}

/* The possible CPUs, for repeat_cache_take. Set by the loader. */
volatile const __u32 nr_cpus = 1;

struct repeat_take {
	struct repeat_key *k;
	__u32 sum;
};

static long repeat_take_cpu(__u64 cpu, void *data)
{
	struct repeat_take *rt = data;
	__u32 zero = 0;
	struct repeat_cache *c = bpf_map_lookup_percpu_elem(&repeat_cache_map, &zero, cpu);
	if (c && c->valid && c->pending && repeat_key_eq(&c->k, rt->k)) {
		rt->sum += c->pending;
		c->pending = 0; /* racing with that CPU's increment loses at most a few: the drop counter has them */
	}
	return 0;
}

/* repeat_cache_take collects and clears the counts every CPU's cache holds
 * for k: the process may have moved between CPUs while it repeated. Runs
 * once per report of a repeated key. */
static __always_inline __u32 repeat_cache_take(struct repeat_key *k)
{
	struct repeat_take rt = {.k = k};
	bpf_loop(nr_cpus, repeat_take_cpu, &rt, 0);
	return rt.sum;
}

static __always_inline bool repeated(struct task_struct *t, struct file *fp, __u32 flags, __u32 *repeats)
{
	*repeats = 0;
	if (!repeat_window_ns)
		return false;
	struct repeat_key k;
	repeat_key_of(t, fp, flags, &k);
	__u64 now = bpf_ktime_get_boot_ns();
	struct repeat_val *v = bpf_map_lookup_elem(&open_repeats, &k);
	if (v) {
		if (now - v->last_ns < repeat_window_ns) {
			__sync_fetch_and_add(&v->suppressed, 1);
			count_drop(DROP_OPEN_REPEAT);
			repeat_cache_set(&k, v->last_ns);
			return true;
		}
		/* No atomic exchange before cpu v3: an increment racing with
		 * this read is lost from the next report's count (the drop
		 * counter has it). Counts still cached on other CPUs arrive
		 * with a later report. */
		*repeats = v->suppressed + repeat_cache_take(&k);
		v->suppressed = 0;
		v->last_ns = now;
		repeat_cache_set(&k, now);
		return false;
	}
	struct repeat_val nv = {.last_ns = now};
	bpf_map_update_elem(&open_repeats, &k, &nv, BPF_ANY);
	repeat_cache_set(&k, now);
	return false;
}

#define KS_AT_FDCWD -100

/* open_call_args decodes the arguments of call (a constant once inlined). */
static __always_inline void open_call_args(__u16 call, struct sys_args *a, struct open_argv *oc)
{
	switch (call) {
	case CALL_OPEN:
		oc->path = a->a[0];
		oc->dirfd = KS_AT_FDCWD;
		oc->flags = a->a[1];
		oc->mode = a->a[2];
		break;
	case CALL_CREAT: /* creat(path, mode) == open(path, O_CREAT|O_WRONLY|O_TRUNC, mode) */
		oc->path = a->a[0];
		oc->dirfd = KS_AT_FDCWD;
		oc->flags = 0x40 | 0x1 | 0x200;
		oc->mode = a->a[1];
		break;
	case CALL_OPENAT2: {
		struct open_how how = {};
		bpf_probe_read_user(&how, sizeof(how), (void *)a->a[2]);
		oc->path = a->a[1];
		oc->dirfd = a->a[0];
		oc->flags = how.flags;
		oc->mode = how.mode;
		break;
	}
	case CALL_OPEN_BY_HANDLE: /* (mount_fd, handle, flags): no path */
		oc->path = 0;
		oc->dirfd = a->a[0];
		oc->flags = a->a[2];
		oc->mode = 0;
		break;
	default:
		oc->path = a->a[1];
		oc->dirfd = a->a[0];
		oc->flags = a->a[2];
		oc->mode = a->a[3];
	}
}

static const char nsfs_fmt[] = "%s:[%u]";

/* nsfs_name writes the name /proc/<pid>/fd shows for a namespace file,
 * "uts:[4026531838]", into dst (PATH_SLOT bytes) and returns its length:
 * nsfs dentries have an empty name that the kernel formats on demand. */
static __always_inline __u32 nsfs_name(struct inode *ino, char *dst, __u32 plen)
{
	struct ns_common *ns = KCAST(struct ns_common, ino->i_private);
	__u64 data[2] = {(__u64)BPF_CORE_READ(ns, ops, name), ns->inum};
	long n = bpf_snprintf(dst, 64, nsfs_fmt, data, sizeof(data));
	return n > 1 ? n - 1 : plen;
}

/* open_emit builds the record of an open in s->rec from the raw path in
 * s->raw (raw_n bytes with the NUL, 0 for none) and the result, and sends
 * it. id->f is the opened file, or NULL. */
static __always_inline void open_emit(struct open_scratch *s, struct task_struct *t)
{
	struct open_pending *pd = &s->pd;
	struct open_ident *id = &pd->id;
	struct open_argv *oc = &pd->oc;
	long ret = pd->ret;
	__u16 call = pd->call;
	__u16 rflags = pd->rflags;
	struct open_rec *r = &s->rec;
	bool trunc = false;

	if (pd->have_hdr) {
		r->h = pd->hdr;
		r->h.type = REC_OPEN;
	} else {
		fill_hdr(&r->h, REC_OPEN, 0);
	}
	r->result = ret;
	r->flags = oc->flags;
	r->mode = oc->mode;
	r->dirfd = oc->dirfd;
	r->ino = 0;
	r->size = 0;
	r->dev = 0;
	r->rdev = 0;
	r->call = call;
	r->imode = 0;
	r->match = id->match;
	r->knob = id->knob;
	r->repeats = pd->repeats;
	r->target = id->target;

	__u32 n = pd->raw_n < 0 ? 0 : pd->raw_n;
	if (n > RAW_SLOT) /* the string read stops at RAW_SLOT bytes */
		n = RAW_SLOT;
	if (n < 1) {
		n = 1;
		s->raw[0] = 0;
	}
	if (n == RAW_SLOT)
		rflags |= OPEN_F_RAW_TRUNC;
	/* Masked once, and the masked value used throughout: clang knows
	 * n <= RAW_SLOT and would drop the masks, the verifier does not. */
	barrier_var(n);
	n &= RAW_SLOT * 2 - 1;
	bpf_probe_read_kernel(r->data, n, s->raw);
	r->data[(n - 1) & (RAW_SLOT - 1)] = 0;
	r->raw_len = n - 1;

	char *dst = &r->data[n];
	__u32 plen = 0;
	if (id->f) {
		struct file *f = KCAST(struct file, id->f);
		struct path p;
		p.dentry = f->f_path.dentry;
		p.mnt = f->f_path.mnt;
		plen = resolve_path(&p, dst, &trunc);
		rflags |= OPEN_F_PATH_KERNEL;
		struct inode *ino = f->f_inode;
		if (id->match & MATCH_NSFS)
			plen = nsfs_name(ino, dst, plen);
		r->ino = ino->i_ino;
		r->size = ino->i_size;
		r->dev = ino->i_sb->s_dev;
		r->imode = ino->i_mode;
		if ((r->imode & S_IFMT_K) == S_IFBLK_K || (r->imode & S_IFMT_K) == S_IFCHR_K)
			r->rdev = ino->i_rdev;
	} else if (ret < 0 && n > 1) {
		struct path p;
		if (s->raw[0] != '/') {
			int dirfd = oc->dirfd;
			if (call == CALL_OPEN || call == CALL_CREAT)
				dirfd = KS_AT_FDCWD;
			if (base_dir(t, dirfd, &p)) {
				plen = resolve_path(&p, dst, &trunc);
				rflags |= OPEN_F_PATH_BASE;
			}
		} else {
			/* A chrooted caller's "/" is its root directory: the walk of
			 * the root says which (it is "/" when not chrooted). */
			struct fs_struct *fs = t->fs;
			p.dentry = fs->root.dentry;
			p.mnt = fs->root.mnt;
			plen = resolve_path(&p, dst, &trunc);
			if (plen > 1 || trunc)
				rflags |= OPEN_F_PATH_ROOT;
			else
				plen = 0;
		}
	}
	if (trunc) {
		rflags |= OPEN_F_PATH_TRUNC;
		count_drop(DROP_PATH_TOO_LONG);
	}
	if (plen >= PATH_SLOT)
		plen = PATH_SLOT - 1;
	barrier_var(plen);
	plen &= PATH_SLOT - 1;
	if (plen == 0)
		dst[0] = 0;
	r->path_len = plen;
	r->rflags = rflags;
	__u32 size = offsetof(struct open_rec, data) + n + plen + 1; /* < sizeof(*r) */
	r->h.size = size;
	if (bpf_ringbuf_output(&events, r, size, submit_flags()) < 0)
		count_drop(DROP_RINGBUF_RESERVE);
}

/* Tail-call targets on sys_exit besides the syscall handlers (the loader
 * fills them: internal/runtime/syscalls.go). */
#define TAIL_OPEN_EMIT 0
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} sys_exit_tails SEC(".maps");

/* tail_open_emit sends the open that an exit handler decided on: a program
 * of its own, so that the verifier checks the record building (a path
 * walk) once and apart from the filter, each within its budget. */
SEC("tp_btf/sys_exit")
int BPF_PROG(tail_open_emit, struct pt_regs *regs, long ret)
{
	__u32 zero = 0;
	struct open_scratch *s = bpf_map_lookup_elem(&open_scratch_map, &zero);
	if (s)
		open_emit(s, bpf_get_current_task_btf());
	return 0;
}

/* open_exit decides one open call at its sys_exit, from the argument
 * registers (still the call's at sys_exit) and the result, and hands a
 * report to tail_open_emit. The dispatcher calls it inline for the slots of
 * the open family (sys_open_call). */
static __always_inline void open_exit(void *ctx, struct pt_regs *regs, long ret, __u16 call)
{
	if (is_self())
		return;
	__u32 zero = 0;
	struct open_scratch *s = bpf_map_lookup_elem(&open_scratch_map, &zero);
	if (!s)
		return;
	struct task_struct *t = bpf_get_current_task_btf();
	struct sys_args a;
	struct open_argv oc;
	sys_args_get(regs, &a);
	open_call_args(call, &a, &oc);
	struct open_ident id = {};
	if (ret >= 0) {
		struct file *f = fd_file(t, ret);
		if (f) {
			if (repeat_cached(t, f, oc.flags))
				return;
			identify(t, f, &id);
		}
	}
	long n = 0;
	if (oc.path)
		n = bpf_probe_read_user_str(s->raw, RAW_SLOT, (const char *)oc.path);
	if (call == CALL_OPEN_BY_HANDLE) {
		id.match |= MATCH_CALL;
	} else if (!id.match) {
		if (n <= 1 || !name_watched(s, n - 1, oc.dirfd))
			return;
		id.match = MATCH_NAME;
	}
	__u32 repeats = 0;
	if (id.f && repeated(t, (struct file *)id.f, oc.flags, &repeats))
		return;
	struct open_pending *pd = &s->pd;
	pd->id = id;
	pd->oc = oc;
	pd->ret = ret;
	pd->raw_n = n;
	pd->repeats = repeats;
	pd->call = call;
	pd->rflags = a.compat ? OPEN_F_COMPAT : 0;
	pd->have_hdr = 0;
	bpf_tail_call(ctx, &sys_exit_tails, TAIL_OPEN_EMIT);
	count_drop(DROP_RINGBUF_RESERVE); /* no emitter in the array: the report is lost */
}
