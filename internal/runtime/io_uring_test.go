package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// A minimal io_uring client for the tests: one submission, one completion.

type iouParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

// iouSQE is struct io_uring_sqe, with the fields the tests use.
type iouSQE struct {
	opcode, flags uint8
	ioprio        uint16
	fd            int32
	off           uint64 // addr2
	addr          uint64
	len           uint32
	opFlags       uint32 // open_flags, rename_flags, unlink_flags
	userData      uint64
	bufIndex      uint16
	personality   uint16
	fileIndex     int32
	addr3         uint64
	pad           uint64
}

const (
	iouOpOpenat   = 18
	iouOpRenameat = 35
	iouOpUnlinkat = 36
	iouOffSQEs    = 0x10000000
	iouEnterWait  = 1
	// atFDCWD32 is AT_FDCWD in the SQE's unsigned len field (RENAMEAT's new dirfd).
	atFDCWD32 = 0xffffff9c
)

// iouDo submits sqe on a new ring and returns the completion's result.
func iouDo(sqe iouSQE) (int32, error) {
	var p iouParams
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return 0, fmt.Errorf("io_uring_setup: %w", e)
	}
	defer unix.Close(int(fd))
	ringSize := int(max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*16))
	ring, err := unix.Mmap(int(fd), 0, ringSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return 0, fmt.Errorf("mmap ring: %w", err)
	}
	defer unix.Munmap(ring)
	sqes, err := unix.Mmap(int(fd), iouOffSQEs, int(p.sqEntries)*64, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return 0, fmt.Errorf("mmap sqes: %w", err)
	}
	defer unix.Munmap(sqes)
	*(*iouSQE)(unsafe.Pointer(&sqes[0])) = sqe
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&ring[off])) }
	tail := atomic.LoadUint32(u32(p.sqOff.tail))
	*u32(p.sqOff.array + (tail&*u32(p.sqOff.ringMask))*4) = 0
	atomic.StoreUint32(u32(p.sqOff.tail), tail+1)
	if _, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, fd, 1, 1, iouEnterWait, 0, 0); e != 0 {
		return 0, fmt.Errorf("io_uring_enter: %w", e)
	}
	head := atomic.LoadUint32(u32(p.cqOff.head))
	if head == atomic.LoadUint32(u32(p.cqOff.tail)) {
		return 0, errors.New("no completion")
	}
	cqe := p.cqOff.cqes + (head&*u32(p.cqOff.ringMask))*16
	res := *(*int32)(unsafe.Pointer(&ring[cqe+8]))
	atomic.StoreUint32(u32(p.cqOff.head), head+1)
	return res, nil
}

// runIOUringHelper performs one io_uring file operation in the helper
// child: "open" args[1], or "rename" args[1] to args[1]+".moved".
func runIOUringHelper(args []string) int {
	what, arg := args[0], args[1]
	path, _ := unix.BytePtrFromString(arg)
	to, _ := unix.BytePtrFromString(arg + ".moved")
	var sqe iouSQE
	switch what {
	case "open":
		sqe = iouSQE{opcode: iouOpOpenat, fd: unix.AT_FDCWD, addr: uint64(uintptr(unsafe.Pointer(path))),
			opFlags: unix.O_RDONLY | unix.O_CLOEXEC}
	case "rename":
		sqe = iouSQE{opcode: iouOpRenameat, fd: unix.AT_FDCWD, addr: uint64(uintptr(unsafe.Pointer(path))),
			len: atFDCWD32, off: uint64(uintptr(unsafe.Pointer(to)))}
	case "unlink":
		sqe = iouSQE{opcode: iouOpUnlinkat, fd: unix.AT_FDCWD, addr: uint64(uintptr(unsafe.Pointer(path)))}
	default:
		fmt.Fprintln(os.Stderr, "unknown io_uring helper", what)
		return 2
	}
	res, err := iouDo(sqe)
	runtime.KeepAlive(path) // the kernel read them through the SQE's addresses
	runtime.KeepAlive(to)
	fmt.Println(res, err)
	return 0
}

// TestIOUringFileOps: opens, renames and unlinks submitted through
// io_uring are reported as the syscalls' events, flagged io_uring, and an
// open is decided on the file it opened like a syscall's.
func TestIOUringFileOps(t *testing.T) {
	s, c := startSensor(t, testConfig())
	if !slices.Contains(s.Programs(), "kestrel_iou_complete_optional") {
		t.Skip("the io_uring tracepoints of this kernel have other signatures: the programs did not load")
	}
	dir := t.TempDir()

	t.Run("open of a watched name", func(t *testing.T) {
		model := filepath.Join(dir, "w.safetensors")
		if err := os.WriteFile(model, []byte("w"), 0o600); err != nil {
			t.Fatal(err)
		}
		pid, out := helper(t, "/", "iou", "open", model)
		if strings.HasPrefix(out, "-") || !strings.HasSuffix(out, "<nil>") {
			t.Fatalf("helper: %s", out)
		}
		f := c.wait(t, "io_uring open", openOf(pid)).File
		if f.Via != event.ViaIOUring || f.Syscall != "openat" || f.Path != model || f.Match != event.MatchName || f.Result < 0 {
			t.Errorf("got %+v; want an io_uring openat of %s", f, model)
		}
	})

	t.Run("open of a knob by another name", func(t *testing.T) {
		link := filepath.Join(dir, "cp")
		if err := os.Symlink("/proc/sys/kernel/core_pattern", link); err != nil {
			t.Fatal(err)
		}
		pid, _ := helper(t, "/", "iou", "open", link)
		f := c.wait(t, "io_uring knob open", openOf(pid)).File
		if f.Via != event.ViaIOUring || f.Knob != event.KnobCorePattern || f.RawPath != link {
			t.Errorf("got %+v; want core_pattern by identity through io_uring", f)
		}
	})

	t.Run("rename and unlink of watched names", func(t *testing.T) {
		model := filepath.Join(dir, "r.safetensors")
		if err := os.WriteFile(model, []byte("w"), 0o600); err != nil {
			t.Fatal(err)
		}
		pid, out := helper(t, "/", "iou", "rename", model)
		if !strings.HasPrefix(out, "0 ") {
			t.Fatalf("helper: %s", out)
		}
		sys := c.wait(t, "io_uring rename", func(e *event.Event) bool {
			return e.Kind == event.KindSyscall && e.Process.PID == uint32(pid) && e.Sys.Name == "rename"
		}).Sys
		if sys.Via != event.ViaIOUring || sys.Path != model || sys.Path2 != model+".moved" || sys.Ret != 0 {
			t.Errorf("rename = %+v", sys)
		}
		pid, _ = helper(t, "/", "iou", "unlink", filepath.Join(dir, "absent.safetensors"))
		sys = c.wait(t, "io_uring unlink", func(e *event.Event) bool {
			return e.Kind == event.KindSyscall && e.Process.PID == uint32(pid) && e.Sys.Name == "unlink"
		}).Sys
		if sys.Via != event.ViaIOUring || sys.Ret != -int64(unix.ENOENT) {
			t.Errorf("unlink = %+v; want -ENOENT through io_uring", sys)
		}
	})
}
