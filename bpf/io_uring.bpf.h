/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* File operations submitted through io_uring: IORING_OP_OPENAT and
 * OPENAT2, RENAMEAT, UNLINKAT, LINKAT and SYMLINKAT open, rename and
 * delete files with no open(2), rename(2) ... syscall at all. They are
 * reported as the same records as the syscalls (REC_OPEN, REC_SYSCALL),
 * flagged io_uring.
 *
 * Two tp_btf programs: io_uring_submit_req fires once the request is
 * prepared, with its path names already copied into kernel memory (struct
 * filename), so what is read is what the kernel will use; the request is
 * staged in iou_staged, keyed by its address, with the submitter's header.
 * io_uring_complete fires with its result (an fd for an open); the staged
 * request is taken back and reported: an open by the name filter (decided
 * at submission) or by the identity of the file it opened, exactly as
 * open.bpf.h decides a syscall; the path operations when a path is watched.
 * Every other opcode (reads, sends: K2b's network side) costs one load and
 * compare in each program.
 *
 * Not covered: an open into a fixed-file slot has no fd, so it is decided
 * by name only (flagged OPEN_F_FIXED_SLOT); IORING_OP_MKDIRAT has no
 * syscall counterpart in the capture; a request whose completion is
 * skipped (IOSQE_CQE_SKIP_SUCCESS) leaves its stage to the LRU. The tracepoint
 * signatures are the kernel's since 6.0: the programs are optional, and a
 * kernel with other ones loads the sensor without them (logged). */
#pragma once

#include "syscalls.bpf.h"

#define KS_IORING_OP_OPENAT 18
#define KS_IORING_OP_OPENAT2 28
#define KS_IORING_OP_RENAMEAT 35
#define KS_IORING_OP_UNLINKAT 36
#define KS_IORING_OP_SYMLINKAT 38
#define KS_IORING_OP_LINKAT 39

static __always_inline bool iou_file_op(__u8 op)
{
	return op == KS_IORING_OP_OPENAT || op == KS_IORING_OP_OPENAT2 || op == KS_IORING_OP_RENAMEAT ||
	       op == KS_IORING_OP_UNLINKAT || op == KS_IORING_OP_SYMLINKAT || op == KS_IORING_OP_LINKAT;
}

/* A request between submission and completion. */
struct iou_stage {
	struct rec_hdr hdr; /* the submitter's */
	__s32 dfd, dfd2;
	__u32 flags, mode;
	__u32 file_slot;
	__u16 raw_n, raw2_n; /* bytes read with the NUL, 0 for none */
	__u8 op;
	__u8 named; /* an open whose name matched the filter at submission */
	__u16 _pad;
	char raw[RAW_SLOT];
	char raw2[RAW_SLOT];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 512);
	__type(key, __u64); /* the request's address */
	__type(value, struct iou_stage);
} iou_staged SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct iou_stage);
} iou_scratch SEC(".maps");

/* iou_cmd casts the request's command area to the opcode's struct. */
#define IOU_CMD(type, req) KCAST(type, (__u64)(req) + bpf_core_field_offset(struct io_kiocb, cmd))

/* iou_name copies the kernel string of fn into dst (RAW_SLOT bytes) and
 * returns the bytes read with the NUL, 0 for none. */
static __always_inline __u16 iou_name(char *dst, struct filename *fn)
{
	if (!fn)
		return 0;
	long n = bpf_probe_read_kernel_str(dst, RAW_SLOT, KCAST(struct filename, fn)->name);
	return n > 0 ? n : 0;
}

/* iou_watched runs the open filter on a staged name (n bytes with the
 * NUL). */
static __always_inline bool iou_watched(struct open_scratch *s, const char *name, __u16 n, int dfd)
{
	if (n <= 1)
		return false;
	bpf_probe_read_kernel(s->raw, RAW_SLOT, name);
	return name_watched(s, n - 1, dfd);
}

SEC("tp_btf/io_uring_submit_req")
int BPF_PROG(kestrel_iou_submit_optional, struct io_kiocb *req)
{
	__u8 op = req->opcode;
	if (!iou_file_op(op) || is_self())
		return 0;
	__u32 zero = 0;
	struct iou_stage *st = bpf_map_lookup_elem(&iou_scratch, &zero);
	struct open_scratch *s = bpf_map_lookup_elem(&open_scratch_map, &zero);
	if (!st || !s)
		return 0;
	fill_hdr(&st->hdr, 0, 0);
	st->op = op;
	st->named = 0;
	st->dfd2 = KS_AT_FDCWD;
	st->flags = 0;
	st->mode = 0;
	st->file_slot = 0;
	st->raw_n = 0;
	st->raw2_n = 0;
	bool want = false;
	switch (op) {
	case KS_IORING_OP_OPENAT:
	case KS_IORING_OP_OPENAT2: {
		struct io_open *o = IOU_CMD(struct io_open, req);
		st->dfd = o->dfd;
		st->flags = o->how.flags;
		st->mode = o->how.mode;
		st->file_slot = o->file_slot;
		st->raw_n = iou_name(st->raw, o->filename);
		st->named = iou_watched(s, st->raw, st->raw_n, st->dfd);
		want = true; /* decided at completion, on the file too */
		break;
	}
	case KS_IORING_OP_UNLINKAT: {
		struct io_unlink *u = IOU_CMD(struct io_unlink, req);
		st->dfd = u->dfd;
		st->flags = u->flags;
		st->raw_n = iou_name(st->raw, u->filename);
		want = iou_watched(s, st->raw, st->raw_n, st->dfd);
		break;
	}
	default: { /* RENAMEAT, LINKAT, SYMLINKAT: io_rename and io_link share a layout */
		struct io_link *l = IOU_CMD(struct io_link, req);
		st->dfd = l->old_dfd;
		st->dfd2 = l->new_dfd;
		st->flags = l->flags;
		st->raw_n = iou_name(st->raw, l->oldpath);
		st->raw2_n = iou_name(st->raw2, l->newpath);
		int dfd = op == KS_IORING_OP_SYMLINKAT ? KS_AT_FDCWD : st->dfd; /* a symlink's target is any string */
		want = iou_watched(s, st->raw, st->raw_n, dfd) || iou_watched(s, st->raw2, st->raw2_n, st->dfd2);
	}
	}
	if (want) {
		__u64 key = (__u64)req;
		bpf_map_update_elem(&iou_staged, &key, st, BPF_ANY);
	}
	return 0;
}

/* iou_open_done reports a staged open with its result res. */
static __always_inline void iou_open_done(struct iou_stage *st, struct task_struct *t, __s32 res)
{
	__u32 zero = 0;
	struct open_scratch *s = bpf_map_lookup_elem(&open_scratch_map, &zero);
	if (!s)
		return;
	struct open_pending *pd = &s->pd;
	__builtin_memset(&pd->id, 0, sizeof(pd->id));
	__u16 rflags = OPEN_F_IO_URING;
	if (st->file_slot)
		rflags |= OPEN_F_FIXED_SLOT; /* res is 0, not an fd */
	else if (res >= 0) {
		struct file *f = fd_file(t, res);
		if (f)
			identify(t, f, &pd->id);
	}
	if (!pd->id.match) {
		if (!st->named)
			return;
		pd->id.match = MATCH_NAME;
	}
	__u32 repeats = 0;
	if (pd->id.f && repeated(t, (struct file *)pd->id.f, st->flags, &repeats))
		return;
	__u16 n = st->raw_n;
	bpf_probe_read_kernel(s->raw, RAW_SLOT, st->raw);
	pd->oc.path = 0;
	pd->oc.dirfd = st->dfd;
	pd->oc.flags = st->flags;
	pd->oc.mode = st->mode;
	pd->ret = res;
	pd->raw_n = n;
	pd->repeats = repeats;
	pd->call = st->op == KS_IORING_OP_OPENAT2 ? CALL_OPENAT2 : CALL_OPENAT;
	pd->rflags = rflags;
	pd->hdr = st->hdr;
	pd->have_hdr = 1;
	open_emit(s, t);
}

/* iou_path_done reports a staged rename, unlink, link or symlink. */
static __always_inline void iou_path_done(struct iou_stage *st, __s32 res)
{
	__u32 zero = 0;
	struct sys_rec *r = bpf_map_lookup_elem(&sys_scratch, &zero);
	if (!r)
		return;
	struct sys_args a = {};
	__u16 call = SYS_RENAME;
	if (st->op == KS_IORING_OP_UNLINKAT)
		call = SYS_UNLINK;
	else if (st->op == KS_IORING_OP_LINKAT)
		call = SYS_LINK;
	else if (st->op == KS_IORING_OP_SYMLINKAT)
		call = SYS_SYMLINK;
	sys_begin(r, call, &a, SYS_F_IO_URING);
	r->h = st->hdr;
	r->h.type = REC_SYSCALL;
	r->h.size = sizeof(*r);
	r->fd = call == SYS_SYMLINK ? -1 : st->dfd;
	r->fd2 = call == SYS_UNLINK ? -1 : st->dfd2;
	if (call == SYS_UNLINK)
		r->flags = st->flags;
	else
		r->arg2 = st->flags;
	__u16 n = st->raw_n, n2 = st->raw2_n;
	if (n > 1) {
		bpf_probe_read_kernel(r->path, RAW_SLOT, st->raw);
		r->path[(n - 1) & (RAW_SLOT - 1)] = 0;
		r->path_len = (n - 1) & (RAW_SLOT - 1);
	}
	if (n2 > 1) {
		bpf_probe_read_kernel(r->path2, RAW_SLOT, st->raw2);
		r->path2[(n2 - 1) & (RAW_SLOT - 1)] = 0;
		r->path2_len = (n2 - 1) & (RAW_SLOT - 1);
	}
	if (n >= RAW_SLOT || n2 >= RAW_SLOT)
		r->sflags |= SYS_F_PATH_TRUNC;
	sys_emit(r, res);
}

SEC("tp_btf/io_uring_complete")
int BPF_PROG(kestrel_iou_complete_optional, struct io_ring_ctx *rctx, void *req, struct io_uring_cqe *cqe)
{
	if (!req)
		return 0;
	__u8 op = KCAST(struct io_kiocb, req)->opcode;
	if (!iou_file_op(op))
		return 0;
	__u64 key = (__u64)req;
	struct iou_stage *staged = bpf_map_lookup_elem(&iou_staged, &key);
	if (!staged)
		return 0;
	__u32 zero = 0;
	struct iou_stage *st = bpf_map_lookup_elem(&iou_scratch, &zero);
	if (!st)
		return 0;
	bpf_probe_read_kernel(st, sizeof(*st), staged);
	bpf_map_delete_elem(&iou_staged, &key);
	__s32 res = cqe->res;
	if (st->op == KS_IORING_OP_OPENAT || st->op == KS_IORING_OP_OPENAT2)
		iou_open_done(st, bpf_get_current_task_btf(), res);
	else
		iou_path_done(st, res);
	return 0;
}
