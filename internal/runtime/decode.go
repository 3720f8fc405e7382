package runtime

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
	"unsafe"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Record types (enum record_type in bpf/common.h).
const (
	recExec    = 1
	recFork    = 2
	recExit    = 3
	recOpen    = 4
	recCgroup  = 5
	recNetMin  = 10
	recNetMax  = 19
	recSyscall = 20
)

// Record layouts (bpf/common.h, bpf/records.h). TestRecordLayout checks every
// offset here against the BTF of the committed object.
const (
	hdrSize = 56

	hdrType     = 0
	hdrSizeOff  = 2
	hdrTGID     = 4
	hdrTID      = 8
	hdrUID      = 12
	hdrEUID     = 16
	hdrTS       = 24
	hdrCgroupID = 32
	hdrComm     = 40
	commLen     = 16

	execPPID     = 56
	execFlags    = 60
	execCapEff   = 64
	execCapPrm   = 72
	execStart    = 80
	execNS       = 88
	execExeLen   = 116
	execCwdLen   = 118
	execArgsLen  = 120
	execEnvLen   = 122
	execData     = 124
	pathSlot     = 1024
	argsSlot     = 1024
	execFTTY     = 1 << 0
	execFArgsTr  = 1 << 1
	execFEnvTr   = 1 << 2
	execFExeTr   = 1 << 3
	execFCwdTr   = 1 << 4
	forkSize     = 80
	forkChild    = 56
	forkParent   = 60
	forkStart    = 64
	forkCgroup   = 72
	exitSize     = 72
	exitCode     = 56
	exitStart    = 64
	openResult   = 56
	openFlags    = 60
	openMode     = 64
	openDirfd    = 68
	openIno      = 72
	openSize     = 80
	openDev      = 88
	openRdev     = 92
	openCall     = 96
	openRFlags   = 98
	openRawLen   = 100
	openPathLen  = 102
	openIMode    = 104
	openMatch    = 106
	openKnob     = 107
	openRepeats  = 108
	openTarget   = 112
	openData     = 116
	rawSlot      = 512
	openFRawTr   = 1 << 0
	openFPathTr  = 1 << 1
	openFKernel  = 1 << 2
	openFBase    = 1 << 3
	openFExit    = 1 << 4
	openFCompat  = 1 << 5
	openFIOUring = 1 << 6
	openFRoot    = 1 << 7
	openFFixed   = 1 << 8
	openCallMax  = 4
	openMatchAll = 1<<7 - 1
	maxArgsKept  = 64
	maxEnvValLen = 256
)

var openCallNames = [...]string{"open", "openat", "openat2", "creat", "open_by_handle_at"}

// truncatedMark starts a path the kernel could not walk to its root (what
// follows is its deepest part) and ends a path as passed that was longer
// than the kernel copies, so that no truncated path passes for a whole one.
const truncatedMark = "..."

// errMalformed is wrapped by every decode error, so callers can count them
// apart from I/O errors.
var errMalformed = errors.New("malformed record")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// recHeader is the decoded common header of every record. Process has PID
// (tgid), TID, UID, EUID, Comm and CgroupID filled; decoders copy it.
type recHeader struct {
	Type    uint16
	Size    uint16
	Time    time.Time
	Process event.Process
}

// decoder turns ring-buffer records into events. It is not safe for
// concurrent use: the reader goroutine owns it.
type decoder struct {
	// bootEpoch is the wall-clock time of boot: ts_ns (CLOCK_BOOTTIME) plus
	// bootEpoch is the event's wall time.
	bootEpoch time.Time
	// comms interns command names, which repeat endlessly; bounded by
	// maxComms (cleared when full).
	comms map[[commLen]byte]string
	// paths, args and env intern what exec and syscall records repeat
	// (intern.go).
	paths stringTable
	args  interned[[]string]
	env   interned[[]event.EnvVar]
	// files and exits carve the events of the commonest records from
	// chunks (slab.go).
	files slab[fileEvent]
	exits slab[exitEvent]
}

const maxComms = 4096

// comm returns the interned NUL-terminated command name in b.
func (d *decoder) comm(b []byte) (string, error) {
	var k [commLen]byte
	copy(k[:], b)
	if s, ok := d.comms[k]; ok {
		return s, nil
	}
	s, err := cstring(b, "comm")
	if err != nil {
		return "", err
	}
	if d.comms == nil || len(d.comms) >= maxComms {
		d.comms = make(map[[commLen]byte]string)
	}
	d.comms[k] = s
	return s, nil
}

// Events, their process and payload are allocated together: one
// allocation per record instead of three.
type (
	procEvent struct {
		e event.Event
		p event.Process
	}
	fileEvent struct {
		e event.Event
		p event.Process
		f event.File
	}
	exitEvent struct {
		e event.Event
		p event.Process
		x event.Exit
	}
)

func (d *decoder) wall(bootNS uint64) time.Time {
	return d.bootEpoch.Add(time.Duration(bootNS))
}

var le = binary.LittleEndian

// unsafeString returns b as a string without copying, for lookups and
// comparisons that do not keep it: b must not change while it is used.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// cstring returns the NUL-terminated string at the start of b.
func cstring(b []byte, what string) (string, error) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", malformed("%s is not NUL-terminated", what)
	}
	return string(b[:i]), nil
}

// slotString returns the string of length n stored in slot, which must be
// followed by its NUL.
func slotString(b []byte, off, n, slot int, what string) (string, error) {
	s, err := slotBytes(b, off, n, slot, what)
	return string(s), err
}

// slotBytes returns the n bytes stored in slot at off, which must be
// followed by their NUL.
func slotBytes(b []byte, off, n, slot int, what string) ([]byte, error) {
	if n >= slot {
		return nil, malformed("%s length %d exceeds its slot of %d", what, n, slot)
	}
	if off+n >= len(b) {
		return nil, malformed("%s of %d bytes runs past the record", what, n)
	}
	if b[off+n] != 0 {
		return nil, malformed("%s is not NUL-terminated", what)
	}
	s := b[off : off+n]
	if bytes.IndexByte(s, 0) >= 0 {
		return nil, malformed("%s has an embedded NUL", what)
	}
	return s, nil
}

// path returns the interned string of length n stored in slot at off
// (see slotBytes).
func (d *decoder) path(b []byte, off, n, slot int, what string) (string, error) {
	s, err := slotBytes(b, off, n, slot, what)
	if err != nil {
		return "", err
	}
	return d.paths.get(s), nil
}

// header decodes and checks the common header.
func (d *decoder) header(b []byte, h *recHeader) error {
	if len(b) < hdrSize {
		return malformed("%d bytes, shorter than the %d-byte header", len(b), hdrSize)
	}
	h.Type = le.Uint16(b[hdrType:])
	h.Size = le.Uint16(b[hdrSizeOff:])
	if int(h.Size) != len(b) {
		return malformed("type %d: header says %d bytes, record has %d", h.Type, h.Size, len(b))
	}
	comm, err := d.comm(b[hdrComm : hdrComm+commLen])
	if err != nil {
		return err
	}
	h.Time = d.wall(le.Uint64(b[hdrTS:]))
	tgid := le.Uint32(b[hdrTGID:])
	h.Process = event.Process{
		PID:      tgid,
		TID:      le.Uint32(b[hdrTID:]),
		UID:      le.Uint32(b[hdrUID:]),
		EUID:     le.Uint32(b[hdrEUID:]),
		Comm:     comm,
		CgroupID: le.Uint64(b[hdrCgroupID:]),
	}
	return nil
}

// decode turns one record into an event. A malformed record returns an
// error wrapping errMalformed; decode never panics on any input.
func (d *decoder) decode(b []byte) (*event.Event, error) {
	var h recHeader
	if err := d.header(b, &h); err != nil {
		return nil, err
	}
	switch {
	case h.Type == recExec:
		return d.decodeExec(&h, b)
	case h.Type == recFork:
		return d.decodeFork(&h, b)
	case h.Type == recExit:
		return d.decodeExit(&h, b)
	case h.Type == recOpen:
		return d.decodeOpen(&h, b)
	case h.Type >= recNetMin && h.Type <= recNetMax:
		return decodeNet(&h, b)
	case h.Type == recSyscall:
		return d.decodeSyscall(&h, b)
	case h.Type == recSignal:
		return d.decodeSignal(&h, b)
	}
	return nil, malformed("unknown record type %d", h.Type)
}

func (d *decoder) decodeExec(h *recHeader, b []byte) (*event.Event, error) {
	if len(b) < execData {
		return nil, malformed("exec record of %d bytes, want at least %d", len(b), execData)
	}
	exeLen, cwdLen := int(le.Uint16(b[execExeLen:])), int(le.Uint16(b[execCwdLen:]))
	argsLen, envLen := int(le.Uint16(b[execArgsLen:])), int(le.Uint16(b[execEnvLen:]))
	if argsLen > argsSlot {
		return nil, malformed("exec args length %d exceeds %d", argsLen, argsSlot)
	}
	if envLen > envKeptMax {
		return nil, malformed("exec env length %d exceeds %d", envLen, envKeptMax)
	}
	// The strings are packed: exe and its NUL, cwd and its NUL, args, env.
	if execData+exeLen+1+cwdLen+1+argsLen+envLen != len(b) {
		return nil, malformed("exec string lengths %d+%d+%d+%d do not match record size %d", exeLen, cwdLen, argsLen, envLen, len(b))
	}
	off := execData
	exe, err := d.path(b, off, exeLen, pathSlot, "exe")
	if err != nil {
		return nil, err
	}
	off += exeLen + 1
	cwd, err := d.path(b, off, cwdLen, pathSlot, "cwd")
	if err != nil {
		return nil, err
	}
	off += cwdLen + 1
	argv := b[off : off+argsLen]
	args, _ := d.args.get(argv, splitArgs)
	env, err := d.env.get(b[off+argsLen:], decodeEnv)
	if err != nil {
		return nil, err
	}
	flags := le.Uint32(b[execFlags:])
	// A path deeper than the kernel's walk is its deepest part: marked, so
	// that it does not pass for an absolute path.
	if flags&execFExeTr != 0 {
		exe = truncatedMark + exe
	}
	if flags&execFCwdTr != 0 {
		cwd = truncatedMark + cwd
	}
	pe := &procEvent{p: h.Process}
	p := &pe.p
	p.PPID = le.Uint32(b[execPPID:])
	p.ForkParent = p.PPID
	p.Exe = exe
	p.Cwd = cwd
	p.Args = args
	p.Truncated = execTruncation(flags, argv)
	p.Env = env
	p.CapEff = le.Uint64(b[execCapEff:])
	p.CapPrm = le.Uint64(b[execCapPrm:])
	p.StartTime = d.wall(le.Uint64(b[execStart:]))
	p.ExecTime = h.Time
	p.TTY = flags&execFTTY != 0
	p.ExeMemfd = isMemfdPath(exe)
	ns := b[execNS:]
	p.NS = event.Namespaces{
		Mnt: le.Uint32(ns[0:]), PID: le.Uint32(ns[4:]), Net: le.Uint32(ns[8:]), User: le.Uint32(ns[12:]),
		UTS: le.Uint32(ns[16:]), IPC: le.Uint32(ns[20:]), Cgroup: le.Uint32(ns[24:]),
	}
	pe.e = event.Event{Kind: event.KindExec, Time: h.Time, Process: p}
	return &pe.e, nil
}

// execTruncation turns the kernel's truncation flags into the event's
// marks; argv is also cut when it has more entries than the decoder keeps.
func execTruncation(flags uint32, args []byte) event.Truncation {
	var t event.Truncation
	for _, f := range [...]struct {
		bit uint32
		t   event.Truncation
	}{{execFArgsTr, event.TruncArgs}, {execFEnvTr, event.TruncEnv}, {execFExeTr, event.TruncExe}, {execFCwdTr, event.TruncCwd}} {
		if flags&f.bit != 0 {
			t |= f.t
		}
	}
	if n := bytes.Count(args, []byte{0}); n > maxArgsKept || (n == maxArgsKept && len(args) > 0 && args[len(args)-1] != 0) {
		t |= event.TruncArgs
	}
	return t
}

// isMemfdPath reports whether a resolved exe path names a memfd: memfd
// files have no path, only the name "memfd:<name>" (plus " (deleted)").
func isMemfdPath(p string) bool {
	return len(p) >= 6 && p[:6] == "memfd:"
}

// splitArgs splits an argv block: see splitNUL.
func splitArgs(b []byte) ([]string, error) { return splitNUL(b, maxArgsKept), nil }

// splitNUL splits a NUL-separated block. A truncated block keeps its last,
// partial element. At most limit elements are kept. The elements share one
// string.
func splitNUL(b []byte, limit int) []string {
	if len(b) == 0 {
		return nil
	}
	n := bytes.Count(b, []byte{0})
	if b[len(b)-1] != 0 {
		n++
	}
	if n > limit {
		n = limit
	}
	out := make([]string, 0, n)
	all := string(b)
	for len(all) > 0 && len(out) < limit {
		i := strings.IndexByte(all, 0)
		if i < 0 {
			out = append(out, all)
			break
		}
		out = append(out, all[:i])
		all = all[i+1:]
	}
	return out
}

func (d *decoder) decodeFork(h *recHeader, b []byte) (*event.Event, error) {
	if len(b) != forkSize {
		return nil, malformed("fork record of %d bytes, want %d", len(b), forkSize)
	}
	pe := &procEvent{p: h.Process}
	p := &pe.p
	p.PID = le.Uint32(b[forkChild:])
	p.TID = p.PID
	p.PPID = le.Uint32(b[forkParent:])
	p.ForkParent = p.PPID
	p.StartTime = d.wall(le.Uint64(b[forkStart:]))
	if id := le.Uint64(b[forkCgroup:]); id != 0 {
		p.CgroupID = id // the child's: clone3 can place it in another cgroup
	}
	pe.e = event.Event{Kind: event.KindFork, Time: h.Time, Process: p}
	return &pe.e, nil
}

func (d *decoder) decodeExit(h *recHeader, b []byte) (*event.Event, error) {
	if len(b) != exitSize {
		return nil, malformed("exit record of %d bytes, want %d", len(b), exitSize)
	}
	xe := d.exits.new()
	xe.p = h.Process
	xe.p.StartTime = d.wall(le.Uint64(b[exitStart:]))
	code := le.Uint32(b[exitCode:])
	xe.x = event.Exit{Code: int32(code>>8) & 0xff, Signal: int32(code & 0x7f)}
	xe.e = event.Event{Kind: event.KindExit, Time: h.Time, Process: &xe.p, Exit: &xe.x}
	return &xe.e, nil
}

func (d *decoder) decodeOpen(h *recHeader, b []byte) (*event.Event, error) {
	if len(b) < openData+2 {
		return nil, malformed("open record of %d bytes, want at least %d", len(b), openData+2)
	}
	rawLen := int(le.Uint16(b[openRawLen:]))
	pathLen := int(le.Uint16(b[openPathLen:]))
	if openData+rawLen+1+pathLen+1 != len(b) {
		return nil, malformed("open raw length %d and path length %d do not match record size %d", rawLen, pathLen, len(b))
	}
	raw, err := slotString(b, openData, rawLen, rawSlot, "raw path")
	if err != nil {
		return nil, err
	}
	kpath, err := slotString(b, openData+rawLen+1, pathLen, pathSlot, "path")
	if err != nil {
		return nil, err
	}
	call := le.Uint16(b[openCall:])
	if call > openCallMax {
		return nil, malformed("open call id %d unknown", call)
	}
	match := b[openMatch]
	if match&^openMatchAll != 0 {
		return nil, malformed("open match bits %#x unknown", match)
	}
	knob := ""
	if match&uint8(event.MatchKnob) != 0 {
		if knob = knobName(b[openKnob]); knob == "" {
			return nil, malformed("open knob id %d unknown", b[openKnob])
		}
	}
	rflags := le.Uint16(b[openRFlags:])
	fe := d.files.new()
	fe.p = h.Process
	f := &fe.f
	*f = event.File{
		RawPath:   raw,
		Flags:     le.Uint32(b[openFlags:]),
		Mode:      le.Uint32(b[openMode:]),
		Result:    int32(le.Uint32(b[openResult:])),
		Size:      -1,
		Syscall:   openCallNames[call],
		Match:     event.FileMatch(match),
		Knob:      knob,
		Repeats:   le.Uint32(b[openRepeats:]),
		TargetPID: le.Uint32(b[openTarget:]),
		ExitOnly:  rflags&openFExit != 0,
		Compat:    rflags&openFCompat != 0,
	}
	if rflags&openFIOUring != 0 {
		f.Via = event.ViaIOUring
	}
	if rflags&openFRawTr != 0 {
		f.Truncated |= event.TruncRawPath
	}
	trunc := rflags&openFPathTr != 0
	if trunc {
		f.Truncated |= event.TruncPath
	}
	switch {
	case rflags&openFKernel != 0 && kpath != "":
		f.Path, f.PathSource = kpath, event.PathKernel
		f.Size = int64(le.Uint64(b[openSize:]))
		f.Inode = le.Uint64(b[openIno:])
		f.Dev = kernelDevToUser(le.Uint32(b[openDev:]))
		imode := uint32(le.Uint16(b[openIMode:]))
		f.Type = event.FileTypeOf(imode)
		if f.Type == event.FileTypeChar || f.Type == event.FileTypeBlock {
			f.Rdev = kernelDevToUser(le.Uint32(b[openRdev:]))
		}
		if trunc {
			f.Path = truncatedMark + kpath
		}
	case raw != "" && raw[0] == '/' && rflags&openFRoot != 0 && kpath != "" && kpath[0] == '/':
		// A chrooted caller: its "/" is kpath.
		f.Path, f.PathSource = path.Join(kpath, raw), event.PathKernel
		if trunc {
			f.Path = truncatedMark + f.Path
		}
	case raw != "" && raw[0] == '/':
		f.Path, f.PathSource = raw, event.PathAsPassed
		if f.Truncated&event.TruncRawPath != 0 {
			// The path as passed is the path: it is cut short too.
			f.Path = raw + truncatedMark
			f.Truncated |= event.TruncPath
		}
	case rflags&openFBase != 0 && kpath != "" && kpath[0] == '/':
		f.Path, f.PathSource = path.Join(kpath, raw), event.PathKernel
		if trunc {
			f.Path = truncatedMark + f.Path
		}
	default:
		f.Path, f.PathSource = raw, event.PathUnresolved
	}
	fe.e = event.Event{Kind: event.KindOpen, Time: h.Time, Process: &fe.p, File: f}
	return &fe.e, nil
}

// kernelDevToUser converts the kernel's internal dev_t (major << 20 | minor)
// to the encoding stat(2) returns.
func kernelDevToUser(d uint32) uint64 {
	major := uint64(d >> 20)
	minor := uint64(d & (1<<20 - 1))
	return (major&0xfffff000)<<32 | (major&0xfff)<<8 | (minor&0xffffff00)<<12 | minor&0xff
}
