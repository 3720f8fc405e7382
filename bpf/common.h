/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared definitions for every Kestrel BPF program: the record header that
 * user space decodes, the one event ring buffer, and the per-CPU drop
 * counters. The layout here is a contract with internal/runtime/decode*.go. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

/* Record types. Numbers are part of the user-space contract. */
enum record_type {
	REC_EXEC = 1,
	REC_FORK = 2,
	REC_EXIT = 3,
	REC_OPEN = 4,
	REC_CGROUP = 5, /* cgroup.bpf.h */
	/* 10..19: network (net.bpf.h) */
	REC_CONNECT = 10,
	REC_SOCK_STATS = 11,
	REC_ACCEPT = 12,
	REC_SOCK_CLOSED = 13,
	/* 20..29: escape-primitive syscalls */
	REC_SYSCALL = 20,
};

/* Every record starts with this header. */
struct rec_hdr {
	__u16 type;     /* enum record_type */
	__u16 size;     /* bytes of the whole record, header included */
	__u32 tgid;
	__u32 tid;
	__u32 uid;
	__u32 euid;
	__u32 _pad;
	__u64 ts_ns;    /* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id;/* cgroup v2 id of the task */
	char comm[16];
};

/* Drop sources, indexes into the per-CPU drops array. */
enum drop_source {
	DROP_RINGBUF_RESERVE = 0, /* ring buffer full */
	DROP_PATH_TOO_LONG = 1,   /* path truncated (still sent, counted) */
	DROP_INFLIGHT = 2,        /* no task storage for a watched call in flight */
	DROP_OPEN_REPEAT = 3,     /* an open repeating a reported one: counted, not sent */
	DROP_MAX = 8,
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized from config by the loader */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* The sensor's own tgid: its events are never reported. Set by the loader. */
volatile const __u32 self_tgid = 0;

/* Wake user space only when the ring holds at least this many bytes; below it
 * the reader polls on a timer. Set by the loader. */
volatile const __u64 wakeup_bytes = 1 << 20;

static __always_inline void count_drop(__u32 src)
{
	__u64 *v = bpf_map_lookup_elem(&drops, &src);
	if (v)
		*v += 1;
}

static __always_inline void fill_hdr(struct rec_hdr *h, __u16 type, __u16 size)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();

	h->type = type;
	h->size = size;
	h->tgid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->uid = (__u32)uid_gid;
	h->euid = BPF_CORE_READ(t, cred, euid.val);
	h->_pad = 0;
	h->ts_ns = bpf_ktime_get_boot_ns();
	h->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* submit_flags returns BPF_RB_NO_WAKEUP unless the ring is filling up, so
 * that a burst is drained in one wakeup instead of one per event. */
static __always_inline __u64 submit_flags(void)
{
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline bool is_self(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == self_tgid;
}
