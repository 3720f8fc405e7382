package runtime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/btf"

	"github.com/kestrel-sec/kestrel/internal/event"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpus in testdata/fuzz/FuzzDecode")

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testDecoder() *decoder { return &decoder{bootEpoch: epoch} }

func TestDecodeExec(t *testing.T) {
	e, err := testDecoder().decode(sampleExec())
	if err != nil {
		t.Fatal(err)
	}
	p := e.Process
	want := event.Process{
		PID: 4242, TID: 4243, PPID: 1, ForkParent: 1, UID: 1000, EUID: 0, Comm: "python3",
		Exe: "/usr/bin/python3.12", Cwd: "/srv", Args: []string{"python3", "-m", "vllm.entrypoints"},
		Env: []event.EnvVar{
			{Name: "LD_PRELOAD", Value: "/tmp/evil.so"},
			{Name: "HF_TOKEN", Value: "sha256:" + sha256hex("hf_abc")},
			{Name: "CUDA_VISIBLE_DEVICES", Value: "0,1"},
		},
		StartTime: epoch.Add(4 * time.Second), ExecTime: epoch.Add(5 * time.Second), CgroupID: 77,
		NS: event.Namespaces{
			Mnt: 4026531841, PID: 4026531836, Net: 4026531840, User: 4026531837, UTS: 4026531838,
			IPC: 4026531839, Cgroup: 4026531835,
		},
		CapEff: 0x1ff, CapPrm: 0x3ff, TTY: true,
	}
	if e.Kind != event.KindExec || !e.Time.Equal(epoch.Add(5*time.Second)) {
		t.Errorf("kind %v time %v", e.Kind, e.Time)
	}
	if !reflect.DeepEqual(*p, want) {
		t.Errorf("process:\n got %+v\nwant %+v", *p, want)
	}
}

// execEnvAt returns the offset of the kept environment in an exec record.
func execEnvAt(b []byte) int {
	return execData + int(le.Uint16(b[execExeLen:])) + 1 + int(le.Uint16(b[execCwdLen:])) + 1 + int(le.Uint16(b[execArgsLen:]))
}

func TestDecodeExecTruncatedPaths(t *testing.T) {
	b := buildExec(execFields{hdrFields: testHdr, exe: "/d/d/x", cwd: "/d/d", flags: execFExeTr | execFCwdTr})
	e, err := testDecoder().decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Process.Exe != ".../d/d/x" || e.Process.Cwd != ".../d/d" {
		t.Errorf("exe %q cwd %q; want both marked truncated", e.Process.Exe, e.Process.Cwd)
	}
}

func TestDecodeExecMemfdAndCutEnv(t *testing.T) {
	b := buildExec(execFields{
		hdrFields: testHdr, exe: "memfd:payload (deleted)", flags: execFEnvTr,
		args: []byte("x"), // truncated argv keeps its partial last element
		env:  envEntries("LD_AUDIT=/a.so", "LD_PRELOAD=/cut-he"+envCutMark, "AWS_SESSION_TOKEN=abc"+envCutMark),
	})
	e, err := testDecoder().decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Process.ExeMemfd {
		t.Error("memfd exe not flagged")
	}
	if !slices.Equal(e.Process.Args, []string{"x"}) {
		t.Errorf("args = %q", e.Process.Args)
	}
	// A cut value is kept as far as it goes, except a secret's: its hash
	// would be that of another value.
	want := []event.EnvVar{{Name: "LD_AUDIT", Value: "/a.so"}, {Name: "LD_PRELOAD", Value: "/cut-he"}, {Name: "AWS_SESSION_TOKEN"}}
	if !slices.Equal(e.Process.Env, want) {
		t.Errorf("env = %v; want %v", e.Process.Env, want)
	}
}

// Issue 14: the kernel's truncation flags were decoded and thrown away, so
// a command line cut at 1 KiB (a reverse shell behind a pad) read as whole.
// They reach the event as marks; more than 64 arguments is a cut too.
func TestDecodeMarksTruncation(t *testing.T) {
	for _, tt := range []struct {
		name  string
		flags uint32
		args  string
		want  event.Truncation
	}{
		{"whole", 0, "sh\x00-c\x00true\x00", 0},
		{"kernel cut args", execFArgsTr, "bash\x00-c\x00" + strings.Repeat("A", 900), event.TruncArgs},
		{"exe and cwd too deep", execFExeTr | execFCwdTr, "x\x00", event.TruncExe | event.TruncCwd},
		{"env cut", execFEnvTr, "x\x00", event.TruncEnv},
		{"65 arguments", 0, strings.Repeat("a\x00", 65), event.TruncArgs},
		{"64 arguments", 0, strings.Repeat("a\x00", 64), 0},
	} {
		e, err := testDecoder().decode(buildExec(execFields{hdrFields: testHdr, exe: "/bin/sh", flags: tt.flags, args: []byte(tt.args)}))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if e.Process.Truncated != tt.want {
			t.Errorf("%s: Truncated = %v; want %v", tt.name, e.Process.Truncated.Names(), tt.want.Names())
		}
	}
	e, err := testDecoder().decode(buildOpen(openFields{hdrFields: testHdr, raw: "/a/b", path: "/a/b", rflags: openFRawTr | openFPathTr}))
	if err != nil {
		t.Fatal(err)
	}
	if e.File.Truncated != event.TruncRawPath|event.TruncPath {
		t.Errorf("open Truncated = %v; want raw_path and path", e.File.Truncated.Names())
	}
}

func TestDecodeOpen(t *testing.T) {
	tests := []struct {
		name   string
		f      openFields
		path   string
		source event.PathSource
		size   int64
	}{
		{"kernel path of the opened file", openFields{result: 3, call: 1, rflags: openFKernel, size: 9, ino: 5, raw: "m.gguf", path: "/models/m.gguf"},
			"/models/m.gguf", event.PathKernel, 9},
		{"failed absolute", openFields{result: -13, call: 0, raw: "/proc/1/ns/net"},
			"/proc/1/ns/net", event.PathAsPassed, -1},
		{"failed relative joined to its base", openFields{result: -2, call: 1, rflags: openFBase, raw: "../x/y.pt", path: "/srv/app"},
			"/srv/x/y.pt", event.PathKernel, -1},
		{"failed relative, no base", openFields{result: -9, call: 2, raw: "y.pt"},
			"y.pt", event.PathUnresolved, -1},
		{"nsfs file", openFields{result: 4, call: 3, rflags: openFKernel, raw: "/proc/self/ns/mnt", path: "mnt:[4026531841]"},
			"mnt:[4026531841]", event.PathKernel, 0},
		{"refused before sys_enter, compat", openFields{result: -1, call: 0, rflags: openFExit | openFCompat, raw: "/etc/shadow"},
			"/etc/shadow", event.PathAsPassed, -1},
		{"deeper than the walk", openFields{result: 3, call: 1, rflags: openFKernel | openFPathTr, size: 1, raw: "w.bin", path: "/d/e/w.bin"},
			".../d/e/w.bin", event.PathKernel, 1},
		{"raw longer than copied", openFields{result: -2, call: 1, rflags: openFRawTr, raw: "/models/aaaa"},
			"/models/aaaa...", event.PathAsPassed, -1},
		{"failed absolute in a chroot", openFields{result: -13, call: 1, rflags: openFRoot, raw: "/etc/shadow", path: "/proc/2/root"},
			"/proc/2/root/etc/shadow", event.PathKernel, -1},
		{"failed relative, base deeper than the walk", openFields{result: -2, call: 1, rflags: openFBase | openFPathTr, raw: "x.pt", path: "/a/b"},
			".../a/b/x.pt", event.PathKernel, -1},
		{"open_by_handle_at", openFields{result: 5, call: 4, rflags: openFKernel, match: 1 << 6, path: "/etc/shadow", size: 3},
			"/etc/shadow", event.PathKernel, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f.hdrFields = testHdr
			e, err := testDecoder().decode(buildOpen(tt.f))
			if err != nil {
				t.Fatal(err)
			}
			f := e.File
			if f.Path != tt.path || f.PathSource != tt.source || f.Size != tt.size || f.Result != tt.f.result ||
				f.RawPath != tt.f.raw || f.Syscall != openCallNames[tt.f.call] ||
				f.ExitOnly != (tt.f.rflags&openFExit != 0) || f.Compat != (tt.f.rflags&openFCompat != 0) ||
				(f.Truncated&event.TruncPath != 0) != (tt.f.rflags&(openFPathTr|openFRawTr) != 0) ||
				(f.Truncated&event.TruncRawPath != 0) != (tt.f.rflags&openFRawTr != 0) {
				t.Errorf("got %+v; want path %q source %v size %d", f, tt.path, tt.source, tt.size)
			}
		})
	}
}

func TestDecodeOpenDevice(t *testing.T) {
	e, err := testDecoder().decode(sampleOpen())
	if err != nil {
		t.Fatal(err)
	}
	// kernel dev 8:1 is what stat(2) reports as 0x801
	if e.File.Dev != 0x801 || e.File.Inode != 12 || e.File.Size != 1<<30 || e.File.Type != event.FileTypeRegular ||
		e.File.Match != event.MatchName {
		t.Errorf("dev %#x inode %d size %d type %q match %v", e.File.Dev, e.File.Inode, e.File.Size, e.File.Type, e.File.Match)
	}
}

// TestDecodeOpenIdentity: how the kernel matched an open (the knob, the
// device number of a node, io_uring, repeats) reaches the event.
func TestDecodeOpenIdentity(t *testing.T) {
	for _, tt := range []struct {
		name string
		f    openFields
		want event.File
	}{
		{"knob", openFields{result: 3, call: 1, rflags: openFKernel, imode: 0o100644, match: uint8(event.MatchKnob), knob: 1,
			raw: "/tmp/cp", path: "/proc/sys/kernel/core_pattern"},
			event.File{Match: event.MatchKnob, Knob: event.KnobCorePattern, Type: event.FileTypeRegular}},
		{"block device made by mknod", openFields{result: 3, call: 1, rflags: openFKernel, imode: 0o060600, rdev: 8 << 20,
			match: uint8(event.MatchDevice), raw: "/tmp/d", path: "/tmp/d"},
			event.File{Match: event.MatchDevice, Type: event.FileTypeBlock, Rdev: 0x800}},
		{"model by inode, io_uring, repeats", openFields{result: 4, call: 1, rflags: openFKernel | openFIOUring, imode: 0o100600,
			match: uint8(event.MatchModel), repeats: 41, raw: "/tmp/notes.txt", path: "/tmp/notes.txt"},
			event.File{Match: event.MatchModel, Type: event.FileTypeRegular, Via: event.ViaIOUring, Repeats: 41}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.f.hdrFields = testHdr
			e, err := testDecoder().decode(buildOpen(tt.f))
			if err != nil {
				t.Fatal(err)
			}
			f := e.File
			if f.Match != tt.want.Match || f.Knob != tt.want.Knob || f.Type != tt.want.Type || f.Rdev != tt.want.Rdev ||
				f.Via != tt.want.Via || f.Repeats != tt.want.Repeats {
				t.Errorf("got match %v knob %q type %q rdev %#x via %q repeats %d; want %+v",
					f.Match, f.Knob, f.Type, f.Rdev, f.Via, f.Repeats, tt.want)
			}
		})
	}
}

func TestDecodeForkExit(t *testing.T) {
	d := testDecoder()
	e, err := d.decode(buildFork(testHdr, 5000, 4242, 6e9, 0))
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != event.KindFork || e.Process.PID != 5000 || e.Process.TID != 5000 || e.Process.PPID != 4242 ||
		e.Process.ForkParent != 4242 || !e.Process.StartTime.Equal(epoch.Add(6*time.Second)) ||
		e.Process.CgroupID != testHdr.cgroup {
		t.Errorf("fork: %+v", e.Process)
	}
	// clone3(CLONE_INTO_CGROUP): the child's cgroup, not the parent's.
	if e, err := d.decode(buildFork(testHdr, 5001, 4242, 6e9, 777)); err != nil || e.Process.CgroupID != 777 {
		t.Errorf("fork into cgroup 777: %+v, %v", e, err)
	}
	for _, tt := range []struct {
		status       uint32
		code, signal int32
	}{{0, 0, 0}, {3 << 8, 3, 0}, {9, 0, 9}, {0x80 | 11, 0, 11}} {
		e, err := d.decode(buildExit(testHdr, tt.status, 1))
		if err != nil {
			t.Fatal(err)
		}
		if e.Exit.Code != tt.code || e.Exit.Signal != tt.signal {
			t.Errorf("status %#x: got %+v; want code %d signal %d", tt.status, e.Exit, tt.code, tt.signal)
		}
	}
}

func TestDecodeSyscall(t *testing.T) {
	e, err := testDecoder().decode(buildSys(testHdr, 3, -1, "", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	want := event.Syscall{Name: "setns", Ret: -1, Flags: 0x20000, Target: 1, Fd: 3, Fd2: -1, NSInode: 4026531840, FdIsSocket: true}
	if e.Kind != event.KindSyscall || *e.Sys != want || e.Process.PID != 4242 {
		t.Errorf("got %v %+v; want %+v", e.Kind, *e.Sys, want)
	}
	e, err = testDecoder().decode(buildSys(testHdr, 0, 0, "/dev/sda1", "/mnt", "ext4"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Sys.Name != "mount" || e.Sys.Path != "/dev/sda1" || e.Sys.Path2 != "/mnt" || e.Sys.Arg != "ext4" {
		t.Errorf("mount: %+v", *e.Sys)
	}
	b := buildSys(testHdr, 2, -1, "", "", "")
	le.PutUint16(b[sysSFlags:], sysFExitOnly|sysFCompat)
	if e, err = testDecoder().decode(b); err != nil {
		t.Fatal(err)
	}
	if !e.Sys.ExitOnly || !e.Sys.Compat || e.Sys.FdIsSocket {
		t.Errorf("flags exit-only|compat decoded as %+v", *e.Sys)
	}
	for i, name := range sysCallNames {
		e, err := testDecoder().decode(buildSys(testHdr, uint16(i), 0, "", "", ""))
		if err != nil || e.Sys.Name != name {
			t.Errorf("call %d: %v, %v; want %s", i, e, err, name)
		}
		// The exporters map every name of the contract, and only those.
		if !slices.Contains(event.SyscallNames, name) {
			t.Errorf("call %d: %q is not in event.SyscallNames; add it there and map it in the exporters", i, name)
		}
	}
	if len(event.SyscallNames) != len(sysCallNames) {
		t.Errorf("event.SyscallNames has %d names; the decoder produces %d", len(event.SyscallNames), len(sysCallNames))
	}
}

func TestDecodeMalformed(t *testing.T) {
	mut := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	exec, open := sampleExec(), sampleOpen()
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "shorter than"},
		{"short header", make([]byte, 20), "shorter than"},
		{"size mismatch", mut(open, func(b []byte) []byte { return b[:len(b)-1] }), "header says"},
		{"unknown type", mut(open, func(b []byte) []byte { le.PutUint16(b, 99); return b }), "unknown record type 99"},
		{"comm unterminated", mut(open, func(b []byte) []byte { copy(b[hdrComm:], "0123456789abcdef"); return b }), "comm"},
		{"exe unterminated", mut(exec, func(b []byte) []byte { b[execData+19] = 'x'; return b }), "exe is not NUL-terminated"},
		{"exe length past slot", buildExec(execFields{hdrFields: testHdr, exe: strings.Repeat("x", pathSlot)}), "exceeds its slot"},
		{"string lengths mismatch", mut(exec, func(b []byte) []byte { le.PutUint16(b[execEnvLen:], 3); return b }), "do not match record size"},
		{"args too long", mut(exec, func(b []byte) []byte { le.PutUint16(b[execArgsLen:], 2000); return b }), "args length"},
		{"env too long", mut(exec, func(b []byte) []byte { le.PutUint16(b[execEnvLen:], 5000); return b }), "env length"},
		{"env entry past the record", mut(exec, func(b []byte) []byte { le.PutUint16(b[execEnvAt(b):], 0x7ff); return b }), "env entry of 2047 bytes"},
		{"env header cut", mut(exec, func(b []byte) []byte {
			b = append(b, 7)
			le.PutUint16(b[hdrSizeOff:], uint16(len(b)))
			le.PutUint16(b[execEnvLen:], le.Uint16(b[execEnvLen:])+1)
			return b
		}), "env entry header"},
		{"exec too short", mut(exec[:execData-1], func(b []byte) []byte { le.PutUint16(b[hdrSizeOff:], uint16(len(b))); return b }), "exec record"},
		{"open raw unterminated", mut(open, func(b []byte) []byte { b[openData+int(le.Uint16(b[openRawLen:]))] = 'x'; return b }), "raw path is not NUL-terminated"},
		{"open path length", mut(open, func(b []byte) []byte { le.PutUint16(b[openPathLen:], 7); return b }), "open raw length"},
		{"open match bits", mut(open, func(b []byte) []byte { b[openMatch] = 0x80; return b }), "match bits"},
		{"open knob id", mut(open, func(b []byte) []byte { b[openMatch] = uint8(event.MatchKnob); b[openKnob] = 200; return b }), "knob id 200"},
		{"open call", mut(open, func(b []byte) []byte { le.PutUint16(b[openCall:], 9); return b }), "call id"},
		{"open embedded NUL", mut(open, func(b []byte) []byte { b[openData+2] = 0; return b }), "embedded NUL"},
		{"fork size", mut(buildFork(testHdr, 1, 2, 3, 0), func(b []byte) []byte {
			b = append(b, 0)
			le.PutUint16(b[hdrSizeOff:], uint16(len(b)))
			return b
		}), "fork record"},
		{"syscall size", mut(buildSys(testHdr, 0, 0, "", "", ""), func(b []byte) []byte {
			le.PutUint16(b[hdrSizeOff:], 2000)
			return b[:2000]
		}), "syscall record"},
		{"syscall id", mut(buildSys(testHdr, 0, 0, "", "", ""), func(b []byte) []byte { le.PutUint16(b[sysCall:], 77); return b }), "syscall id 77"},
		{"syscall arg unterminated", mut(buildSys(testHdr, 11, 0, "", "", "memfd"), func(b []byte) []byte {
			le.PutUint16(b[sysArgLen:], 2)
			return b
		}), "syscall arg is not NUL-terminated"},
		{"syscall arg past slot", mut(buildSys(testHdr, 11, 0, "", "", ""), func(b []byte) []byte {
			le.PutUint16(b[sysArgLen:], 64)
			return b
		}), "exceeds its slot"},
		{"exit size", mut(buildExit(testHdr, 0, 0), func(b []byte) []byte { le.PutUint16(b[hdrSizeOff:], 64); return b[:64] }), "exit record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := testDecoder().decode(tt.b)
			if err == nil {
				t.Fatalf("decoded %+v; want an error", e)
			}
			if !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q; want errMalformed mentioning %q", err, tt.want)
			}
		})
	}
}

// TestRecordLayout checks every offset the decoder uses against the BTF of
// the committed BPF object, so a change to bpf/records.h cannot silently
// skew decoding.
func TestRecordLayout(t *testing.T) {
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(_SensorBytes))
	if err != nil {
		t.Fatal(err)
	}
	offsets := func(name string) (map[string]int, int) {
		var s *btf.Struct
		if err := spec.TypeByName(name, &s); err != nil {
			t.Fatalf("struct %s: %v", name, err)
		}
		m := map[string]int{}
		for _, mem := range s.Members {
			m[mem.Name] = int(mem.Offset.Bytes())
		}
		return m, int(s.Size)
	}
	check := func(st, field string, want int) {
		t.Helper()
		m, _ := offsets(st)
		got, ok := m[field]
		if !ok {
			t.Errorf("%s has no field %s", st, field)
		} else if got != want {
			t.Errorf("%s.%s at %d; decoder uses %d", st, field, got, want)
		}
	}
	if _, size := offsets("rec_hdr"); size != hdrSize {
		t.Errorf("rec_hdr is %d bytes; decoder uses %d", size, hdrSize)
	}
	for f, off := range map[string]int{"type": hdrType, "size": hdrSizeOff, "tgid": hdrTGID, "tid": hdrTID,
		"uid": hdrUID, "euid": hdrEUID, "ts_ns": hdrTS, "cgroup_id": hdrCgroupID, "comm": hdrComm} {
		check("rec_hdr", f, off)
	}
	for f, off := range map[string]int{"ppid": execPPID, "flags": execFlags, "cap_eff": execCapEff,
		"cap_prm": execCapPrm, "start_ns": execStart, "ns": execNS, "exe_len": execExeLen, "cwd_len": execCwdLen,
		"args_len": execArgsLen, "env_len": execEnvLen, "data": execData} {
		check("exec_rec", f, off)
	}
	// data[] holds the longest strings the decoder accepts (plus the
	// struct's alignment padding).
	if _, size := offsets("exec_rec"); size != (execData+2*pathSlot+argsSlot+envKeptMax+7)&^7 {
		t.Errorf("exec_rec is %d bytes; decoder allows %d bytes of strings from %d", size, 2*pathSlot+argsSlot+envKeptMax, execData)
	}
	for f, off := range map[string]int{"result": openResult, "flags": openFlags, "mode": openMode,
		"dirfd": openDirfd, "ino": openIno, "size": openSize, "dev": openDev, "rdev": openRdev, "call": openCall,
		"rflags": openRFlags, "raw_len": openRawLen, "path_len": openPathLen, "imode": openIMode, "match": openMatch,
		"knob": openKnob, "repeats": openRepeats, "target": openTarget, "data": openData} {
		check("open_rec", f, off)
	}
	if _, size := offsets("open_rec"); size < openData+rawSlot+pathSlot {
		t.Errorf("open_rec is %d bytes; want room for a %d-byte raw path and a %d-byte path", size, rawSlot, pathSlot)
	}
	for f, off := range map[string]int{"child_tgid": forkChild, "parent_tgid": forkParent, "child_start_ns": forkStart,
		"child_cgroup_id": forkCgroup} {
		check("fork_rec", f, off)
	}
	for f, off := range map[string]int{"exit_code": exitCode, "start_ns": exitStart} {
		check("exit_rec", f, off)
	}
	for f, off := range map[string]int{"ret": sysRet, "flags": sysFlags, "arg2": sysArg2, "target": sysTarget,
		"fd": sysFd, "fd2": sysFd2, "ns_inode": sysNSInode, "call": sysCall, "sflags": sysSFlags,
		"path_len": sysPathLen, "path2_len": sysPath2Len, "arg_len": sysArgLen, "path": sysPath,
		"path2": sysPath2, "arg": sysArg} {
		check("sys_rec", f, off)
	}
	if _, size := offsets("sys_rec"); size != sysSize {
		t.Errorf("sys_rec is %d bytes; decoder uses %d", size, sysSize)
	}
	if _, size := offsets("fork_rec"); size != forkSize {
		t.Errorf("fork_rec is %d bytes; decoder uses %d", size, forkSize)
	}
	for f, off := range map[string]int{"id": cgroupID, "op": cgroupOp, "flags": cgroupFlags, "path_len": cgroupPathLen, "path": cgroupPath} {
		check("cgroup_rec", f, off)
	}
	if _, size := offsets("cgroup_rec"); size != cgroupPath+cgroupSlot {
		t.Errorf("cgroup_rec is %d bytes; decoder uses %d", size, cgroupPath+cgroupSlot)
	}
	if _, size := offsets("exit_rec"); size != exitSize {
		t.Errorf("exit_rec is %d bytes; decoder uses %d", size, exitSize)
	}
}

func fuzzSeeds() map[string][]byte {
	return map[string][]byte{
		"exec":      sampleExec(),
		"open":      sampleOpen(),
		"open_base": buildOpen(openFields{hdrFields: testHdr, result: -2, rflags: openFBase, raw: "a.pt", path: "/x"}),
		"open_knob": buildOpen(openFields{hdrFields: testHdr, result: 3, rflags: openFKernel | openFPathTr | openFIOUring, imode: 0o100644,
			match: uint8(event.MatchKnob), knob: 9, raw: "/tmp/ra", path: "/sys/fs/cgroup/rdma/release_agent"}),
		"fork":      buildFork(testHdr, 1, 2, 3, 0),
		"exit":      buildExit(testHdr, 9, 3),
		"truncated": sampleExec()[:100],
		"syscall":   buildSys(testHdr, 0, -1, "/dev/sda1", "/mnt", "ext4"),
		"signal":    buildSignal(testHdr, 19, 0, 0, 4242, 62, 1),
	}
}

// TestFuzzSeedCorpus keeps testdata/fuzz/FuzzDecode in step with the record
// builders; run with -update after a layout change.
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for name, b := range fuzzSeeds() {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		path := filepath.Join(dir, name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestFuzzSeedCorpus -update)", err)
		}
		if string(got) != want {
			t.Errorf("%s is stale: run go test -run TestFuzzSeedCorpus -update", path)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder: it must return an event
// or an error, never panic, and every error must be a malformed-record error.
func FuzzDecode(f *testing.F) {
	for _, b := range fuzzSeeds() {
		f.Add(b)
	}
	d := testDecoder()
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := d.decode(b)
		if err != nil {
			if e != nil {
				t.Fatalf("event and error together: %v", err)
			}
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v is not a malformed-record error", err)
			}
			return
		}
		if e.Process == nil || e.Kind == event.KindInvalid {
			t.Fatalf("event without process or kind: %+v", e)
		}
	})
}

func BenchmarkDecodeOpen(b *testing.B) {
	d := testDecoder()
	rec := sampleOpen()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.decode(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeExec(b *testing.B) {
	d := testDecoder()
	rec := sampleExec()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.decode(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMalformed(b *testing.B) {
	d := testDecoder()
	rec := sampleOpen()[:100]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.decode(rec); err == nil {
			b.Fatal("decoded a short record")
		}
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestDecodeInternsRepeats: a repeated exec record decodes to the same
// strings and slices, allocating only its event; distinct records keep the
// intern tables bounded.
func TestDecodeInternsRepeats(t *testing.T) {
	d := testDecoder()
	rec := sampleExec()
	a, err := d.decode(rec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.decode(bytes.Clone(rec))
	if err != nil {
		t.Fatal(err)
	}
	if a.Process == b.Process || unsafe.StringData(a.Process.Exe) != unsafe.StringData(b.Process.Exe) ||
		&a.Process.Args[0] != &b.Process.Args[0] || &a.Process.Env[0] != &b.Process.Env[0] {
		t.Errorf("repeat not interned: %p %p, args %p %p", a.Process, b.Process, &a.Process.Args[0], &b.Process.Args[0])
	}
	if n := testing.AllocsPerRun(100, func() { d.decode(rec) }); n != 1 {
		t.Errorf("a repeated exec record costs %.1f allocations; want 1 (its event)", n)
	}
	for i := range 3 * maxInterned {
		r := buildExec(execFields{hdrFields: testHdr, exe: fmt.Sprintf("/bin/x%d", i), cwd: "/", args: []byte(fmt.Sprint(i))})
		if _, err := d.decode(r); err != nil {
			t.Fatal(err)
		}
		if len(d.paths.m) > maxInterned || len(d.args.m) > maxInterned {
			t.Fatalf("intern tables hold %d paths and %d argv blocks; bound %d", len(d.paths.m), len(d.args.m), maxInterned)
		}
	}
}
