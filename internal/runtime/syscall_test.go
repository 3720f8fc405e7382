package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

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
	case "mountapi":
		return mountAPIHelper(arg)
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
	case "truncate":
		f := filepath.Join(arg, "w.safetensors")
		if err = os.WriteFile(f, make([]byte, 8192), 0o600); err == nil {
			err = unix.Truncate(f, 4096) // by path: no open for writing
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
	case "seccomp":
		return seccompHelper(arg, filepath.Join(arg, "stolen.safetensors"))
	default:
		fmt.Fprintln(os.Stderr, "unknown syscall helper", what)
		return 2
	}
	fmt.Println(err)
	return 0
}

// seccompHelper installs a seccomp filter on its thread that refuses
// unshare, mount and fsopen with EPERM and openat with EACCES, as a
// container runtime's profile would, then tries each: the calls never
// reach sys_enter. It prints the four errors.
func seccompHelper(dir, watched string) int {
	runtime.LockOSThread() // the filter and the calls on one thread
	arch := map[string]uint32{"amd64": unix.AUDIT_ARCH_X86_64, "arm64": unix.AUDIT_ARCH_AARCH64}[runtime.GOARCH]
	const (
		ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
	)
	filter := []unix.SockFilter{
		{Code: ldAbs, K: 4}, // seccomp_data.arch
		{Code: jeq, K: arch, Jt: 0, Jf: 7},
		{Code: ldAbs, K: 0}, // seccomp_data.nr
		{Code: jeq, K: unix.SYS_UNSHARE, Jt: 4},
		{Code: jeq, K: unix.SYS_MOUNT, Jt: 3},
		{Code: jeq, K: unix.SYS_FSOPEN, Jt: 2},
		{Code: jeq, K: unix.SYS_OPENAT, Jt: 3},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
		{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
		{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EACCES)},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println("no_new_privs:", err)
		return 1
	}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		fmt.Println("seccomp:", err)
		return 1
	}
	e1 := unix.Unshare(unix.CLONE_NEWUTS)
	e2 := unix.Mount("kestrel-tmpfs", dir, "tmpfs", unix.MS_NOSUID, "")
	_, e3 := unix.Open(watched, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	_, e4 := unix.Fsopen("ext4", unix.FSOPEN_CLOEXEC)
	fmt.Println(e1, "|", e2, "|", e3, "|", e4)
	return 0
}

// TestSeccompRefusedAttempts: calls a seccomp filter refuses never reach
// sys_enter; they are reported from sys_exit, with their errno and the
// exit-only flag (opens are all decided at sys_exit: no flag).
func TestSeccompRefusedAttempts(t *testing.T) {
	_, c := startSensor(t, testConfig())
	dir := t.TempDir()
	model := filepath.Join(dir, "stolen.safetensors")
	if err := os.WriteFile(model, []byte("w"), 0o600); err != nil {
		t.Fatal(err)
	}
	pid, out := helper(t, "/", "sys", "seccomp", dir)
	if want := "operation not permitted | operation not permitted | permission denied | operation not permitted"; out != want {
		t.Fatalf("helper: %q; want %q (the filter did not refuse the calls)", out, want)
	}
	by := func(name string) func(*event.Event) bool {
		return func(e *event.Event) bool {
			return e.Kind == event.KindSyscall && e.Process.PID == uint32(pid) && e.Sys.Name == name
		}
	}
	u := c.wait(t, "unshare", by("unshare")).Sys
	if !u.ExitOnly || u.Ret != -int64(unix.EPERM) || u.Flags != unix.CLONE_NEWUTS {
		t.Errorf("unshare = %+v; want exit-only, -EPERM, CLONE_NEWUTS", u)
	}
	m := c.wait(t, "mount", by("mount")).Sys
	if !m.ExitOnly || m.Ret != -int64(unix.EPERM) || m.Path != "kestrel-tmpfs" || m.Path2 != dir || m.Arg != "tmpfs" ||
		m.Flags != unix.MS_NOSUID {
		t.Errorf("mount = %+v; want exit-only, -EPERM, kestrel-tmpfs on %s", m, dir)
	}
	f := c.wait(t, "fsopen", by("fsopen")).Sys
	if !f.ExitOnly || f.Ret != -int64(unix.EPERM) || f.Arg != "ext4" || f.Flags != unix.FSOPEN_CLOEXEC {
		t.Errorf("fsopen = %+v; want exit-only, -EPERM, ext4", f)
	}
	o := c.wait(t, "open", openBy(pid, model)).File
	if o.Result != -int32(unix.EACCES) || o.Path != model || o.Syscall != "openat" || o.Match != event.MatchName {
		t.Errorf("open = %+v; want -EACCES, %s, matched by name", o, model)
	}
	// One report per call: the exit-only path did not also fire for a
	// call sys_enter saw (the marker is the helper's own exit).
	c.wait(t, "exit", func(e *event.Event) bool { return e.Kind == event.KindExit && e.Process.PID == uint32(pid) })
	n := 0
	for _, e := range c.all() {
		if e.Process.PID == uint32(pid) && (e.Kind == event.KindSyscall || e.Kind == event.KindOpen) {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d syscall and open events from the helper; want 4", n)
	}
}

// mountAPIHelper mounts a tmpfs on dir with the new mount API, in a
// private mount namespace of its own (nothing reaches the host's), then
// clones the tree with open_tree. It prints the result of each step.
func mountAPIHelper(dir string) int {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		fmt.Println("unshare:", err)
		return 1
	}
	if err := unix.Mount("none", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fmt.Println("private:", err)
		return 1
	}
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		fmt.Println("fsopen:", err)
		return 1
	}
	e1 := unix.FsconfigSetString(fsfd, "source", "/dev/kestrel-test")
	// CMD_CREATE takes no value: the kernel refuses one (EINVAL), and the
	// handler must not read it either (value is not a string for it).
	notRead := []byte("kestrel-not-read\x00")
	_, _, e2 := unix.Syscall6(unix.SYS_FSCONFIG, uintptr(fsfd), unix.FSCONFIG_CMD_CREATE, 0,
		uintptr(unsafe.Pointer(&notRead[0])), 0, 0)
	e3 := unix.FsconfigCreate(fsfd)
	mfd, e4 := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID)
	e5 := unix.MoveMount(mfd, "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH)
	_, e6 := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	e7 := unix.Unmount(dir, unix.MNT_DETACH)
	fmt.Println(fsfd, mfd, e1, e2, e3, e4, e5, e6, e7)
	return 0
}

// TestNewMountAPI: the new mount API (fsopen, fsconfig, fsmount,
// move_mount, open_tree) mounts with no mount(2); each step is a syscall
// event with its arguments, as mount(2) is.
func TestNewMountAPI(t *testing.T) {
	_, c := startSensor(t, testConfig())
	dir := t.TempDir()
	pid, out := helper(t, "/", "sys", "mountapi", dir)
	var fsfd, mfd int32
	if _, err := fmt.Sscan(out, &fsfd, &mfd); err != nil {
		t.Fatalf("helper: %q", out)
	}
	if want := fmt.Sprint(fsfd, " ", mfd, " <nil> invalid argument <nil> <nil> <nil> <nil> <nil>"); out != want {
		t.Fatalf("helper: %q; want %q", out, want)
	}
	by := func(name string, more func(*event.Syscall) bool) func(*event.Event) bool {
		return func(e *event.Event) bool {
			return e.Kind == event.KindSyscall && e.Process.PID == uint32(pid) && e.Sys.Name == name && more(e.Sys)
		}
	}
	anyCall := func(*event.Syscall) bool { return true }
	if s := c.wait(t, "fsopen", by("fsopen", anyCall)).Sys; s.Arg != "tmpfs" || s.Flags != unix.FSOPEN_CLOEXEC || s.Ret != int64(fsfd) {
		t.Errorf("fsopen = %+v; want tmpfs, FSOPEN_CLOEXEC, fd %d", s, fsfd)
	}
	set := c.wait(t, "fsconfig set_string", by("fsconfig", func(s *event.Syscall) bool { return s.Flags == unix.FSCONFIG_SET_STRING })).Sys
	if set.Fd != fsfd || set.Arg != "source" || set.Path != "/dev/kestrel-test" || set.Ret != 0 {
		t.Errorf("fsconfig SET_STRING = %+v; want fd %d, source=/dev/kestrel-test", set, fsfd)
	}
	bad := c.wait(t, "fsconfig create refused", by("fsconfig", func(s *event.Syscall) bool {
		return s.Flags == unix.FSCONFIG_CMD_CREATE && s.Ret == -int64(unix.EINVAL)
	})).Sys
	if bad.Fd != fsfd || bad.Path != "" || bad.Arg != "" {
		t.Errorf("fsconfig CMD_CREATE with a value = %+v; want fd %d, the value not read", bad, fsfd)
	}
	c.wait(t, "fsconfig create", by("fsconfig", func(s *event.Syscall) bool { return s.Flags == unix.FSCONFIG_CMD_CREATE && s.Ret == 0 }))
	if s := c.wait(t, "fsmount", by("fsmount", anyCall)).Sys; s.Fd != fsfd || s.Flags != unix.FSMOUNT_CLOEXEC ||
		s.Arg2 != unix.MOUNT_ATTR_NOSUID || s.Ret != int64(mfd) {
		t.Errorf("fsmount = %+v; want fd %d, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID, fd %d", s, fsfd, mfd)
	}
	if s := c.wait(t, "move_mount", by("move_mount", anyCall)).Sys; s.Fd != mfd || s.Path != "" || s.Fd2 != unix.AT_FDCWD ||
		s.Path2 != dir || s.Flags != unix.MOVE_MOUNT_F_EMPTY_PATH || s.Ret != 0 {
		t.Errorf("move_mount = %+v; want fd %d onto %s", s, mfd, dir)
	}
	if s := c.wait(t, "open_tree", by("open_tree", anyCall)).Sys; s.Fd != unix.AT_FDCWD || s.Path != dir ||
		s.Flags != unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC || s.Ret < 0 {
		t.Errorf("open_tree = %+v; want %s, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC", s, dir)
	}
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
		{"truncate", dir, func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != "truncate" || s.Path != filepath.Join(dir, "w.safetensors") || s.Arg2 != 4096 || s.Ret != 0 {
				t.Errorf("got %+v (child: %s)", s, out)
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
		// A kill of the sensor is the signal event (self.bpf.h), which names
		// the call; there is no kill syscall event besides.
		{"kill", fmt.Sprint(os.Getpid()), func(t *testing.T, s *event.Syscall, out string) {
			if s.Name != event.SyscallSignal || s.Target != uint32(os.Getpid()) || s.Flags != uint64(unix.SIGURG) ||
				s.Ret != 0 || runtime.GOARCH == "amd64" && s.Arg != "SIGURG via kill" {
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
			case "kill":
				name = event.SyscallSignal
			default:
				name = tt.what
			}
			e := c.wait(t, name, func(e *event.Event) bool {
				return e.Kind == event.KindSyscall && e.Process.PID == uint32(pid) && e.Sys.Name == name &&
					(name != "bpf" || e.Sys.Arg == "kestrel_probe") && (name != "mount" || e.Sys.Arg == "tmpfs")
			})
			if e.Sys.ExitOnly || e.Sys.Compat {
				t.Errorf("%s flagged exit-only %v, compat %v; sys_enter saw a native call", name, e.Sys.ExitOnly, e.Sys.Compat)
			}
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
