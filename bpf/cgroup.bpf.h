/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Cgroup v2 ids and paths, from the kernel, as cgroups appear: user space
 * names a process's container from its cgroup path, and must know the path
 * of a cgroup before the first event of a process in it is enriched.
 *
 *   - cgroup_mkdir: every new cgroup of the default hierarchy, with its id and
 *     the path the tracepoint carries. The kernel computes that path only
 *     while a probe is attached (TRACE_CGROUP_PATH tests the tracepoint's
 *     static key) with cgroup_path(), which is kernfs_path() from the root of
 *     the hierarchy: not relative to any cgroup namespace, at most
 *     CGROUP_PATH_SLOT bytes.
 *   - cgroup_rmdir: the id is gone (user space forgets it after a grace).
 *   - cgroup_attach_task: a task moved into a cgroup not yet known (one that
 *     existed before the sensor and that its start-up walk missed).
 *   - exec and fork (process.bpf.h): a task whose cgroup is not yet known gets
 *     its path read here, from the kernfs names of the cgroup and its
 *     ancestors, in a record sent before the exec or fork record.
 *
 * cgroup_known holds the ids user space has a path for: those marked here
 * once their record is in the ring (which user space reads in order, so the
 * path arrives before any event of a process in the cgroup), and those the
 * loader fills from its start-up walk. An id not in it costs one record at
 * the next exec or fork in that cgroup, never a wrong attribution; an id in
 * it costs one hash lookup. */
#pragma once

#include "records.h"

#define CGROUP_DEPTH 16 /* kubepods paths are 4 to 6 deep; deeper is flagged */
#define CGROUP_NAME 256 /* a kernfs name, NAME_MAX plus the NUL */

struct {
	/* LRU: an evicted id is only sent again. A node has a few thousand
	 * cgroups; 16384 entries cost about 1 MiB. */
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_known SEC(".maps");

struct cgroup_scratch {
	struct cgroup_rec r;
	char spill[CGROUP_NAME]; /* absorbs a masked name copy past the slot */
	__u64 names[CGROUP_DEPTH]; /* name pointers (bpf2go maps no pointer arrays) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgroup_scratch);
} cgroup_scratch SEC(".maps");

/* Before 6.15 the parent pointer was kernfs_node::parent. */
struct kernfs_node___old {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(kn->__parent))
		return BPF_CORE_READ(kn, __parent);
	return BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
}

/* on_dfl reports whether cgrp belongs to the default (v2) hierarchy, the one
 * bpf_get_current_cgroup_id reports ids of: the same root as the current
 * task's v2 cgroup. v1 hierarchies fire the same tracepoints. */
static __always_inline bool on_dfl(struct cgroup *cgrp)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	return BPF_CORE_READ(cgrp, root) == BPF_CORE_READ(t, cgroups, dfl_cgrp, root);
}

/* kn_path writes the path of kn from the root of its hierarchy ("/a/b", "/"
 * for the root) into s->r.path and returns its length. A cgroup deeper than
 * CGROUP_DEPTH or a path longer than the slot sets CGROUP_F_TRUNC. */
static __always_inline __u32 kn_path(struct cgroup_scratch *s, struct kernfs_node *kn, __u16 *flags)
{
	int n = 0;
	for (int i = 0; i < CGROUP_DEPTH; i++) {
		struct kernfs_node *p = kn_parent(kn);
		if (!p) /* kn is the root, whose name is "" */
			break;
		s->names[i] = (__u64)BPF_CORE_READ(kn, name);
		n = i + 1;
		kn = p;
	}
	if (n == CGROUP_DEPTH && kn_parent(kn))
		*flags |= CGROUP_F_TRUNC;
	__u32 off = 0;
	for (int j = 0; j < CGROUP_DEPTH; j++) {
		int i = n - 1 - j;
		if (i < 0)
			break;
		if (off > CGROUP_PATH_SLOT - 2) {
			*flags |= CGROUP_F_TRUNC;
			break;
		}
		__u32 o = off;
		barrier_var(o); /* keep the masks: the verifier needs them */
		s->r.path[o & (CGROUP_PATH_SLOT - 1)] = '/';
		o = (o + 1) & (CGROUP_PATH_SLOT - 1);
		long len = bpf_probe_read_kernel_str(&s->r.path[o], CGROUP_NAME,
						     (const char *)s->names[i & (CGROUP_DEPTH - 1)]);
		if (len <= 0) {
			*flags |= CGROUP_F_TRUNC;
			break;
		}
		off += len; /* "/" and the name: len counts the NUL */
	}
	if (off == 0) {
		s->r.path[0] = '/';
		off = 1;
	}
	if (off > CGROUP_PATH_SLOT - 1) {
		off = CGROUP_PATH_SLOT - 1;
		*flags |= CGROUP_F_TRUNC;
	}
	barrier_var(off);
	off &= CGROUP_PATH_SLOT - 1;
	s->r.path[off] = 0;
	return off;
}

/* emit_cgroup sends the record in s with len bytes of path. A full path sent
 * for op other than rmdir marks id known. */
static __always_inline void emit_cgroup(struct cgroup_scratch *s, __u16 op, __u64 id, __u32 len, __u16 flags)
{
	fill_hdr(&s->r.h, REC_CGROUP, 0);
	s->r.id = id;
	s->r.op = op;
	s->r.flags = flags;
	s->r.path_len = len;
	s->r._pad = 0;
	if (flags & CGROUP_F_TRUNC)
		count_drop(DROP_PATH_TOO_LONG);
	__u32 size = offsetof(struct cgroup_rec, path) + len + 1;
	if (size > sizeof(s->r))
		size = sizeof(s->r);
	s->r.h.size = size;
	/* Priority: every later event's container comes from this record. */
	if (emit_record(&s->r, size, CLASS_PRIO) < 0)
		return;
	if (op != CGROUP_RMDIR && !(flags & CGROUP_F_TRUNC)) {
		__u8 one = 1;
		bpf_map_update_elem(&cgroup_known, &id, &one, BPF_ANY);
	}
}

static __always_inline struct cgroup_scratch *cgroup_buf(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&cgroup_scratch, &zero);
}

/* emit_traced sends cgrp with the path its tracepoint carries, or with the
 * path from its kernfs names where the tracepoint's is unusable. */
static __always_inline void emit_traced(__u16 op, struct cgroup *cgrp, const char *path)
{
	struct cgroup_scratch *s = cgroup_buf();
	if (!s)
		return;
	struct kernfs_node *kn = BPF_CORE_READ(cgrp, kn);
	__u64 id = BPF_CORE_READ(kn, id);
	__u16 flags = 0;
	__u32 len;
	long n = bpf_probe_read_kernel_str(s->r.path, CGROUP_PATH_SLOT, path);
	if (n > 1 && n <= CGROUP_PATH_SLOT && s->r.path[0] == '/') {
		len = n - 1;
		if (n == CGROUP_PATH_SLOT) /* the kernel's buffer is this size too */
			flags |= CGROUP_F_TRUNC;
	} else {
		len = kn_path(s, kn, &flags);
	}
	emit_cgroup(s, op, id, len, flags);
}

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(kestrel_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	if (on_dfl(cgrp))
		emit_traced(CGROUP_MKDIR, cgrp, path);
	return 0;
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(kestrel_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	if (!on_dfl(cgrp))
		return 0;
	struct cgroup_scratch *s = cgroup_buf();
	if (!s)
		return 0;
	__u64 id = BPF_CORE_READ(cgrp, kn, id);
	bpf_map_delete_elem(&cgroup_known, &id);
	s->r.path[0] = 0;
	emit_cgroup(s, CGROUP_RMDIR, id, 0, 0);
	return 0;
}

SEC("tp_btf/cgroup_attach_task")
int BPF_PROG(kestrel_cgroup_attach, struct cgroup *dst, const char *path, struct task_struct *task, bool threadgroup)
{
	if (!on_dfl(dst))
		return 0;
	__u64 id = BPF_CORE_READ(dst, kn, id);
	if (bpf_map_lookup_elem(&cgroup_known, &id))
		return 0;
	emit_traced(CGROUP_ATTACH, dst, path);
	return 0;
}

/* learn_task_cgroup sends the path of t's v2 cgroup unless it is known. */
static __always_inline void learn_task_cgroup(struct task_struct *t)
{
	struct kernfs_node *kn = t->cgroups->dfl_cgrp->kn; /* t is a tracepoint's typed task: direct loads */
	__u64 id = kn->id;
	if (!id || bpf_map_lookup_elem(&cgroup_known, &id))
		return;
	struct cgroup_scratch *s = cgroup_buf();
	if (!s)
		return;
	__u16 flags = 0;
	__u32 len = kn_path(s, kn, &flags);
	emit_cgroup(s, CGROUP_TASK, id, len, flags);
}
