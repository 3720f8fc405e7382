package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// runSysHelper performs one escape-primitive syscall in the helper child
// and prints its result. args[0] names the call, args[1] is a directory or
// pid to work on.
func runSysHelper(args []string) int {
	what, arg := args[0], args[1]
	var err error
	switch what {
	case "unshare":
		err = unix.Unshare(unix.CLONE_NEWUTS)
	case "setns":
		var fd int
		if fd, err = unix.Open("/proc/self/ns/uts", unix.O_RDONLY, 0); err == nil {
			err = unix.Setns(fd, unix.CLONE_NEWUTS)
		}
	case "mount":
		if err = unix.Unshare(unix.CLONE_NEWNS); err != nil {
			break
		}
		if err = unix.Mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			break
		}
		if err = unix.Mount("kestrel-tmpfs", arg, "tmpfs", unix.MS_NOSUID, ""); err != nil {
			break
		}
		err = unix.Unmount(arg, unix.MNT_DETACH)
	case "memfd":
		_, err = unix.MemfdCreate("kestrel-memfd", unix.MFD_CLOEXEC)
	case "ptrace":
		err = unix.PtraceAttach(1) // refused here: reported as an attempt
	case "vmread":
		local := []unix.Iovec{{Base: new(byte), Len: 1}}
		remote := []unix.RemoteIovec{{Base: 0x1000, Len: 1}}
		_, err = unix.ProcessVMReadv(1, local, remote, 0)
	case "dup":
		var sv [2]int
		if sv, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0); err == nil {
			err = unix.Dup2(sv[0], 2)
		}
	case "rename":
		from, to := filepath.Join(arg, "a.safetensors"), filepath.Join(arg, "b.safetensors")
		if err = os.WriteFile(from, nil, 0o600); err == nil {
			if err = unix.Rename(from, to); err == nil {
				err = unix.Unlink(to)
			}
		}
	case "rename-plain":
		from, to := filepath.Join(arg, "a.txt"), filepath.Join(arg, "b.txt")
		if err = os.WriteFile(from, nil, 0o600); err == nil {
			err = unix.Rename(from, to)
		}
	case "symlink":
		err = unix.Symlink("/etc/shadow", filepath.Join(arg, "innocent"))
	case "mknod":
		err = unix.Mknod(filepath.Join(arg, "fifo"), unix.S_IFIFO|0o600, 0)
	case "chroot":
		err = unix.Chroot("/")
	case "finit":
		ko := filepath.Join(arg, "evil.ko")
		var fd int
		if err = os.WriteFile(ko, []byte("not an ELF module"), 0o600); err == nil {
			if fd, err = unix.Open(ko, unix.O_RDONLY, 0); err == nil {
				err = unix.FinitModule(fd, "kestrel=1", 0)
			}
		}
	case "bpf":
		var p *ebpf.Program
		p, err = ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: "kestrel_probe", Type: ebpf.SocketFilter, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		})
		if err == nil {
			p.Close()
		}
	case "kill":
		var pid int
		fmt.Sscan(arg, &pid)
		err = unix.Kill(pid, unix.SIGURG) // harmless to a Go process
	default:
		fmt.Fprintln(os.Stderr, "unknown syscall helper", what)
		return 2
	}
	fmt.Println(err)
	return 0
}

func TestEscapeSyscalls(t *testing.T) {
	_, c := startSensor(t, testConfig())
	dir := t.TempDir()
	var utsIno uint64
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/uts", &st); err == nil {
		utsIno = st.Ino
	}
	tests := []struct {
		what, arg string
		check     func(t *testing.T, s *event.Syscall, out string)
	}{
		{"unshare", "-", func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != "unshare" || s.Flags != unix.CLONE_NEWUTS || s.Ret != 0 {
				t.Errorf("got %+v", s)
			}
		}},
		{"setns", "-", func(t *testing.T, s *event.Syscall, out string) {
			// the child shares our uts namespace
			if s.Name != "setns" || s.Flags != unix.CLONE_NEWUTS || s.Ret != 0 || uint64(s.NSInode) != utsIno || s.Fd < 3 {
				t.Errorf("got %+v; want ns inode %d", s, utsIno)
			}
		}},
		{"mount", dir, func(t *testing.T, s *event.Syscall, out string) {
			if s.Path != "kestrel-tmpfs" || s.Path2 != dir || s.Arg != "tmpfs" || s.Flags != unix.MS_NOSUID || s.Ret != 0 {
				t.Errorf("got %+v (child: %s)", s, out)
			}
		}},
		{"memfd", "-", func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != "memfd_create" || s.Arg != "kestrel-memfd" || s.Flags != unix.MFD_CLOEXEC || s.Ret < 0 {
				t.Errorf("got %+v", s)
			}
		}},
		{"ptrace", "-", func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != "ptrace" || s.Flags != unix.PTRACE_ATTACH || s.Target != 1 {
				t.Errorf("got %+v", s)
			}
			if out != "<nil>" && s.Ret >= 0 {
				t.Errorf("child failed (%s) but ret = %d", out, s.Ret)
			}
		}},
		{"vmread", "-", func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != "process_vm_readv" || s.Target != 1 {
				t.Errorf("got %+v", s)
			}
		}},
		{"dup", "-", func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != "dup" || s.Fd2 != 2 || !s.FdIsSocket || s.Ret != 2 {
				t.Errorf("got %+v", s)
			}
		}},
		{"rename", dir, func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != "rename" || s.Path != filepath.Join(dir, "a.safetensors") || s.Path2 != filepath.Join(dir, "b.safetensors") || s.Ret != 0 {
				t.Errorf("got %+v", s)
			}
		}},
		{"symlink", dir, func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != "symlink" || s.Path != "/etc/shadow" || s.Path2 != filepath.Join(dir, "innocent") {
				t.Errorf("got %+v", s)
			}
		}},
		{"mknod", dir, func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != "mknod" || s.Path != filepath.Join(dir, "fifo") || s.Flags != unix.S_IFIFO|0o600 || s.Ret != 0 {
				t.Errorf("got %+v", s)
			}
		}},
		{"chroot", "-", func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != "chroot" || s.Path != "/" || s.Ret != 0 {
				t.Errorf("got %+v", s)
			}
		}},
		{"finit", dir, func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != "finit_module" || s.Path != filepath.Join(dir, "evil.ko") || s.Arg != "kestrel=1" || s.Ret >= 0 {
				t.Errorf("got %+v (child: %s)", s, out)
			}
		}},
		{"bpf", "-", func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != "bpf" || s.Arg != "kestrel_probe" || s.Arg2 != uint64(ebpf.SocketFilter) || s.Ret < 0 {
				t.Errorf("got %+v (child: %s)", s, out)
			}
		}},
		{"kill", fmt.Sprint(os.Getpid()), func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != "kill" || s.Target != uint32(os.Getpid()) || s.Flags != uint64(unix.SIGURG) || s.Ret != 0 {
				t.Errorf("got %+v", s)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.what, func(t *testing.T) {
			pid, out := helper(t, "/", "sys", tt.what, tt.arg)
			var name string
			switch tt.what {
			case "memfd":
				name = "memfd_create"
			case "vmread":
				name = "process_vm_readv"
			case "finit":
				name = "finit_module"
			default:
				name = tt.what
			}
			e := c.wait(t, name, func(e *event.Event) bool {
				return e.Kind == event.KindSyscall && e.Process.PID == uint32(pid) && e.Sys.Name == name &&
					(name != "bpf" || e.Sys.Arg == "kestrel_probe") && (name != "mount" || e.Sys.Arg == "tmpfs")
			})
			tt.check(t, e.Sys, out)
		})
	}
	t.Run("unwatched rename and stdio dup of a file not reported", func(t *testing.T) {
		pid, _ := helper(t, "/", "sys", "rename-plain", dir)
		marker, _ := helper(t, "/", "sys", "memfd", "-")
		c.wait(t, "marker", func(e *event.Event) bool { return e.Kind == event.KindSyscall && e.Process.PID == uint32(marker) })
		if e := c.find(func(e *event.Event) bool {
			return e.Kind == event.KindSyscall && (e.Process.PID == uint32(pid) || e.Process.PID == uint32(marker)) &&
				e.Sys.Name != "memfd_create"
		}); e != nil {
			// the helpers' own fork+exec dup3s pipes onto 0-2: not sockets
			t.Errorf("reported %+v", e.Sys)
		}
	})
}
