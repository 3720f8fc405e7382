// uring_send IP PORT FILE: connect to IP:PORT and send FILE through io_uring
// (IORING_OP_CONNECT, IORING_OP_SEND), as a loader that avoids the connect
// and send system calls would. Raw syscalls, no liburing. Prints the
// egress-expect line of the variant harness.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int ring_fd;
static struct io_uring_params p;
static unsigned char *sq, *cq;
static struct io_uring_sqe *sqes;

static int submit(struct io_uring_sqe *e)
{
	unsigned *tail = (unsigned *)(sq + p.sq_off.tail), mask = *(unsigned *)(sq + p.sq_off.ring_mask);
	unsigned idx = *tail & mask;
	sqes[idx] = *e;
	((unsigned *)(sq + p.sq_off.array))[idx] = idx;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, ring_fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
		perror("io_uring_enter");
		exit(1);
	}
	unsigned *head = (unsigned *)(cq + p.cq_off.head), cmask = *(unsigned *)(cq + p.cq_off.ring_mask);
	struct io_uring_cqe *c = (struct io_uring_cqe *)(cq + p.cq_off.cqes) + (*head & cmask);
	int res = c->res;
	__atomic_store_n(head, *head + 1, __ATOMIC_RELEASE);
	return res;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: uring_send IP PORT FILE\n");
		return 2;
	}
	ring_fd = syscall(__NR_io_uring_setup, 4, &p);
	if (ring_fd < 0) {
		perror("io_uring_setup");
		return 1;
	}
	sq = mmap(0, p.sq_off.array + p.sq_entries * 4, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQ_RING);
	cq = mmap(0, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_CQ_RING);
	sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
	inet_pton(AF_INET, argv[1], &a.sin_addr);
	struct io_uring_sqe e;
	memset(&e, 0, sizeof(e));
	e.opcode = IORING_OP_CONNECT;
	e.fd = s;
	e.addr = (uintptr_t)&a;
	e.off = sizeof(a);
	int r = submit(&e);
	if (r < 0) {
		fprintf(stderr, "io_uring connect: %s\n", strerror(-r));
		return 1;
	}
	int f = open(argv[3], O_RDONLY);
	if (f < 0) {
		perror("open");
		return 1;
	}
	static char buf[1 << 16];
	long total = 0;
	ssize_t n;
	while ((n = read(f, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n;) {
			memset(&e, 0, sizeof(e));
			e.opcode = IORING_OP_SEND;
			e.fd = s;
			e.addr = (uintptr_t)(buf + off);
			e.len = n - off;
			r = submit(&e);
			if (r < 0) {
				fprintf(stderr, "io_uring send: %s\n", strerror(-r));
				return 1;
			}
			off += r;
			total += r;
		}
	}
	close(s);
	printf("egress-expect proto=tcp origin=connect dport=%s bytes=%ld\n", argv[2], total);
	return 0;
}
