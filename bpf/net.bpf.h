/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Network capture: connects (IPv4, IPv6, AF_UNIX) and bytes sent per socket.
 *
 * Included once by sensor.bpf.c after common.h. The loader attaches every
 * program here generically from its section name; cgroup programs go to the
 * cgroup v2 root.
 *
 * Bench floor: no separate empty version is kept here. The loader builds the
 * floor from this same object by replacing every program body with
 * "return 0" ("return 1" for cgroup programs), so the floor hooks exactly the
 * hooks below (runtime.LoadFloor).
 *
 * Hooks and why:
 *   connect's sys_enter handler (enter_connect, tail-called by the syscall
 *       dispatcher of dispatch.bpf.h)  fd, and the sockaddr read from user
 *       memory (the AF_UNIX path when cgroup/connect_unix is unavailable);
 *       opens the thread's pending record (task storage).
 *   cgroup/connect4, cgroup/connect6       destination, protocol and socket
 *       cookie as the kernel sees them; starts byte accounting for the socket
 *       (only sockets that called connect() are ever accounted, never accepted
 *       ones). Always return 1: the sensor never blocks.
 *   cgroup/connect_unix (kernel >= 6.7)    sun_path as copied into the kernel
 *       (abstract names keep their leading NUL; user space shows "@name").
 *       OPTIONAL: if it does not load, the loader may skip it (its program
 *       name ends in "_optional") and enter_connect's user copy is used.
 *   connect's sys_exit handler (exit_connect)  the result (0 or -errno) and, for
 *       inet, the source address and port read from the socket behind the fd
 *       (the source port is bound by then); emits the REC_CONNECT record.
 *       Choice: one record per connect, emitted when connect() returns, so it
 *       is immediate and carries fd, source and result.
 *   tp_btf/inet_sock_set_state             exception to the above: a
 *       non-blocking TCP connect that returns -EINPROGRESS with the handshake
 *       still running is parked in inflight_connect and emitted when the
 *       socket leaves SYN_SENT: result 0 on ESTABLISHED, -sk_err on CLOSE
 *       (-ECONNABORTED if the caller gave up first). On loopback the
 *       handshake is done before connect() returns, so nothing waits.
 *       A connect that does not come through the connect syscall (io_uring,
 *       i386 socketcall) is emitted from the cgroup hook itself with
 *       CONN_F_RESULT and CONN_F_FD clear.
 *   tp_btf/sock_send_length                bytes returned by every sendmsg on
 *       an accounted socket, summed in the kernel (egress_socks, LRU hash
 *       keyed by socket cookie). Nothing is sent per send.
 *   cgroup/sock_release                    final REC_SOCK_STATS (closed) for an
 *       accounted TCP or UDP socket when its last reference is closed.
 * User space (internal/runtime/egress_report.go) walks egress_socks every
 * capture.egress_report_interval and reports sockets whose count grew.
 *
 * Accounting: net_stats counts tracked/released sockets and failures; user
 * space derives LRU evictions as tracked - released - live.
 */
#pragma once

#include <bpf/bpf_endian.h>

#define KS_AF_UNIX 1
#define KS_AF_INET 2
#define KS_AF_INET6 10
#define KS_UNIX_PATH_MAX 108
#define KS_EINPROGRESS 115
#define KS_ECONNABORTED 103

/* conn_rec.flags / egress_val.flags */
#define CONN_F_RESULT 0x01   /* result holds the connect() return value */
#define CONN_F_FD 0x02       /* fd is known */
#define CONN_F_SRC 0x04      /* saddr/sport are filled */
#define CONN_F_DST 0x08      /* destination came from a cgroup hook (kernel copy) */
#define CONN_F_UPATH 0x10    /* unix path read from user memory (fallback) */
#define CONN_F_CLOSED 0x20   /* final stats record: the socket was released */

/* REC_CONNECT. Addresses are in network byte order, IPv4 in the first 4 bytes;
 * ports in host byte order. */
struct conn_rec {
	struct rec_hdr hdr;
	__u64 cookie;
	__u8 family;   /* AF_INET, AF_INET6, AF_UNIX */
	__u8 proto;    /* IPPROTO_TCP / IPPROTO_UDP; for AF_UNIX the socket type */
	__u8 flags;    /* CONN_F_* */
	__u8 path_len; /* valid bytes of path (AF_UNIX) */
	__s32 result;
	__s32 fd;
	__u16 sport;
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
	char path[KS_UNIX_PATH_MAX];
	__u32 _pad2;
};

/* REC_SOCK_STATS, and also the value of egress_socks: the header is the
 * connecting process (ts_ns = connect time in the map, report time in a
 * record), so the same bytes decode either way. */
struct egress_val {
	struct rec_hdr hdr;
	__u64 cookie;
	__u64 bytes_sent;
	__u64 sends;
	__u8 family;
	__u8 proto;
	__u8 flags;
	__u8 _pad;
	__u16 sport;
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
};


/* net_stats indexes. */
enum net_stat {
	NET_SOCK_TRACKED = 0,  /* sockets inserted into egress_socks */
	NET_SOCK_RELEASED = 1, /* sockets removed at release */
	NET_SOCK_INSERT_FAIL = 2,
	NET_PENDING_FULL = 3,  /* no task storage for the pending record: connect
				* reported from the cgroup hook, without fd and
				* result (AF_UNIX fallback: lost) */
	NET_RINGBUF_FULL = 4,  /* connect or stats record dropped (also in drops[]) */
	NET_INFLIGHT_FULL = 5, /* handshake not awaited: reported with -EINPROGRESS */
	NET_STAT_MAX = 8,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NET_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} net_stats SEC(".maps");

/* Per-socket byte counters of connected sockets, keyed by socket cookie.
 * 32768 live outbound sockets, ~6 MiB preallocated; beyond that the least
 * recently used socket is evicted and user space reports the eviction. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, __u64);
	__type(value, struct egress_val);
} egress_socks SEC(".maps");

/* The connect() call a thread is in, per task: enter_connect starts the
 * record, the cgroup hooks add the destination, exit_connect emits it and
 * marks it done (hdr.type = 0). Task storage rather than a hash keyed by
 * pid_tgid: no insert and delete per connect (measured here: a hash update
 * cost ~1 us per connect, task storage ~0.3 us), nothing to leak or fill up,
 * freed with the task. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct conn_rec);
} pending_connect SEC(".maps");

static __always_inline struct conn_rec *pending_get(__u64 flags)
{
	return bpf_task_storage_get(&pending_connect, bpf_get_current_task_btf(), 0, flags);
}

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
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct net_scratch);
} net_scratch SEC(".maps");

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym __weak;

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

/* conn_emit copies c into the ring buffer. */
static __always_inline void conn_emit(struct conn_rec *c)
{
	if (emit_record(c, sizeof(*c), CLASS_BULK))
		net_count(NET_RINGBUF_FULL);
}

/* egress_track starts (or, for a re-connected UDP socket, updates) byte
 * accounting for the socket of c. */
static __always_inline void egress_track(struct net_scratch *s, struct conn_rec *c)
{
	struct egress_val *old = bpf_map_lookup_elem(&egress_socks, &c->cookie);
	if (old) {
		old->family = c->family;
		old->dport = c->dport;
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
	e->dport = c->dport;
	__builtin_memcpy(e->daddr, c->daddr, sizeof(e->daddr));
	if (bpf_map_update_elem(&egress_socks, &c->cookie, e, BPF_NOEXIST))
		net_count(NET_SOCK_INSERT_FAIL);
	else
		net_count(NET_SOCK_TRACKED);
}

SYS_ENTER(connect)
{
	if (is_self())
		return 0;
	struct sys_args a;
	sys_args_get(regs, &a);
	const void *uaddr = (const void *)a.a[1];
	__u32 alen = (__u32)a.a[2];
	__u16 family = 0;
	struct conn_rec *c;
	if (alen < sizeof(family) || bpf_probe_read_user(&family, sizeof(family), uaddr) ||
	    (family != KS_AF_INET && family != KS_AF_INET6 && family != KS_AF_UNIX)) {
		/* Not ours; make sure no stale record is taken for this call. */
		c = pending_get(0);
		if (c)
			c->hdr.type = 0;
		return 0;
	}
	c = pending_get(BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!c) {
		net_count(NET_PENDING_FULL);
		return 0;
	}
	__builtin_memset(c, 0, sizeof(*c));
	fill_hdr(&c->hdr, REC_CONNECT, sizeof(*c));
	c->family = family;
	c->fd = (__s32)a.a[0];
	c->flags = CONN_F_FD;
	if (family == KS_AF_UNIX) {
		__u64 n = alen - sizeof(family);
		if (n > KS_UNIX_PATH_MAX)
			n = KS_UNIX_PATH_MAX;
		asm volatile("" : "+r"(n));
		if (n > 0 && n <= KS_UNIX_PATH_MAX &&
		    !bpf_probe_read_user(c->path, n, uaddr + sizeof(family))) {
			c->path_len = n;
			c->flags |= CONN_F_UPATH;
		}
	}
	return 0;
}

/* inet_connect handles connect4/connect6. */
static __always_inline int inet_connect(struct bpf_sock_addr *ctx, __u8 family)
{
	if (is_self())
		return 1;
	__u32 proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	struct net_scratch *s = net_scratch_get();
	if (!s)
		return 1;
	struct conn_rec *c = pending_get(0);
	bool direct = false;
	if (!c || c->hdr.type != REC_CONNECT || c->family != family) {
		/* Not through the connect syscall (io_uring): report from here. */
		c = &s->conn;
		__builtin_memset(c, 0, sizeof(*c));
		fill_hdr(&c->hdr, REC_CONNECT, sizeof(*c));
		c->family = family;
		c->fd = -1;
		direct = true;
	}
	c->proto = proto;
	c->cookie = bpf_get_socket_cookie(ctx);
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
	c->flags |= CONN_F_DST;
	egress_track(s, c);
	if (direct)
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
	struct conn_rec *c = pending_get(0);
	bool direct = false;
	if (!c || c->hdr.type != REC_CONNECT || c->family != KS_AF_UNIX) {
		c = &s->conn;
		__builtin_memset(c, 0, sizeof(*c));
		fill_hdr(&c->hdr, REC_CONNECT, sizeof(*c));
		c->family = KS_AF_UNIX;
		c->fd = -1;
		direct = true;
	}
	c->cookie = bpf_get_socket_cookie(ctx);
	c->proto = ctx->type;
	struct sockaddr *ua = BPF_CORE_READ(k, uaddr);
	__u64 n = BPF_CORE_READ(k, uaddrlen);
	n = n > sizeof(__u16) ? n - sizeof(__u16) : 0;
	if (n > KS_UNIX_PATH_MAX)
		n = KS_UNIX_PATH_MAX;
	asm volatile("" : "+r"(n));
	__builtin_memset(c->path, 0, sizeof(c->path));
	c->path_len = 0;
	if (n > 0 && n <= KS_UNIX_PATH_MAX &&
	    !bpf_probe_read_kernel(c->path, n, (void *)ua + sizeof(__u16)))
		c->path_len = n;
	c->flags = (c->flags & ~CONN_F_UPATH) | CONN_F_DST;
	if (direct)
		conn_emit(c);
	return 1;
}

/* sock_from_fd returns the struct sock behind fd in the current task, or NULL. */
static __always_inline struct sock *sock_from_fd(int fd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	struct files_struct *files = BPF_CORE_READ(t, files);
	struct fdtable *fdt = BPF_CORE_READ(files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	if (fd < 0 || (unsigned int)fd >= max)
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
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

SYS_EXIT(connect)
{
	struct conn_rec *c = pending_get(0);
	if (!c || c->hdr.type != REC_CONNECT)
		return 0;
	/* An inet connect() that never reached the cgroup hook (EALREADY,
	 * EISCONN, EINVAL, a re-poll of a non-blocking connect) is not a new
	 * connection. AF_UNIX ones are kept: a failed connect to a runtime
	 * socket still matters. */
	if (!(c->flags & CONN_F_DST) && c->family != KS_AF_UNIX)
		goto out;
	c->result = (__s32)ret;
	c->flags |= CONN_F_RESULT;
	struct sock *sk = NULL;
	if (c->family == KS_AF_INET || c->family == KS_AF_INET6) {
		sk = sock_from_fd(c->fd);
		if (sk) {
			__u16 sport = BPF_CORE_READ(sk, __sk_common.skc_num);
			if (c->family == KS_AF_INET) {
				__u32 a = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
				__builtin_memcpy(c->saddr, &a, 4);
			} else {
				BPF_CORE_READ_INTO(&c->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
			}
			c->sport = sport;
			c->flags |= CONN_F_SRC;
			struct egress_val *e = bpf_map_lookup_elem(&egress_socks, &c->cookie);
			if (e) {
				e->sport = sport;
				__builtin_memcpy(e->saddr, c->saddr, sizeof(e->saddr));
				e->flags |= CONN_F_SRC;
			}
		}
	}
	if (c->result == -KS_EINPROGRESS && c->proto == IPPROTO_TCP) {
		conn_finish_or_park(c, sk);
		goto out;
	}
	conn_emit(c);
out:
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

SEC("tp_btf/sock_send_length")
int BPF_PROG(net_send_length, struct sock *sk, int ret, int flags)
{
	if (ret <= 0)
		return 0;
	/* The cookie is generated by our connect hook; a socket without one
	 * was never connected under the sensor. */
	__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return 0;
	struct egress_val *e = bpf_map_lookup_elem(&egress_socks, &cookie);
	if (!e)
		return 0;
	__sync_fetch_and_add(&e->bytes_sent, (__u64)ret);
	__sync_fetch_and_add(&e->sends, 1);
	return 0;
}

SEC("cgroup/sock_release")
int net_sock_release(struct bpf_sock *ctx)
{
	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return 1;
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct egress_val *e = bpf_map_lookup_elem(&egress_socks, &cookie);
	if (!e)
		return 1;
	struct net_scratch *s = net_scratch_get();
	if (s) {
		struct egress_val *r = &s->eg;
		__builtin_memcpy(r, e, sizeof(*r));
		r->hdr.ts_ns = bpf_ktime_get_boot_ns();
		r->flags |= CONN_F_CLOSED;
		if (emit_record(r, sizeof(*r), CLASS_BULK))
			net_count(NET_RINGBUF_FULL);
	}
	if (!bpf_map_delete_elem(&egress_socks, &cookie))
		net_count(NET_SOCK_RELEASED);
	return 1;
}

