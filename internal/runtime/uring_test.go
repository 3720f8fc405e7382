package runtime

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A minimal io_uring for the network tests: one ring, one request at a
// time, submitted and waited for with io_uring_enter. It is what an
// attacker's loader does to connect, accept and send without the connect,
// accept4 and sendto system calls.

// io_uring opcodes (include/uapi/linux/io_uring.h).
const (
	uringOpSendmsg = 9
	uringOpAccept  = 13
	uringOpConnect = 16
	uringOpSend    = 26
)

type uringSQOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type uringCQOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  uringSQOffsets
	cqOff                                                                  uringCQOffsets
}

type uringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64 // addr2
	addr        uint64
	len         uint32
	opFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	fileIndex   int32
	addr3       uint64
	pad         uint64
}

type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

type uring struct {
	fd             int
	sq, cq, sqes   []byte
	p              uringParams
	sqTail, cqHead *uint32
}

func newURing() (*uring, error) {
	r := &uring{}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&r.p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r.fd = int(fd)
	var err error
	if r.sq, err = unix.Mmap(r.fd, 0, int(r.p.sqOff.array+r.p.sqEntries*4), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("mmap sq ring: %w", err)
	}
	if r.cq, err = unix.Mmap(r.fd, 0x8000000, int(r.p.cqOff.cqes+r.p.cqEntries*16), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("mmap cq ring: %w", err)
	}
	if r.sqes, err = unix.Mmap(r.fd, 0x10000000, int(r.p.sqEntries*64), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("mmap sqes: %w", err)
	}
	r.sqTail = (*uint32)(unsafe.Pointer(&r.sq[r.p.sqOff.tail]))
	r.cqHead = (*uint32)(unsafe.Pointer(&r.cq[r.p.cqOff.head]))
	return r, nil
}

func (r *uring) Close() {
	for _, m := range [][]byte{r.sq, r.cq, r.sqes} {
		if m != nil {
			unix.Munmap(m)
		}
	}
	unix.Close(r.fd)
}

// do submits sqe and waits for its completion; it returns the result, or
// the errno of a negative result. ptrs are kept alive until then.
func (r *uring) do(sqe uringSQE, ptrs ...unsafe.Pointer) (int32, error) {
	tail := atomic.LoadUint32(r.sqTail)
	mask := *(*uint32)(unsafe.Pointer(&r.sq[r.p.sqOff.ringMask]))
	idx := tail & mask
	*(*uringSQE)(unsafe.Pointer(&r.sqes[idx*64])) = sqe
	*(*uint32)(unsafe.Pointer(&r.sq[r.p.sqOff.array+idx*4])) = idx
	atomic.StoreUint32(r.sqTail, tail+1)
	const enterGetEvents = 1
	for {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 1, 1, enterGetEvents, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, fmt.Errorf("io_uring_enter: %w", errno)
		}
		break
	}
	for _, p := range ptrs {
		_ = *(*byte)(p)
	}
	head := atomic.LoadUint32(r.cqHead)
	if head == atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.cq[r.p.cqOff.tail]))) {
		return 0, errors.New("io_uring: no completion")
	}
	cmask := *(*uint32)(unsafe.Pointer(&r.cq[r.p.cqOff.ringMask]))
	cqe := *(*uringCQE)(unsafe.Pointer(&r.cq[r.p.cqOff.cqes+(head&cmask)*16]))
	atomic.StoreUint32(r.cqHead, head+1)
	if cqe.res < 0 {
		return cqe.res, syscall.Errno(-cqe.res)
	}
	return cqe.res, nil
}

// connect4 connects fd to the IPv4 address ip:port.
func (r *uring) connect4(fd int, ip [4]byte, port int) error {
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip}
	sa.Port = uint16(port>>8) | uint16(port&0xff)<<8
	_, err := r.do(uringSQE{opcode: uringOpConnect, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(&sa))),
		off: uint64(unsafe.Sizeof(sa))}, unsafe.Pointer(&sa))
	return err
}

// send sends all of b on fd with IORING_OP_SEND.
func (r *uring) send(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := r.do(uringSQE{opcode: uringOpSend, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(&b[0]))),
			len: uint32(len(b))}, unsafe.Pointer(&b[0]))
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// sendmsgTo sends b to ip:port with IORING_OP_SENDMSG and msg_name.
func (r *uring) sendmsgTo(fd int, b []byte, ip [4]byte, port int) error {
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip}
	sa.Port = uint16(port>>8) | uint16(port&0xff)<<8
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	msg := unix.Msghdr{Name: (*byte)(unsafe.Pointer(&sa)), Namelen: uint32(unsafe.Sizeof(sa)), Iov: &iov, Iovlen: 1}
	_, err := r.do(uringSQE{opcode: uringOpSendmsg, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(&msg))), len: 1},
		unsafe.Pointer(&sa), unsafe.Pointer(&iov), unsafe.Pointer(&msg), unsafe.Pointer(&b[0]))
	return err
}

// accept accepts a connection on the listening fd and returns the new fd.
func (r *uring) accept(fd int) (int, error) {
	n, err := r.do(uringSQE{opcode: uringOpAccept, fd: int32(fd), opFlags: unix.SOCK_CLOEXEC})
	return int(n), err
}
