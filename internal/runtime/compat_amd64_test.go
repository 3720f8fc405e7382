package runtime

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// call32 is one i386 syscall: its number and up to five arguments, each a
// number or a string (placed in the program's data, passed by address).
type call32 struct {
	nr   uint32
	args []any
}

// int80Program returns a static x86 program that makes each call with
// int 0x80 and then exits 0: as a 32-bit ELF (is64 false) or as a 64-bit
// one, which runs the same instructions in 64-bit mode. Every address is
// below 4 GiB, so both pass pointers in the 32-bit registers. The code is
// assembled by hand: mov r32, imm32 (B8+r) and int 0x80 (CD 80).
func int80Program(is64 bool, calls []call32) []byte {
	const base = 0x08048000
	hdr := 52 + 32 // ELF32 header and one program header
	if is64 {
		hdr = 64 + 56
	}
	// Instruction bytes: per call 6 movs of 5 bytes and int 0x80; then exit.
	codeLen := len(calls)*(6*5+2) + 2*5 + 2
	var data []byte
	addr := func(s string) uint32 {
		a := uint32(base + hdr + codeLen + len(data))
		data = append(append(data, s...), 0)
		return a
	}
	var code []byte
	mov := func(op byte, v uint32) { code = binary.LittleEndian.AppendUint32(append(code, op), v) }
	regs := []byte{0xBB, 0xB9, 0xBA, 0xBE, 0xBF} // ebx, ecx, edx, esi, edi
	for _, c := range calls {
		mov(0xB8, c.nr) // eax
		for i, op := range regs {
			var v uint32
			if i < len(c.args) {
				switch a := c.args[i].(type) {
				case string:
					v = addr(a)
				case int:
					v = uint32(a)
				case uint32:
					v = a
				}
			}
			mov(op, v)
		}
		code = append(code, 0xCD, 0x80)
	}
	mov(0xB8, 1) // exit(0)
	mov(0xBB, 0)
	code = append(code, 0xCD, 0x80)

	size := uint64(hdr + len(code) + len(data))
	var b bytes.Buffer
	if is64 {
		binary.Write(&b, binary.LittleEndian, elf.Header64{
			Ident: [16]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
			Type:  uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
			Entry: uint64(base + hdr), Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 1,
		})
		binary.Write(&b, binary.LittleEndian, elf.Prog64{
			Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: base, Paddr: base,
			Filesz: size, Memsz: size, Align: 0x1000,
		})
	} else {
		binary.Write(&b, binary.LittleEndian, elf.Header32{
			Ident: [16]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS32), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
			Type:  uint16(elf.ET_EXEC), Machine: uint16(elf.EM_386), Version: uint32(elf.EV_CURRENT),
			Entry: uint32(base + hdr), Phoff: 52, Ehsize: 52, Phentsize: 32, Phnum: 1,
		})
		binary.Write(&b, binary.LittleEndian, elf.Prog32{
			Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: base, Paddr: base,
			Filesz: uint32(size), Memsz: uint32(size), Align: 0x1000,
		})
	}
	b.Write(code)
	b.Write(data)
	return b.Bytes()
}

// TestCompatSyscalls: 32-bit syscalls (a 32-bit binary, and int 0x80 from
// a 64-bit one) reach the same handlers as native ones, through their own
// numbers and registers, and are flagged compat. Syscall tracepoints of
// tracefs never fire for them on x86-64.
func TestCompatSyscalls(t *testing.T) {
	_, c := startSensor(t, testConfig())
	dir := t.TempDir()
	model := filepath.Join(dir, "weights.safetensors")
	if err := os.WriteFile(model, []byte("w"), 0o600); err != nil {
		t.Fatal(err)
	}
	const (
		i386Open    = 5
		i386Kill    = 37
		i386Ptrace  = 26
		i386Unshare = 310
		i386Openat  = 295
	)
	calls := []call32{
		{i386Unshare, []any{unix.CLONE_NEWUTS}},
		{i386Open, []any{model, unix.O_RDONLY}},
		{i386Openat, []any{uint32(0xffffff9c) /* AT_FDCWD */, model, unix.O_RDONLY}},
		{i386Ptrace, []any{unix.PTRACE_ATTACH, 1}},
		{i386Kill, []any{os.Getpid(), int(unix.SIGURG)}},
	}
	for _, tt := range []struct {
		name string
		is64 bool
	}{{"32-bit binary", false}, {"int 0x80 from 64-bit", true}} {
		t.Run(tt.name, func(t *testing.T) {
			bin := filepath.Join(dir, "int80-probe")
			if tt.is64 {
				bin += "64"
			}
			if err := os.WriteFile(bin, int80Program(tt.is64, calls), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin)
			if out, err := cmd.CombinedOutput(); err != nil {
				if errors.Is(err, unix.ENOEXEC) || (cmd.ProcessState != nil && !cmd.ProcessState.Exited()) {
					t.Skipf("this kernel runs no 32-bit code (IA32 emulation off?): %v", err)
				}
				t.Fatalf("%s: %v: %s", bin, err, out)
			}
			pid := uint32(cmd.Process.Pid)
			sys := func(name string) *event.Syscall {
				return c.wait(t, name, func(e *event.Event) bool {
					return e.Kind == event.KindSyscall && e.Process.PID == pid && e.Sys.Name == name
				}).Sys
			}
			if s := sys("unshare"); !s.Compat || s.Flags != unix.CLONE_NEWUTS || s.Ret != 0 {
				t.Errorf("unshare = %+v; want compat, CLONE_NEWUTS, 0", s)
			}
			if s := sys("ptrace"); !s.Compat || s.Flags != unix.PTRACE_ATTACH || s.Target != 1 {
				t.Errorf("ptrace = %+v; want compat PTRACE_ATTACH of 1", s)
			}
			if s := sys("kill"); !s.Compat || s.Target != uint32(os.Getpid()) || s.Flags != uint64(unix.SIGURG) || s.Ret != 0 {
				t.Errorf("kill = %+v; want compat SIGURG to %d", s, os.Getpid())
			}
			// The signal the kill generated for the sensor (this process)
			// names the 32-bit call.
			if s := sys(event.SyscallSignal); !s.Compat || s.Arg != "SIGURG via kill (32-bit)" {
				t.Errorf("signal = %+v; want SIGURG via kill (32-bit)", s)
			}
			for _, call := range []string{"open", "openat"} {
				f := c.wait(t, call, func(e *event.Event) bool {
					return e.Kind == event.KindOpen && e.Process.PID == pid && e.File.Syscall == call
				}).File
				if !f.Compat || f.Path != model || f.PathSource != event.PathKernel || f.Result < 0 || f.ExitOnly {
					t.Errorf("%s = %+v; want a compat open of %s", call, f, model)
				}
			}
		})
	}
}

// TestCompatSyscallNumbers checks the i386 numbers of sysHandlers against
// golang.org/x/sys's 386 table (a file this amd64 build cannot import).
func TestCompatSyscallNumbers(t *testing.T) {
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`golang\.org/x/sys (v\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod names no golang.org/x/sys version")
	}
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skipf("no go command to find the module cache: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "golang.org/x/sys@"+string(m[1]), "unix/zsysnum_linux_386.go"))
	if err != nil {
		t.Skipf("x/sys source not in the module cache: %v", err)
	}
	i386 := map[string]int{}
	for _, l := range regexp.MustCompile(`(SYS_\w+)\s+=\s+(\d+)`).FindAllStringSubmatch(string(src), -1) {
		n, _ := strconv.Atoi(l[2])
		i386[l[1]] = n
	}
	// Handler names that are not their syscall's name on i386.
	rename := map[string]string{"umount": "SYS_UMOUNT2", "oldumount": "SYS_UMOUNT", "accept": "SYS_ACCEPT4"}
	checked := 0
	for _, h := range sysHandlers {
		if h.compat == noSyscall {
			continue
		}
		name := rename[h.name]
		if name == "" {
			name = "SYS_" + strings.ToUpper(h.name)
		}
		want, ok := i386[name]
		if !ok {
			t.Errorf("%s: no %s in x/sys's 386 table", h.name, name)
			continue
		}
		if h.compat != want {
			t.Errorf("%s: compat number %d; i386 %s is %d", h.name, h.compat, name, want)
		}
		checked++
	}
	if checked < 30 {
		t.Errorf("checked %d compat numbers; the table has more", checked)
	}
}
