/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared definitions for every Kestrel BPF program: the record header that
 * user space decodes, the one event ring buffer, the per-CPU drop counters,
 * and the flood controls every record passes through (emit_record). The
 * layout here is a contract with internal/runtime/decode*.go. */
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
	__u32 flags;    /* HDR_F_*, set by emit_record */
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
	DROP_RATE_LIMIT = 4,      /* a bulk record over its cgroup's rate */
	DROP_PRIO_RINGBUF = 5,    /* a priority record the ring had no room for, headroom included */
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
	h->flags = 0;
	h->ts_ns = bpf_ktime_get_boot_ns();
	h->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* Floods don't choose what is lost.
 *
 * A process that opens a watched file in a loop can fill the ring buffer,
 * and then the kernel drops whatever comes next: a core_pattern write, a
 * signal to the sensor. So every record has a class:
 *
 *   CLASS_PRIO  security-relevant records: escape-primitive syscalls
 *               (io_uring's too), writes to watched files, opens of
 *               kernel knobs, devices, foreign namespace files and by
 *               handle (open.bpf.h's open_class), signals and bpf(2)
 *               operations on the sensor, cgroup records. The last priority_headroom
 *               bytes of the ring are theirs: bulk records are refused
 *               before they reach it. They wake the reader at once.
 *   CLASS_BULK  everything else (exec, fork, exit, reads, connects,
 *               accepts, socket reports and closes).
 *
 * And every cgroup has a budget (a GCRA token bucket per cgroup id in the
 * bounded LRU cg_budget): bulk records past its rate and burst are dropped
 * in the kernel, at once and cheaply, so one container's flood costs that
 * container's events and not its neighbours'. Priority records past their
 * own budget are not dropped but sent as bulk (counted as demoted): a flood
 * of mount() calls cannot take the headroom from others either.
 *
 * Every record dropped is counted twice: in drops[] (the exact total) and
 * in flood_cg under the cgroup that lost it, with the last process, so
 * that user space reports which container caused the loss. An LRU eviction
 * of a flood_cg entry loses only the attribution, never the count.
 *
 * The budgets are set by the loader from capture.flood; 0 turns one off. */
#define CLASS_BULK 0
#define CLASS_PRIO 1

/* rec_hdr.flags */
#define HDR_F_PRIO (1 << 0)    /* sent as a priority record */
#define HDR_F_DEMOTED (1 << 1) /* a priority record over its cgroup's budget, sent as bulk */

/* bulk_room: the ring bytes bulk records may fill (ring size minus the
 * priority headroom); 0: no headroom. *_cost_ns: 1e9 / records per second
 * per cgroup; *_burst_ns: (burst - 1) * cost. Set by the loader. */
volatile const __u64 bulk_room = 0;
volatile const __u64 bulk_cost_ns = 0;
volatile const __u64 bulk_burst_ns = 0;
volatile const __u64 prio_cost_ns = 0;
volatile const __u64 prio_burst_ns = 0;

/* A cgroup's budget: the GCRA theoretical arrival time of its next bulk
 * and priority record (boot ns). Updated without a lock: two CPUs racing
 * may let a record or two more through, never fewer. */
struct cg_budget {
	__u64 bulk_tat;
	__u64 prio_tat;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct cg_budget);
} cg_budget SEC(".maps");

/* Why a cgroup lost records: flood_stat.lost index; a contract with
 * internal/runtime/flood.go. */
enum flood_cause {
	FLOOD_RATE = 0,      /* over the cgroup's bulk rate (DROP_RATE_LIMIT) */
	FLOOD_RING = 1,      /* a bulk record refused at the headroom, or the ring full (DROP_RINGBUF_RESERVE) */
	FLOOD_PRIO_RING = 2, /* a priority record the ring had no room for (DROP_PRIO_RINGBUF) */
	FLOOD_CAUSES = 4,
};

struct flood_stat {
	__u64 lost[FLOOD_CAUSES];
	__u64 demoted;  /* priority records sent as bulk */
	__u64 last_ns;  /* the last loss */
	__u32 tgid;     /* the process that lost the last record */
	__u32 _pad;
	char comm[16];
};

/* Records lost per cgroup id. Only cgroups that lost something are here. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct flood_stat);
} flood_cg SEC(".maps");

static __always_inline struct flood_stat *flood_stat_of(__u64 cg)
{
	struct flood_stat *s = bpf_map_lookup_elem(&flood_cg, &cg);
	if (s)
		return s;
	struct flood_stat z = {};
	bpf_map_update_elem(&flood_cg, &cg, &z, BPF_NOEXIST);
	return bpf_map_lookup_elem(&flood_cg, &cg);
}

/* flood_lost counts one record of h lost for cause (and in drops[src]). */
static __always_inline void flood_lost(const struct rec_hdr *h, __u32 cause, __u32 src)
{
	count_drop(src);
	struct flood_stat *s = flood_stat_of(h->cgroup_id);
	if (!s)
		return; /* drops[] has it; user space reports it unattributed */
	__sync_fetch_and_add(&s->lost[cause & (FLOOD_CAUSES - 1)], 1);
	s->last_ns = h->ts_ns;
	s->tgid = h->tgid;
	__builtin_memcpy(s->comm, h->comm, sizeof(s->comm));
}

/* gcra_take takes one record from the budget at *tat: false when the
 * cgroup is past its rate and burst. */
static __always_inline bool gcra_take(__u64 *tat, __u64 now, __u64 cost, __u64 burst)
{
	__u64 t = *tat;
	if (t < now)
		t = now;
	if (t - now > burst)
		return false;
	*tat = t + cost;
	return true;
}

static __always_inline struct cg_budget *cg_budget_of(__u64 cg)
{
	struct cg_budget *b = bpf_map_lookup_elem(&cg_budget, &cg);
	if (b)
		return b;
	struct cg_budget z = {};
	bpf_map_update_elem(&cg_budget, &cg, &z, BPF_NOEXIST);
	return bpf_map_lookup_elem(&cg_budget, &cg);
}

/* admit decides whether the record with header h (size bytes, class cls)
 * may go into the ring, sets h->flags, and returns the submit flags, or
 * -1 when the record is dropped (counted). */
static __always_inline long admit(struct rec_hdr *h, __u32 size, __u32 cls)
{
	h->flags = 0;
	if (cls == CLASS_PRIO && prio_cost_ns) {
		struct cg_budget *b = cg_budget_of(h->cgroup_id);
		if (b && !gcra_take(&b->prio_tat, bpf_ktime_get_boot_ns(), prio_cost_ns, prio_burst_ns)) {
			cls = CLASS_BULK;
			h->flags = HDR_F_DEMOTED;
			struct flood_stat *s = flood_stat_of(h->cgroup_id);
			if (s)
				__sync_fetch_and_add(&s->demoted, 1);
		}
	}
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (cls == CLASS_PRIO) {
		h->flags = HDR_F_PRIO;
		return BPF_RB_FORCE_WAKEUP;
	}
	if (bulk_cost_ns) {
		/* The clock, not the header's time: a connect's record is sent
		 * when its handshake ends, seconds after its header was made. */
		struct cg_budget *b = cg_budget_of(h->cgroup_id);
		if (b && !gcra_take(&b->bulk_tat, bpf_ktime_get_boot_ns(), bulk_cost_ns, bulk_burst_ns)) {
			flood_lost(h, FLOOD_RATE, DROP_RATE_LIMIT);
			return -1;
		}
	}
	if (bulk_room && avail + size > bulk_room) {
		flood_lost(h, FLOOD_RING, DROP_RINGBUF_RESERVE);
		return -1;
	}
	return avail >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* record_admit and record_refused are global functions, not inlined: the
 * verifier checks each once instead of at every emit site. Inlined, their
 * branches multiplied the states of programs with many emit sites (the
 * io_uring completion and connect_unix programs passed the verifier's
 * 1M-instruction limit and were left out). */
__noinline long record_admit(struct rec_hdr *h, __u32 size, __u32 cls)
{
	if (!h)
		return -1;
	return admit(h, size, cls);
}

__noinline int record_refused(struct rec_hdr *h)
{
	if (!h)
		return 0;
	if (h->flags & HDR_F_PRIO)
		flood_lost(h, FLOOD_PRIO_RING, DROP_PRIO_RINGBUF);
	else
		flood_lost(h, FLOOD_RING, DROP_RINGBUF_RESERVE);
	return 0;
}

/* emit_record sends the record rec (size bytes, starting with its filled
 * header) as class cls, or counts why it could not. */
static __always_inline long emit_record(void *rec, __u32 size, __u32 cls)
{
	long fl = record_admit(rec, size, cls);
	if (fl < 0)
		return -1;
	if (bpf_ringbuf_output(&events, rec, size, fl) < 0) {
		record_refused(rec);
		return -1;
	}
	return 0;
}

static __always_inline bool is_self(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == self_tgid;
}
