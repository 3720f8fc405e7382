/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Network capture: connects (IPv4, IPv6, AF_UNIX), accepts, and the bytes
 * sent on every socket that can carry data off the node: initiated or
 * accepted, connected or not, TCP, UDP, raw and ICMP.
 *
 * Included once by sensor.bpf.c after common.h and dispatch.bpf.h. The loader
 * attaches every program here generically from its section name; cgroup
 * programs go to the cgroup v2 root.
 *
 * Bench floor: no separate empty version is kept here. The loader builds the
 * floor from this same object by replacing every program body with
 * "return 0" ("return 1" for cgroup programs), so the floor hooks exactly the
 * hooks below (runtime.LoadFloor).
 *
 * Connects. One record per connect, emitted when connect() returns, so that
 * it carries fd, source and result:
 *   cgroup/connect4, cgroup/connect6       destination, protocol and socket
 *       cookie as the kernel sees them. The hook reads the number of the
 *       syscall it runs under (bpf_task_pt_regs): under connect() it parks
 *       the record in the thread's task storage for the exit handler; under
 *       anything else (io_uring, i386 socketcall, TCP fast open through
 *       sendto/sendmsg, a kernel thread) it emits the record itself, with
 *       "via" saying which and CONN_F_RESULT/CONN_F_FD clear. There is no
 *       sys_enter handler: connect costs the dispatcher's bit test on entry,
 *       this hook, and exit_connect (measured: issue 15). Always return 1:
 *       the sensor never blocks.
 *   cgroup/connect_unix (kernel >= 6.7)    sun_path as copied into the kernel
 *       (abstract names keep their leading NUL; user space shows "@name").
 *       OPTIONAL: if it does not load, the loader leaves it out and
 *       exit_connect reads the path from the caller's memory.
 *   connect's sys_exit handler (exit_connect)  the result (0 or -errno), the fd
 *       (from the syscall's registers) and, for inet, the source address and
 *       port read from the socket the hook saw (bound by then). For a unix
 *       connect that succeeded, the peer as the server made it: the inode
 *       and device of the socket file it bound and the sun_path it bound
 *       (unix_sk(peer)->path and ->addr), whatever name the caller used.
 *   tp_btf/inet_sock_set_state             a non-blocking TCP connect that
 *       returns -EINPROGRESS with the handshake still running is parked in
 *       inflight_connect and emitted when the socket leaves SYN_SENT: result 0
 *       on ESTABLISHED, -sk_err on CLOSE (-ECONNABORTED if the caller gave up
 *       first). On loopback the handshake is done before connect() returns.
 *       It also gives every passively opened socket its cookie when the
 *       handshake completes, so that the accept record and the bytes sent
 *       later name the socket alike.
 *
 * Accepts (REC_ACCEPT, the conn_rec layout; daddr/dport are the remote peer):
 *   accept's and accept4's sys_exit handler (exit_accept)  the new fd's socket;
 *       io_uring ACCEPT (single and multishot) through tp_btf/io_uring_complete.
 *       An accept from a loopback peer is not reported: the peer is a process
 *       of this node whose connect is reported. The socket's byte accounting
 *       starts here with origin "accept".
 *
 * Bytes. tp_btf/sock_send_length fires after every sock_sendmsg: send,
 * sendto, sendmsg, sendmmsg, write, sendfile and splice into a socket (6.5+),
 * io_uring SEND/SENDMSG/SEND_ZC/WRITE, from any process. Every AF_INET and
 * AF_INET6 socket is accounted there, and AF_PACKET ones (frames for a
 * device, no IP destination), summed in the kernel (nothing is sent per
 * send), attributed to the process that sent last:
 *   - a socket with a peer (TCP, connected UDP/raw/ICMP): egress_socks, keyed
 *     by cookie, destination from the socket;
 *   - a send with its own destination (unconnected UDP sendto/sendmsg with
 *     msg_name, raw and ICMP sockets): egress_dgram, keyed by (cookie,
 *     destination). The destination of the call is armed in the thread's
 *     send_dst by cgroup/sendmsg4 and cgroup/sendmsg6 (UDP, the kernel's
 *     copy of msg_name) or cgroup_skb/egress (raw and ICMP sockets, which
 *     have no sendmsg hook: the destination of the packet the call put on the
 *     wire). A send on an unconnected socket with no armed destination (the
 *     packet was dropped before the egress hook) is counted with destination
 *     unknown (EG_F_NODST), never dropped.
 *   cgroup/sock_release                    final REC_SOCK_STATS (closed) for
 *       the socket's egress_socks entry, and REC_SOCK_CLOSED when the socket
 *       has egress_dgram entries (sk_dgram marks them): user space reports
 *       those as closed at its next walk.
 * User space (internal/runtime/egress_report.go) walks both maps every
 * capture.egress_report_interval, reports entries whose count grew, and
 * takes egress_dgram entries out once idle (their counts carry over).
 *
 * Measured choices (sensorbench -progstats, connect and udp storms, busy
 * 2-core VM; a program with an empty body costs ~30 ns there with stats on):
 *   - cgroup_skb/egress runs for every packet of the node: ~30 ns for the
 *     hook itself (paid by the floor too) and ~8 ns of body for a TCP or UDP
 *     packet. The alternative, reading msg_name from the registers of the
 *     sendto/sendmsg syscall at sock_send_length, costs nothing elsewhere
 *     but misses io_uring, sendmmsg and socketcall sends on raw sockets;
 *     seeing every way into a send won.
 *   - byte accounting: the first send (or the connect) of a socket inserts
 *     into an LRU map (~250 ns), later sends cost ~60 ns, the release ~200 ns.
 *   - connect: no sys_enter handler (the dispatcher's enter body fell from
 *     ~10 to ~6 ns on average over the storm's syscalls); the cgroup hook
 *     costs ~500 ns, ~220 ns without the LRU insert; exit_connect reads the
 *     source through the hook's socket instead of walking the fd table.
 *
 * Accounting: net_stats counts tracked/released entries and failures; user
 * space derives LRU evictions as tracked - released - live.
 */
#pragma once

#include <bpf/bpf_endian.h>

#define KS_AF_UNIX 1
#define KS_AF_INET 2
#define KS_AF_INET6 10
#define KS_AF_PACKET 17
#define KS_IPPROTO_ICMP 1
#define KS_IPPROTO_ICMPV6 58
#define KS_IPPROTO_UDPLITE 136
#define KS_UNIX_PATH_MAX 108
#define KS_EINPROGRESS 115
#define KS_ECONNABORTED 103
#define KS_ETH_P_IP 0x0800
#define KS_ETH_P_IPV6 0x86DD
#define KS_S_IFMT 00170000
#define KS_S_IFSOCK 0140000
#define KS_PF_IO_WORKER 0x00000010
#define KS_PF_KTHREAD 0x00200000
/* io_uring_enter has number 426 on every architecture (the unified table of
 * syscalls added since 5.1), native and i386 compat alike. */
#define KS_NR_IO_URING_ENTER 426
#define KS_NR_SOCKETCALL_I386 102
#define KS_IORING_OP_ACCEPT 13

/* conn_rec.flags / egress_val.flags */
#define CONN_F_RESULT 0x01   /* result holds the connect() return value */
#define CONN_F_FD 0x02       /* fd is known */
#define CONN_F_SRC 0x04      /* saddr/sport are filled */
#define CONN_F_DST 0x08      /* destination came from a cgroup hook (kernel copy) */
#define CONN_F_UPATH 0x10    /* unix path read from user memory (fallback) */
#define CONN_F_CLOSED 0x20   /* final stats record: socket released (or re-connected elsewhere) */
#define EG_F_DGRAM 0x40      /* egress_dgram entry: the destination came with the send */
#define EG_F_NODST 0x80      /* destination unknown (daddr/dport are zero) */

/* conn_rec.via: how the operation reached the kernel, besides its own syscall. */
enum net_via {
	NET_VIA_SYSCALL = 0,
	NET_VIA_IO_URING = 1,
	NET_VIA_SOCKETCALL = 2, /* i386 socketcall(2) */
	NET_VIA_FASTOPEN = 3,   /* TCP fast open: sendto/sendmsg with MSG_FASTOPEN */
	NET_VIA_KERNEL = 4,     /* a kernel thread */
	NET_VIA_OTHER = 5,
};

/* egress_val.origin: how the socket came to have its destination. */
enum eg_origin {
	EG_ORIGIN_UNKNOWN = 0,  /* a socket first seen sending (older than the sensor, or a loopback accept) */
	EG_ORIGIN_CONNECT = 1,
	EG_ORIGIN_ACCEPT = 2,
	EG_ORIGIN_DATAGRAM = 3, /* the destination came with the send */
};

/* REC_CONNECT and REC_ACCEPT. Addresses are in network byte order, IPv4 in
 * the first 4 bytes; ports in host byte order. For an accept, saddr/sport
 * are the local end and daddr/dport the remote peer. */
struct conn_rec {
	struct rec_hdr hdr;
	__u64 cookie;
	__u8 family;   /* AF_INET, AF_INET6, AF_UNIX */
	__u8 proto;    /* IPPROTO_*; for AF_UNIX the socket type */
	__u8 flags;    /* CONN_F_* */
	__u8 path_len; /* valid bytes of path (AF_UNIX) */
	__s32 result;
	__s32 fd;
	__u16 sport;
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
	char path[KS_UNIX_PATH_MAX];
	__u8 via;      /* enum net_via */
	__u8 sotype;   /* SOCK_STREAM, SOCK_DGRAM, SOCK_RAW */
	__u16 _pad2;
	/* AF_UNIX, once connected: the server's end, as the server made it (a
	 * symlink, bind mount or hard link changes the caller's path only). */
	__u64 peer_ino;     /* inode of the socket file the server bound; 0 if none */
	__u32 peer_dev;     /* its i_sb->s_dev */
	__u8 peer_path_len; /* valid bytes of peer_path */
	__u8 _pad3[3];
	char peer_path[KS_UNIX_PATH_MAX]; /* the sun_path the server bound */
	__u32 _pad4;
};

/* REC_SOCK_STATS, and also the value of egress_socks and egress_dgram: the
 * header is the process that sent last (ts_ns = first send in the map,
 * report time in a record), so the same bytes decode either way. */
struct egress_val {
	struct rec_hdr hdr;
	__u64 cookie;
	__u64 bytes_sent;
	__u64 sends;
	__u8 family;
	__u8 proto;    /* IPPROTO_* of the socket */
	__u8 flags;    /* CONN_F_SRC, CONN_F_CLOSED, EG_F_* */
	__u8 sotype;   /* SOCK_STREAM, SOCK_DGRAM, SOCK_RAW */
	__u16 sport;
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 origin;   /* enum eg_origin */
	__u8 _pad[7];
};

/* REC_SOCK_CLOSED: a socket with egress_dgram entries was released. */
struct sock_closed_rec {
	struct rec_hdr hdr;
	__u64 cookie;
};

/* BTF anchor: internal/runtime checks the decoder's offsets against it. */
const struct sock_closed_rec *_btf_sock_closed_rec __attribute__((unused));

/* Key of egress_dgram: one entry per socket and destination. */
struct dgram_key {
	__u64 cookie;
	__u8 daddr[16];
	__u16 dport;
	__u8 family;
	__u8 _pad[5];
};

/* net_stats indexes. */
enum net_stat {
	NET_SOCK_TRACKED = 0,  /* entries inserted into egress_socks */
	NET_SOCK_RELEASED = 1, /* entries removed at release or re-connect */
	NET_SOCK_INSERT_FAIL = 2,
	NET_PENDING_FULL = 3,  /* no task storage for the pending record: connect
				* reported from the cgroup hook, without fd and
				* result */
	NET_RINGBUF_FULL = 4,  /* connect, accept or stats record dropped (also in drops[]) */
	NET_INFLIGHT_FULL = 5, /* handshake not awaited: reported with -EINPROGRESS */
	NET_DGRAM_TRACKED = 6, /* entries inserted into egress_dgram */
	NET_DGRAM_INSERT_FAIL = 7,
	NET_SEND_NODST = 8,    /* sends on unconnected sockets whose destination was not seen */
	NET_STASH_FULL = 9,    /* no task storage to arm a send's destination */
	NET_STAT_MAX = 16,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NET_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} net_stats SEC(".maps");

/* Per-socket byte counters of sockets with a peer, keyed by socket cookie.
 * 32768 live sockets, ~6 MiB preallocated; beyond that the least recently
 * used socket is evicted and user space reports the eviction. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u64);
	__type(value, struct egress_val);
} egress_socks SEC(".maps");

/* Byte counters of sends that carry their own destination, per socket and
 * destination. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct dgram_key);
	__type(value, struct egress_val);
} egress_dgram SEC(".maps");

/* Marks the sockets that have egress_dgram entries; freed with the socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} sk_dgram SEC(".maps");

/* The connect() a thread is in: the cgroup hook fills the record, the exit
 * handler emits it and marks it done (hdr.type = 0). skp is the socket the
 * hook saw, to read the bound source at exit without walking the fd table.
 * Task storage rather than a hash keyed by pid_tgid: no insert and delete
 * per connect, nothing to leak or fill up, freed with the task. */
struct conn_pending {
	struct conn_rec c;
	__u64 skp;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct conn_pending);
} pending_connect SEC(".maps");

/* The destination of the send a thread is in, armed by a sendmsg or egress
 * hook and taken by sock_send_length in the same call. */
struct send_dst {
	__u64 cookie;
	__u8 daddr[16];
	__u16 dport;
	__u8 family;
	__u8 armed;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct send_dst);
} send_dst SEC(".maps");

/* Non-blocking TCP connects whose handshake was still running when
 * connect() returned -EINPROGRESS, keyed by socket cookie: the record is
 * emitted from inet_sock_set_state once the handshake ends (every socket
 * leaves SYN_SENT, so every entry is removed; a plain hash, not LRU, so a full
 * map fails the insert (counted) instead of evicting another connect). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct conn_rec);
} inflight_connect SEC(".maps");

/* Scratch space: records are too big for comfort on the 512-byte stack. */
struct net_scratch {
	struct conn_rec conn;
	struct egress_val eg;
	struct egress_val fin; /* eg_emit_final's copy (emit_record writes its header) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct net_scratch);
} net_scratch SEC(".maps");

/* The dispatch slots of connect (native, compat; ~0 where the ABI lacks it),
 * set by the loader from its syscall table. */
volatile const __u32 net_connect_slot[2] = {~0U, ~0U};

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym __weak;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define NET_KCAST(type, ptr) ((type *)bpf_rdonly_cast((const void *)(ptr), bpf_core_type_id_kernel(type)))

static __always_inline void net_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&net_stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline struct net_scratch *net_scratch_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&net_scratch, &zero);
}

static __always_inline void net_output(void *rec, __u64 size)
{
	if (emit_record(rec, size, CLASS_BULK))
		net_count(NET_RINGBUF_FULL);
}

/* conn_emit copies c into the ring buffer. */
static __always_inline void conn_emit(struct conn_rec *c)
{
	net_output(c, sizeof(*c));
}

/* eg_emit_final sends a copy of e as the final report of its socket and
 * destination, stamped now. */
static __always_inline void eg_emit_final(struct egress_val *e)
{
	struct net_scratch *s = net_scratch_get();
	if (!s)
		return;
	struct egress_val *r = &s->fin;
	__builtin_memcpy(r, e, sizeof(*r));
	r->hdr.ts_ns = bpf_ktime_get_boot_ns();
	r->flags |= CONN_F_CLOSED;
	net_output(r, sizeof(*r));
}

/* is_loopback reports whether a (network byte order, IPv4 in the first four
 * bytes) is 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. */
static __always_inline bool is_loopback(__u8 family, const __u8 *a)
{
	if (family == KS_AF_INET)
		return a[0] == 127;
	int n = 15; /* ::1 */
	if (a[10] == 0xff && a[11] == 0xff && a[12] == 127)
		n = 10; /* ::ffff:127.0.0.0/104 */
	for (int i = 0; i < 15; i++)
		if (i < n && a[i])
			return false;
	return n == 10 || a[15] == 1;
}

/* sk_addrs reads the bound source and the peer of sk (direct loads). */
static __always_inline void sk_addrs(const struct sock *sk, __u8 family, __u8 *saddr, __u16 *sport,
				     __u8 *daddr, __u16 *dport)
{
	*sport = sk->__sk_common.skc_num;
	*dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (family == KS_AF_INET) {
		__u32 s = sk->__sk_common.skc_rcv_saddr, d = sk->__sk_common.skc_daddr;
		__builtin_memcpy(saddr, &s, 4);
		__builtin_memcpy(daddr, &d, 4);
		return;
	}
	__u32 *s = (__u32 *)saddr, *d = (__u32 *)daddr;
	s[0] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[0];
	s[1] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[1];
	s[2] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[2];
	s[3] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[3];
	d[0] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[0];
	d[1] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[1];
	d[2] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[2];
	d[3] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3];
}

/* eg_owner makes the current process the one an entry is attributed to,
 * when another process sends on the socket (a forked child, a passed fd). */
static __always_inline void eg_owner(struct egress_val *e)
{
	if (e->hdr.tgid != (__u32)(bpf_get_current_pid_tgid() >> 32)) {
		__u64 first = e->hdr.ts_ns;
		fill_hdr(&e->hdr, REC_SOCK_STATS, sizeof(*e));
		e->hdr.ts_ns = first;
	}
}

static __always_inline bool addr_eq(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* egress_track starts (or, for a re-connected UDP socket, moves) byte
 * accounting for the socket of c with origin. A socket that sent bytes and
 * connects elsewhere gets a final report for its old destination. */
static __always_inline void egress_track(struct net_scratch *s, struct conn_rec *c, __u8 origin)
{
	struct egress_val *old = bpf_map_lookup_elem(&egress_socks, &c->cookie);
	if (old) {
		if (old->bytes_sent && (old->dport != c->dport || old->family != c->family || !addr_eq(old->daddr, c->daddr))) {
			eg_emit_final(old);
			old->bytes_sent = 0;
			old->sends = 0;
		}
		old->family = c->family;
		old->dport = c->dport;
		old->origin = origin;
		__builtin_memcpy(old->daddr, c->daddr, sizeof(old->daddr));
		return;
	}
	struct egress_val *e = &s->eg;
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr = c->hdr;
	e->hdr.type = REC_SOCK_STATS;
	e->hdr.size = sizeof(*e);
	e->cookie = c->cookie;
	e->family = c->family;
	e->proto = c->proto;
	e->sotype = c->sotype;
	e->origin = origin;
	e->dport = c->dport;
	__builtin_memcpy(e->daddr, c->daddr, sizeof(e->daddr));
	if (c->flags & CONN_F_SRC) {
		e->sport = c->sport;
		__builtin_memcpy(e->saddr, c->saddr, sizeof(e->saddr));
		e->flags |= CONN_F_SRC;
	}
	if (bpf_map_update_elem(&egress_socks, &c->cookie, e, BPF_NOEXIST))
		net_count(NET_SOCK_INSERT_FAIL);
	else
		net_count(NET_SOCK_TRACKED);
}

/* connect_via says how the current connect reached the cgroup hook; it
 * returns NET_VIA_SYSCALL only under connect(2) itself. */
static __always_inline __u8 connect_via(__u32 proto)
{
	struct task_struct *t = bpf_get_current_task_btf();
	unsigned int pf = t->flags;
	if (pf & KS_PF_IO_WORKER)
		return NET_VIA_IO_URING; /* io-wq worker or SQPOLL thread */
	if (pf & KS_PF_KTHREAD)
		return NET_VIA_KERNEL;
	long nr = sys_nr((struct pt_regs *)bpf_task_pt_regs(t));
	int slot = sys_slot(nr, sys_any_exit, sys_watched_exit);
	if (slot >= 0 && ((__u32)slot == net_connect_slot[0] || (__u32)slot == net_connect_slot[1]))
		return NET_VIA_SYSCALL;
	__u64 n = (__u64)nr & ~(__u64)X32_SYSCALL_BIT;
	if (n == KS_NR_IO_URING_ENTER)
		return NET_VIA_IO_URING;
	if (n == KS_NR_SOCKETCALL_I386 && in_compat_syscall())
		return NET_VIA_SOCKETCALL;
	if (proto == IPPROTO_TCP)
		return NET_VIA_FASTOPEN;
	return NET_VIA_OTHER;
}

/* conn_start returns the record a connect hook fills: the thread's pending
 * record under connect(2) (*parked set), else the scratch record. */
static __always_inline struct conn_rec *conn_start(struct net_scratch *s, struct bpf_sock_addr *ctx,
						   __u8 family, __u32 proto, bool *parked)
{
	__u8 via = connect_via(proto);
	struct conn_rec *c = &s->conn;
	*parked = false;
	if (via == NET_VIA_SYSCALL) {
		struct conn_pending *p = bpf_task_storage_get(&pending_connect, bpf_get_current_task_btf(), 0,
							      BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (p) {
			struct bpf_sock_addr_kern *k = bpf_cast_to_kern_ctx(ctx);
			p->skp = k ? (__u64)k->sk : 0;
			c = &p->c;
			*parked = true;
		} else {
			net_count(NET_PENDING_FULL);
			via = NET_VIA_OTHER;
		}
	}
	__builtin_memset(c, 0, sizeof(*c));
	fill_hdr(&c->hdr, REC_CONNECT, sizeof(*c));
	c->family = family;
	c->via = via;
	c->fd = -1;
	c->cookie = bpf_get_socket_cookie(ctx);
	return c;
}

/* inet_connect handles connect4/connect6. */
static __always_inline int inet_connect(struct bpf_sock_addr *ctx, __u8 family)
{
	if (is_self())
		return 1;
	__u32 proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != KS_IPPROTO_UDPLITE &&
	    proto != KS_IPPROTO_ICMP && proto != KS_IPPROTO_ICMPV6)
		return 1;
	struct net_scratch *s = net_scratch_get();
	if (!s)
		return 1;
	bool parked;
	struct conn_rec *c = conn_start(s, ctx, family, proto, &parked);
	c->proto = proto;
	c->sotype = ctx->type;
	c->dport = bpf_ntohs((__u16)ctx->user_port);
	if (family == KS_AF_INET) {
		__u32 a = ctx->user_ip4;
		__builtin_memcpy(c->daddr, &a, 4);
	} else {
		__u32 a[4];
		a[0] = ctx->user_ip6[0];
		a[1] = ctx->user_ip6[1];
		a[2] = ctx->user_ip6[2];
		a[3] = ctx->user_ip6[3];
		__builtin_memcpy(c->daddr, a, 16);
	}
	c->flags = CONN_F_DST;
	egress_track(s, c, EG_ORIGIN_CONNECT);
	if (!parked)
		conn_emit(c);
	return 1;
}

SEC("cgroup/connect4")
int net_connect4(struct bpf_sock_addr *ctx)
{
	return inet_connect(ctx, KS_AF_INET);
}

SEC("cgroup/connect6")
int net_connect6(struct bpf_sock_addr *ctx)
{
	return inet_connect(ctx, KS_AF_INET6);
}

SEC("cgroup/connect_unix")
int net_connect_unix_optional(struct bpf_sock_addr *ctx)
{
	if (is_self())
		return 1;
	struct net_scratch *s = net_scratch_get();
	if (!s)
		return 1;
	struct bpf_sock_addr_kern *k = bpf_cast_to_kern_ctx(ctx);
	if (!k)
		return 1;
	bool parked;
	struct conn_rec *c = conn_start(s, ctx, KS_AF_UNIX, 0, &parked);
	c->proto = ctx->type;
	c->sotype = ctx->type;
	struct sockaddr *ua = BPF_CORE_READ(k, uaddr);
	__u64 n = BPF_CORE_READ(k, uaddrlen);
	n = n > sizeof(__u16) ? n - sizeof(__u16) : 0;
	if (n > KS_UNIX_PATH_MAX)
		n = KS_UNIX_PATH_MAX;
	asm volatile("" : "+r"(n));
	if (n > 0 && n <= KS_UNIX_PATH_MAX &&
	    !bpf_probe_read_kernel(c->path, n, (void *)ua + sizeof(__u16)))
		c->path_len = n;
	c->flags = CONN_F_DST;
	if (!parked)
		conn_emit(c);
	return 1;
}

/* sock_from_fd returns the socket behind fd in the current task, or NULL. */
static __always_inline struct sock *sock_from_fd(int fd)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct fdtable *fdt = t->files->fdt;
	if (fd < 0 || (unsigned int)fd >= fdt->max_fds)
		return NULL;
	__u64 fp = 0;
	if (bpf_probe_read_kernel(&fp, sizeof(fp), (void *)((__u64)fdt->fd + (__u64)fd * sizeof(fp))) || !fp)
		return NULL;
	struct file *f = NET_KCAST(struct file, fp);
	if ((f->f_inode->i_mode & KS_S_IFMT) != KS_S_IFSOCK)
		return NULL;
	struct socket *so = NET_KCAST(struct socket, f->private_data);
	return so->sk;
}

static __always_inline int conn_state_result(const struct sock *sk, int state);

/* conn_finish_or_park handles a TCP connect() that returned -EINPROGRESS:
 * if the handshake already ended, emit the final result now; otherwise park
 * the record for inet_sock_set_state. Whoever deletes the parked entry emits
 * it, so a handshake ending in between is reported exactly once. */
static __always_inline void conn_finish_or_park(struct conn_rec *c, struct sock *sk)
{
	if (!sk) {
		conn_emit(c);
		return;
	}
	int r = conn_state_result(sk, BPF_CORE_READ(sk, __sk_common.skc_state));
	if (r != 1) {
		c->result = r;
		conn_emit(c);
		return;
	}
	if (bpf_map_update_elem(&inflight_connect, &c->cookie, c, BPF_ANY)) {
		net_count(NET_INFLIGHT_FULL);
		conn_emit(c); /* keep -EINPROGRESS rather than lose the connect */
		return;
	}
	r = conn_state_result(sk, BPF_CORE_READ(sk, __sk_common.skc_state));
	if (r != 1 && !bpf_map_delete_elem(&inflight_connect, &c->cookie)) {
		c->result = r;
		conn_emit(c);
	}
}

/* unix_peer_fill adds to c the server's end of the connected AF_UNIX
 * socket sk: the socket file the server bound (for a stream socket, the
 * accepted child shares the listener's path and address) and the address it
 * bound. Both are the server's choice; the caller's sun_path is not. */
static __always_inline void unix_peer_fill(struct conn_rec *c, struct sock *sk)
{
	struct unix_sock *u = NET_KCAST(struct unix_sock, sk);
	struct sock *peer = u->peer;
	if (!peer)
		return;
	struct unix_sock *pu = NET_KCAST(struct unix_sock, peer);
	struct inode *ino = pu->path.dentry ? pu->path.dentry->d_inode : NULL;
	if (ino) {
		c->peer_ino = ino->i_ino;
		c->peer_dev = ino->i_sb->s_dev;
	}
	struct unix_address *ua = pu->addr;
	if (!ua)
		return;
	__u64 n = (__u32)ua->len;
	n = n > sizeof(__u16) ? n - sizeof(__u16) : 0;
	if (n > KS_UNIX_PATH_MAX)
		n = KS_UNIX_PATH_MAX;
	asm volatile("" : "+r"(n));
	if (n > 0 && n <= KS_UNIX_PATH_MAX &&
	    !bpf_probe_read_kernel(c->peer_path, n, (void *)ua + offsetof(struct unix_address, name) + sizeof(__u16)))
		c->peer_path_len = n;
}

/* unix_connect_from_user reports an AF_UNIX connect that no cgroup hook saw
 * (kernels without cgroup/connect_unix), from the sockaddr in the caller's
 * memory. */
static __always_inline void unix_connect_from_user(struct sys_args *a, long ret)
{
	const void *uaddr = (const void *)a->a[1];
	__u32 alen = (__u32)a->a[2];
	__u16 family = 0;
	if (alen < sizeof(family) || bpf_probe_read_user(&family, sizeof(family), uaddr) || family != KS_AF_UNIX)
		return; /* an inet connect that never reached the hook: no new connection */
	struct net_scratch *s = net_scratch_get();
	if (!s)
		return;
	struct conn_rec *c = &s->conn;
	__builtin_memset(c, 0, sizeof(*c));
	fill_hdr(&c->hdr, REC_CONNECT, sizeof(*c));
	c->family = KS_AF_UNIX;
	c->fd = (__s32)a->a[0];
	c->result = (__s32)ret;
	c->flags = CONN_F_FD | CONN_F_RESULT;
	__u64 n = alen - sizeof(family);
	if (n > KS_UNIX_PATH_MAX)
		n = KS_UNIX_PATH_MAX;
	asm volatile("" : "+r"(n));
	if (n > 0 && n <= KS_UNIX_PATH_MAX && !bpf_probe_read_user(c->path, n, uaddr + sizeof(family))) {
		c->path_len = n;
		c->flags |= CONN_F_UPATH;
	}
	struct sock *sk = ret == 0 ? sock_from_fd(c->fd) : NULL;
	if (sk)
		unix_peer_fill(c, sk);
	conn_emit(c);
}

SYS_EXIT(connect)
{
	struct sys_args a;
	sys_args_get(regs, &a);
	struct conn_pending *p = bpf_task_storage_get(&pending_connect, bpf_get_current_task_btf(), 0, 0);
	if (!p || p->c.hdr.type != REC_CONNECT) {
		/* No cgroup hook ran in this call: an AF_UNIX connect on a kernel
		 * without cgroup/connect_unix, or a connect refused before the
		 * hook (EALREADY, EISCONN, EINVAL: no new connection). */
		if (!is_self())
			unix_connect_from_user(&a, ret);
		return 0;
	}
	struct conn_rec *c = &p->c;
	c->result = (__s32)ret;
	c->fd = (__s32)a.a[0];
	c->flags |= CONN_F_RESULT | CONN_F_FD;
	struct sock *sk = NULL;
	if ((c->family == KS_AF_INET || c->family == KS_AF_INET6) && p->skp) {
		sk = NET_KCAST(struct sock, p->skp);
		/* The hook's socket, unless another thread closed it since. */
		if (sk->__sk_common.skc_cookie.counter == c->cookie) {
			__u8 d[16];
			__u16 dp;
			sk_addrs(sk, c->family, c->saddr, &c->sport, d, &dp);
			c->flags |= CONN_F_SRC;
			struct egress_val *e = bpf_map_lookup_elem(&egress_socks, &c->cookie);
			if (e) {
				e->sport = c->sport;
				__builtin_memcpy(e->saddr, c->saddr, sizeof(e->saddr));
				e->flags |= CONN_F_SRC;
			}
		} else {
			sk = NULL;
		}
	} else if (c->family == KS_AF_UNIX && p->skp && ret == 0) {
		struct sock *usk = NET_KCAST(struct sock, p->skp);
		if (usk->__sk_common.skc_cookie.counter == c->cookie)
			unix_peer_fill(c, usk);
	}
	if (c->result == -KS_EINPROGRESS && c->proto == IPPROTO_TCP)
		conn_finish_or_park(c, sk);
	else
		conn_emit(c);
	c->hdr.type = 0; /* done; the thread's next connect reuses the storage */
	return 0;
}

/* conn_state_result maps the state a connecting TCP socket left SYN_SENT
 * for to a connect result; 1 means "still connecting". */
static __always_inline int conn_state_result(const struct sock *sk, int state)
{
	if (state == TCP_ESTABLISHED)
		return 0;
	if (state != TCP_CLOSE)
		return 1; /* SYN_SENT, or SYN_RECV of a simultaneous open */
	int err = BPF_CORE_READ(sk, sk_err);
	return err ? -err : -KS_ECONNABORTED;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(net_sock_set_state, const struct sock *sk, int oldstate, int newstate)
{
	if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		/* A passive open completed: give the socket its cookie now, while
		 * the pointer is one the helper takes (the accept handlers only
		 * reach it through the fd table). */
		bpf_get_socket_cookie((void *)sk);
		return 0;
	}
	if (oldstate != TCP_SYN_SENT || (newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE))
		return 0;
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return 0;
	struct conn_rec *p = bpf_map_lookup_elem(&inflight_connect, &cookie);
	if (!p)
		return 0;
	struct net_scratch *s = net_scratch_get();
	if (!s)
		return 0;
	struct conn_rec *c = &s->conn;
	__builtin_memcpy(c, p, sizeof(*c));
	if (bpf_map_delete_elem(&inflight_connect, &cookie))
		return 0; /* exit_connect reported it */
	c->result = conn_state_result(sk, newstate);
	conn_emit(c);
	return 0;
}

/* accept_report emits REC_ACCEPT for the inet socket behind fd, a new
 * connection from a remote peer, and starts its byte accounting. */
static __always_inline void accept_report(int fd, __u8 via)
{
	if (is_self())
		return;
	struct sock *sk = sock_from_fd(fd);
	if (!sk)
		return;
	__u16 family = sk->__sk_common.skc_family;
	if (family != KS_AF_INET && family != KS_AF_INET6)
		return;
	struct net_scratch *s = net_scratch_get();
	if (!s)
		return;
	struct conn_rec *c = &s->conn;
	__builtin_memset(c, 0, sizeof(*c));
	sk_addrs(sk, family, c->saddr, &c->sport, c->daddr, &c->dport);
	if (is_loopback(family, c->daddr))
		return;
	fill_hdr(&c->hdr, REC_ACCEPT, sizeof(*c));
	c->family = family;
	c->proto = sk->sk_protocol;
	c->sotype = sk->sk_type;
	c->cookie = sk->__sk_common.skc_cookie.counter;
	c->fd = fd;
	c->via = via;
	c->flags = CONN_F_RESULT | CONN_F_FD | CONN_F_SRC | CONN_F_DST;
	if (c->cookie) {
		egress_track(s, c, EG_ORIGIN_ACCEPT);
	}
	conn_emit(c);
}

SYS_EXIT(accept)
{
	if (ret >= 0)
		accept_report((int)ret, NET_VIA_SYSCALL);
	return 0;
}

/* io_uring ACCEPT, single and multishot: each accepted connection posts a
 * completion whose result is the new fd (not for a fixed-file accept, whose
 * result is a slot in the ring's file table: those are accounted when they
 * send, with origin unknown). */
SEC("tp_btf/io_uring_complete")
int BPF_PROG(net_uring_complete, struct io_ring_ctx *uctx, void *req, struct io_uring_cqe *cqe)
{
	struct io_kiocb *r = NET_KCAST(struct io_kiocb, req);
	if (r->opcode != KS_IORING_OP_ACCEPT)
		return 0;
	int res = cqe->res;
	if (res < 0)
		return 0;
	struct io_accept *acc = NET_KCAST(struct io_accept, (__u64)req + bpf_core_field_offset(struct io_kiocb, cmd));
	if (acc->file_slot)
		return 0;
	accept_report(res, NET_VIA_IO_URING);
	return 0;
}

/* send_dst_arm records the destination of the send the current thread is
 * in, for sock_send_length. */
static __always_inline void send_dst_arm(__u64 cookie, __u8 family, const __u8 *daddr, __u16 dport)
{
	struct send_dst *d = bpf_task_storage_get(&send_dst, bpf_get_current_task_btf(), 0,
						  BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!d) {
		net_count(NET_STASH_FULL);
		return;
	}
	d->cookie = cookie;
	__builtin_memcpy(d->daddr, daddr, sizeof(d->daddr));
	d->dport = dport;
	d->family = family;
	d->armed = 1;
}

SEC("cgroup/sendmsg4")
int net_sendmsg4(struct bpf_sock_addr *ctx)
{
	if (is_self())
		return 1;
	__u8 a[16] = {};
	__u32 ip = ctx->user_ip4;
	__builtin_memcpy(a, &ip, 4);
	send_dst_arm(bpf_get_socket_cookie(ctx), KS_AF_INET, a, bpf_ntohs((__u16)ctx->user_port));
	return 1;
}

SEC("cgroup/sendmsg6")
int net_sendmsg6(struct bpf_sock_addr *ctx)
{
	if (is_self())
		return 1;
	__u32 a[4];
	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
	send_dst_arm(bpf_get_socket_cookie(ctx), KS_AF_INET6, (const __u8 *)a, bpf_ntohs((__u16)ctx->user_port));
	return 1;
}

/* Raw and ICMP sockets have no sendmsg hook: the destination of an
 * unconnected send is that of the packet it put on the wire, seen here in
 * the sender's context (these sends are synchronous). Every other packet
 * returns after a look at its socket's protocol. */
SEC("cgroup_skb/egress")
int net_skb_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	__u32 proto = sk->protocol;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == KS_IPPROTO_UDPLITE ||
	    sk->state == BPF_TCP_ESTABLISHED)
		return 1;
	/* A kernel socket's packet (an ICMP error, a neighbour solicitation)
	 * is sent from softirq, in whatever task's context: it must not take
	 * that task's send destination. User sockets have a file. */
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	struct sock *ksk = kskb->sk;
	if (!ksk)
		return 1;
	struct socket *so = ksk->sk_socket;
	if (!so || !so->file || is_self())
		return 1;
	__u8 a[16] = {};
	__u8 family;
	if (skb->protocol == bpf_htons(KS_ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, 16, a, 4))
			return 1;
		family = KS_AF_INET;
	} else if (skb->protocol == bpf_htons(KS_ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, 24, a, 16))
			return 1;
		family = KS_AF_INET6;
	} else {
		return 1;
	}
	send_dst_arm(bpf_get_socket_cookie(skb), family, a, 0);
	return 1;
}

/* eg_add adds one send of n bytes on sk to e. */
static __always_inline void eg_add(struct egress_val *e, struct sock *sk, int n)
{
	eg_owner(e);
	if (!(e->flags & CONN_F_SRC)) {
		/* Started by a connect whose exit handler did not run (io_uring,
		 * fast open): the source is bound by the first send. */
		__u8 d[16];
		__u16 dp;
		sk_addrs(sk, sk->__sk_common.skc_family, e->saddr, &e->sport, d, &dp);
		e->flags |= CONN_F_SRC;
	}
	__sync_fetch_and_add(&e->bytes_sent, (__u64)n);
	__sync_fetch_and_add(&e->sends, 1);
}

/* eg_new fills the scratch value for a socket's first send of n bytes. */
static __always_inline struct egress_val *eg_new(struct net_scratch *s, struct sock *sk, __u64 cookie,
						 __u16 family, int n)
{
	struct egress_val *e = &s->eg;
	__builtin_memset(e, 0, sizeof(*e));
	fill_hdr(&e->hdr, REC_SOCK_STATS, sizeof(*e));
	e->cookie = cookie;
	e->family = family;
	e->proto = sk->sk_protocol;
	e->sotype = sk->sk_type;
	e->bytes_sent = n;
	e->sends = 1;
	return e;
}

/* dgram_account adds a send of n bytes to the socket's entry for the
 * destination d (NULL: unknown). */
static __always_inline void dgram_account(struct sock *sk, __u64 cookie, __u16 family, struct send_dst *d, int n)
{
	struct dgram_key k;
	__builtin_memset(&k, 0, sizeof(k));
	k.cookie = cookie;
	k.family = family;
	if (d) {
		__builtin_memcpy(k.daddr, d->daddr, sizeof(k.daddr));
		k.dport = d->dport;
		k.family = d->family;
	} else if (family != KS_AF_PACKET) {
		net_count(NET_SEND_NODST);
	}
	struct egress_val *e = bpf_map_lookup_elem(&egress_dgram, &k);
	if (e) {
		eg_add(e, sk, n);
		return;
	}
	struct net_scratch *s = net_scratch_get();
	if (!s)
		return;
	e = eg_new(s, sk, cookie, k.family, n);
	if (family == KS_AF_PACKET) {
		/* Frames for a device: no IP endpoints to name. */
		e->proto = 0;
		e->flags = EG_F_DGRAM | EG_F_NODST;
		e->origin = EG_ORIGIN_DATAGRAM;
		if (bpf_map_update_elem(&egress_dgram, &k, e, BPF_NOEXIST))
			net_count(NET_DGRAM_INSERT_FAIL);
		else
			net_count(NET_DGRAM_TRACKED);
		return;
	}
	__u8 ignore[16];
	__u16 ignport;
	sk_addrs(sk, family, e->saddr, &e->sport, ignore, &ignport);
	if (family != k.family) { /* an IPv6 socket's bound address says nothing of an IPv4 send */
		__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	}
	e->flags = CONN_F_SRC | EG_F_DGRAM | (d ? CONN_F_DST : EG_F_NODST);
	e->origin = EG_ORIGIN_DATAGRAM;
	e->dport = k.dport;
	__builtin_memcpy(e->daddr, k.daddr, sizeof(e->daddr));
	if (bpf_map_update_elem(&egress_dgram, &k, e, BPF_NOEXIST)) {
		struct egress_val *raced = bpf_map_lookup_elem(&egress_dgram, &k);
		if (raced)
			eg_add(raced, sk, n);
		else
			net_count(NET_DGRAM_INSERT_FAIL);
		return;
	}
	net_count(NET_DGRAM_TRACKED);
	bpf_sk_storage_get(&sk_dgram, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(net_send_length, struct sock *sk, int ret, int flags)
{
	__u16 family = sk->__sk_common.skc_family;
	if (family == KS_AF_PACKET) {
		/* Link-layer frames (AF_PACKET, CAP_NET_RAW) leave the node too. */
		if (ret > 0 && !(((struct task_struct *)bpf_get_current_task_btf())->flags & KS_PF_KTHREAD) && !is_self())
			dgram_account(sk, bpf_get_socket_cookie(sk), family, NULL, ret);
		return 0;
	}
	if (family != KS_AF_INET && family != KS_AF_INET6)
		return 0;
	__u16 proto = sk->sk_protocol;
	struct task_struct *t = bpf_get_current_task_btf();
	if (ret <= 0) {
		/* A failed send still consumes the destination it armed. */
		if (proto != IPPROTO_TCP) {
			struct send_dst *d = bpf_task_storage_get(&send_dst, t, 0, 0);
			if (d)
				d->armed = 0;
		}
		return 0;
	}
	if ((t->flags & KS_PF_KTHREAD) || is_self())
		return 0;
	__u64 cookie = bpf_get_socket_cookie(sk);
	if (proto != IPPROTO_TCP) {
		struct send_dst *d = bpf_task_storage_get(&send_dst, t, 0, 0);
		if (d && d->armed) {
			d->armed = 0;
			if (d->cookie == cookie) {
				dgram_account(sk, cookie, family, d, ret);
				return 0;
			}
		}
		if (sk->__sk_common.skc_state != TCP_ESTABLISHED) {
			dgram_account(sk, cookie, family, NULL, ret);
			return 0;
		}
	}
	struct egress_val *e = bpf_map_lookup_elem(&egress_socks, &cookie);
	if (e) {
		eg_add(e, sk, ret);
		return 0;
	}
	struct net_scratch *s = net_scratch_get();
	if (!s)
		return 0;
	e = eg_new(s, sk, cookie, family, ret);
	sk_addrs(sk, family, e->saddr, &e->sport, e->daddr, &e->dport);
	e->flags = CONN_F_SRC | CONN_F_DST;
	if (bpf_map_update_elem(&egress_socks, &cookie, e, BPF_NOEXIST)) {
		struct egress_val *raced = bpf_map_lookup_elem(&egress_socks, &cookie);
		if (raced)
			eg_add(raced, sk, ret);
		else
			net_count(NET_SOCK_INSERT_FAIL);
		return 0;
	}
	net_count(NET_SOCK_TRACKED);
	return 0;
}

SEC("cgroup/sock_release")
int net_sock_release(struct bpf_sock *ctx)
{
	struct sock *sk = bpf_cast_to_kern_ctx(ctx);
	/* Every socket the sensor accounts has a cookie (its hooks make one):
	 * most sockets close without, and cost one load here. */
	if (!sk || !sk->__sk_common.skc_cookie.counter)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct egress_val *e = bpf_map_lookup_elem(&egress_socks, &cookie);
	if (e) {
		/* An accepted socket that sent nothing has said all in its accept. */
		if (e->bytes_sent || e->origin != EG_ORIGIN_ACCEPT)
			eg_emit_final(e);
		if (!bpf_map_delete_elem(&egress_socks, &cookie))
			net_count(NET_SOCK_RELEASED);
	}
	if (bpf_sk_storage_get(&sk_dgram, ctx, 0, 0)) {
		struct sock_closed_rec r;
		fill_hdr(&r.hdr, REC_SOCK_CLOSED, sizeof(r));
		r.cookie = cookie;
		net_output(&r, sizeof(r));
	}
	return 1;
}
