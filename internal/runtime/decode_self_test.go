package runtime

import (
	"bytes"
	goruntime "runtime"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

func buildSignal(h hdrFields, sig, code, result int32, tid uint32, nr int64, group uint32) []byte {
	h.typ = recSignal
	b := make([]byte, sigSize)
	putRecHdr(b, h)
	le.PutUint32(b[sigSig:], uint32(sig))
	le.PutUint32(b[sigCode:], uint32(code))
	le.PutUint32(b[sigResult:], uint32(result))
	le.PutUint32(b[sigTargetTID:], tid)
	le.PutUint64(b[sigSenderSyscall:], uint64(nr))
	le.PutUint32(b[sigGroup:], group)
	return b
}

// TestSignalRecordLayout checks the decoder's offsets of struct sig_rec
// (bpf/self.bpf.h) against the BTF of the committed object.
func TestSignalRecordLayout(t *testing.T) {
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(_SensorBytes))
	if err != nil {
		t.Fatal(err)
	}
	var s *btf.Struct
	if err := spec.TypeByName("sig_rec", &s); err != nil {
		t.Fatalf("struct sig_rec: %v", err)
	}
	want := map[string]int{"h": 0, "sig": sigSig, "code": sigCode, "result": sigResult, "target_tid": sigTargetTID,
		"sender_syscall": sigSenderSyscall, "group": sigGroup}
	for _, m := range s.Members {
		if off, ok := want[m.Name]; ok {
			if got := int(m.Offset.Bytes()); got != off {
				t.Errorf("sig_rec.%s at %d; decoder uses %d", m.Name, got, off)
			}
			delete(want, m.Name)
		}
	}
	for name := range want {
		t.Errorf("sig_rec has no field %s", name)
	}
	if int(s.Size) != sigSize {
		t.Errorf("sig_rec is %d bytes; decoder uses %d", s.Size, sigSize)
	}
}

func TestDecodeSignal(t *testing.T) {
	tests := []struct {
		name           string
		sig, code      int32
		nr             int64
		group          uint32
		wantArg        string
		amd64Only      bool // the syscall numbers are amd64's
		wantFd, wantF2 int32
	}{
		{"pidfd_send_signal", 19, 0, 424, 1, "SIGSTOP via pidfd_send_signal", true, 0, 1},
		{"tgkill", 9, -6, 234, 0, "SIGKILL via tgkill", true, -6, 0},
		{"ptrace attach", 19, 0x80, 101, 0, "SIGSTOP via ptrace", true, 0x80, 0},
		{"OOM killer", 9, 0x80, -1, 1, "SIGKILL from the kernel", false, 0x80, 1},
		{"unknown syscall", 15, -1, -1, 1, "SIGTERM (si_code -1)", false, -1, 1},
		{"realtime", 36, -1, -1, 1, "SIGRTMIN+2 (si_code -1)", false, -1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.amd64Only && goruntime.GOARCH != "amd64" {
				t.Skip("syscall names are decoded on amd64 only")
			}
			e, err := testDecoder().decode(buildSignal(testHdr, tt.sig, tt.code, 0, 777, tt.nr, tt.group))
			if err != nil {
				t.Fatal(err)
			}
			want := event.Syscall{Name: event.SyscallSignal, Flags: uint64(tt.sig), Target: 777, Arg: tt.wantArg,
				Arg2: uint64(tt.nr), Fd: tt.wantFd, Fd2: tt.wantF2}
			if e.Kind != event.KindSyscall || *e.Sys != want || e.Process.PID != testHdr.tgid {
				t.Errorf("got %v %+v (pid %d); want %+v (pid %d)", e.Kind, *e.Sys, e.Process.PID, want, testHdr.tgid)
			}
		})
	}
	for _, bad := range [][]byte{
		buildSignal(testHdr, 0, 0, 0, 1, 62, 0),      // no signal 0 is ever generated
		buildSignal(testHdr, 65, 0, 0, 1, 62, 0),     // beyond SIGRTMAX
		buildSignal(testHdr, 9, 0, 0, 1, 62, 2),      // group is 0 or 1
		buildSignal(testHdr, 9, 0, 0, 1, 62, 0)[:80], // short
	} {
		if e, err := testDecoder().decode(bad); err == nil {
			t.Errorf("decoded a malformed signal record: %+v", e.Sys)
		}
	}
}

// gapEvent tells a stop (the thread did not even wait for a CPU) from
// starvation (it waited for one most of the gap).
func TestGapCause(t *testing.T) {
	from := epoch
	for _, tt := range []struct {
		gap, waited time.Duration
		known       bool
		want        string
	}{
		{3 * time.Second, 2 * time.Millisecond, true, event.GapStopped},
		{3 * time.Second, 2500 * time.Millisecond, true, event.GapStarved},
		{3 * time.Second, 0, false, event.GapUnknown},
	} {
		e := gapEvent(from, from.Add(tt.gap), tt.gap, tt.waited, tt.known)
		f := e.Status.Fields
		if f[event.FieldSelfCheck] != event.SelfCheckGap || f["cause"] != tt.want || f["gap_ms"] != strconv.FormatInt(tt.gap.Milliseconds(), 10) {
			t.Errorf("gap %s waited %s: fields %v; want cause %s", tt.gap, tt.waited, f, tt.want)
		}
	}
}

func TestSignalVia(t *testing.T) {
	want := map[int64]string{unix.SYS_KILL: "SIGSTOP via kill", unix.SYS_TGKILL: "SIGSTOP via tgkill",
		unix.SYS_PIDFD_SEND_SIGNAL: "SIGSTOP via pidfd_send_signal", unix.SYS_PTRACE: "SIGSTOP via ptrace",
		-1: "SIGSTOP (si_code 0)", unix.SYS_READ: "SIGSTOP (si_code 0)"}
	if goruntime.GOARCH == "amd64" {
		want[sysCompatBase+37] = "SIGSTOP via kill (32-bit)"
	}
	for nr, w := range want {
		if got := signalVia(19, 0, nr); got != w {
			t.Errorf("syscall %d: %q; want %q", nr, got, w)
		}
	}
}
