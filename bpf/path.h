/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Absolute paths from a struct path, by walking dentries and mounts in BPF
 * (no bpf_d_path: it is only allowed from fentry/LSM, which this kernel
 * refuses). The walk is bounded: at most PATH_DEPTH components, each at most
 * NAME_SLOT bytes; a deeper path comes back truncated from the top and flagged.
 *
 * A dentry that is its own parent but not a mount root (pipes, sockets,
 * memfd, nsfs) has no path; its name alone is returned ("memfd:x",
 * "net:[4026531840]"), which is what /proc/<pid>/fd shows too. */
#pragma once

#include "records.h"

#define PATH_DEPTH 32
#define NAME_SLOT 256

/* Scratch buffer: the path is written backwards ending at PATH_SLOT - 1 and
 * the second half absorbs the overrun of a masked write. */
struct pathbuf {
	char b[PATH_SLOT * 2];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pathbuf);
} path_scratch SEC(".maps");


/* put_name writes "/" + name in front of off; returns the new offset or -1
 * when it does not fit. */
static __always_inline int put_name(struct pathbuf *pb, int off, struct dentry *d, bool slash)
{
	__u32 len = d->d_name.len;
	const unsigned char *name = d->d_name.name;
	if (len >= NAME_SLOT)
		len = NAME_SLOT - 1;
	int need = len + (slash ? 1 : 0);
	if (off <= need) /* keep off >= 1 so that len + 1 < PATH_SLOT */
		return -1;
	off -= need;
	off &= PATH_SLOT - 1;
	if (slash) {
		pb->b[off] = '/';
		bpf_probe_read_kernel(&pb->b[(off + 1) & (PATH_SLOT - 1)], len & (NAME_SLOT - 1), name);
	} else {
		bpf_probe_read_kernel(&pb->b[off], len & (NAME_SLOT - 1), name);
	}
	return off;
}

/* bpf_rdonly_cast turns a kernel address into a read-only BTF pointer; the
 * verifier inlines it, and loads through the result are plain loads guarded
 * by the exception table, so the walk makes one helper call per component
 * (the name copy) instead of five. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define KCAST(type, ptr) ((type *)bpf_rdonly_cast((const void *)(ptr), bpf_core_type_id_kernel(type)))

static __always_inline struct mount *mount_of(struct vfsmount *vm)
{
	__u64 a = (__u64)vm - bpf_core_field_offset(struct mount, mnt);
	return KCAST(struct mount, a);
}

/* resolve_path copies the absolute path of p into dst (PATH_SLOT bytes,
 * NUL-terminated) and returns its length; *trunc is set when the walk ran
 * out of depth or room. */
static __always_inline __u32 resolve_path(struct path *p, char *dst, bool *trunc)
{
	__u32 zero = 0;
	struct pathbuf *pb = bpf_map_lookup_elem(&path_scratch, &zero);
	*trunc = false;
	if (!pb) {
		dst[0] = 0;
		return 0;
	}
	struct dentry *d = KCAST(struct dentry, p->dentry);
	struct mount *m = mount_of(p->mnt);
	struct dentry *root = KCAST(struct dentry, m->mnt.mnt_root);
	struct mount *mp = KCAST(struct mount, m->mnt_parent);
	int off = PATH_SLOT - 1;
	pb->b[PATH_SLOT - 1] = 0;
	bool done = false;

	for (int i = 0; i < PATH_DEPTH; i++) {
		struct dentry *parent = KCAST(struct dentry, d->d_parent);
		if (d == root) {
			if (m == mp) { /* root of the mount namespace */
				done = true;
				break;
			}
			d = KCAST(struct dentry, m->mnt_mountpoint);
			m = mp;
			mp = KCAST(struct mount, m->mnt_parent);
			root = KCAST(struct dentry, m->mnt.mnt_root);
			continue;
		}
		if (d == parent) { /* pseudo file: its name is all there is */
			if (off == PATH_SLOT - 1) {
				int o = put_name(pb, off, d, false);
				if (o >= 0)
					off = o;
			}
			done = true;
			break;
		}
		int o = put_name(pb, off, d, true);
		if (o < 0) {
			*trunc = true;
			break;
		}
		off = o;
		d = parent;
	}
	if (!done)
		*trunc = true;
	if (off == PATH_SLOT - 1) { /* the root itself */
		off = PATH_SLOT - 2;
		pb->b[off] = '/';
	}
	__u32 len = (PATH_SLOT - 1) - off;
	off &= PATH_SLOT - 1;
	bpf_probe_read_kernel(dst, (len + 1) & (PATH_SLOT - 1), &pb->b[off]);
	dst[len & (PATH_SLOT - 1)] = 0;
	return len;
}
