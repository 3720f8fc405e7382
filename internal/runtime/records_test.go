package runtime

import (
	"encoding/binary"
	"strings"
)

// Record builders for decoder tests, fuzz seeds and benchmarks. They write
// the layouts of bpf/records.h exactly as the kernel does.

type hdrFields struct {
	typ                  uint16
	tgid, tid, uid, euid uint32
	ts, cgroup           uint64
	comm                 string
}

func putRecHdr(b []byte, h hdrFields) {
	binary.LittleEndian.PutUint16(b[hdrType:], h.typ)
	binary.LittleEndian.PutUint16(b[hdrSizeOff:], uint16(len(b)))
	binary.LittleEndian.PutUint32(b[hdrTGID:], h.tgid)
	binary.LittleEndian.PutUint32(b[hdrTID:], h.tid)
	binary.LittleEndian.PutUint32(b[hdrUID:], h.uid)
	binary.LittleEndian.PutUint32(b[hdrEUID:], h.euid)
	binary.LittleEndian.PutUint64(b[hdrTS:], h.ts)
	binary.LittleEndian.PutUint64(b[hdrCgroupID:], h.cgroup)
	copy(b[hdrComm:hdrComm+commLen-1], h.comm)
}

type execFields struct {
	hdrFields
	ppid           uint32
	flags          uint32
	capEff, capPrm uint64
	start          uint64
	ns             [7]uint32
	exe, cwd       string
	args, env      []byte
}

func buildExec(e execFields) []byte {
	e.typ = recExec
	b := make([]byte, execData, execData+len(e.exe)+1+len(e.cwd)+1+len(e.args)+len(e.env))
	b = append(append(b, e.exe...), 0)
	b = append(append(b, e.cwd...), 0)
	b = append(append(b, e.args...), e.env...)
	putRecHdr(b, e.hdrFields)
	le.PutUint32(b[execPPID:], e.ppid)
	le.PutUint32(b[execFlags:], e.flags)
	le.PutUint64(b[execCapEff:], e.capEff)
	le.PutUint64(b[execCapPrm:], e.capPrm)
	le.PutUint64(b[execStart:], e.start)
	for i, v := range e.ns {
		le.PutUint32(b[execNS+4*i:], v)
	}
	le.PutUint16(b[execExeLen:], uint16(len(e.exe)))
	le.PutUint16(b[execCwdLen:], uint16(len(e.cwd)))
	le.PutUint16(b[execArgsLen:], uint16(len(e.args)))
	le.PutUint16(b[execEnvLen:], uint16(len(e.env)))
	return b
}

// envEntries frames kept environment entries as the kernel sends them; an
// entry ending in envCutMark is sent cut (without the mark).
func envEntries(kvs ...string) []byte {
	var b []byte
	for _, kv := range kvs {
		h := uint16(0)
		if s, ok := strings.CutSuffix(kv, envCutMark); ok {
			kv, h = s, envCut
		}
		b = le.AppendUint16(b, uint16(len(kv))|h)
		b = append(b, kv...)
	}
	return b
}

const envCutMark = "<cut>"

type openFields struct {
	hdrFields
	result       int32
	flags, mode  uint32
	dirfd        int32
	ino, size    uint64
	dev, rdev    uint32
	call, rflags uint16
	imode        uint16
	match, knob  uint8
	repeats      uint32
	target       uint32
	raw, path    string
}

func buildOpen(o openFields) []byte {
	o.typ = recOpen
	b := make([]byte, openData+len(o.raw)+1+len(o.path)+1)
	putRecHdr(b, o.hdrFields)
	le.PutUint32(b[openResult:], uint32(o.result))
	le.PutUint32(b[openFlags:], o.flags)
	le.PutUint32(b[openMode:], o.mode)
	le.PutUint32(b[openDirfd:], uint32(o.dirfd))
	le.PutUint64(b[openIno:], o.ino)
	le.PutUint64(b[openSize:], o.size)
	le.PutUint32(b[openDev:], o.dev)
	le.PutUint32(b[openRdev:], o.rdev)
	le.PutUint16(b[openCall:], o.call)
	le.PutUint16(b[openRFlags:], o.rflags)
	le.PutUint16(b[openRawLen:], uint16(len(o.raw)))
	le.PutUint16(b[openPathLen:], uint16(len(o.path)))
	le.PutUint16(b[openIMode:], o.imode)
	b[openMatch] = o.match
	b[openKnob] = o.knob
	le.PutUint32(b[openRepeats:], o.repeats)
	le.PutUint32(b[openTarget:], o.target)
	copy(b[openData:], o.raw)
	copy(b[openData+len(o.raw)+1:], o.path)
	return b
}

func buildFork(h hdrFields, child, parent uint32, start, childCgroup uint64) []byte {
	h.typ = recFork
	b := make([]byte, forkSize)
	putRecHdr(b, h)
	le.PutUint32(b[forkChild:], child)
	le.PutUint32(b[forkParent:], parent)
	le.PutUint64(b[forkStart:], start)
	le.PutUint64(b[forkCgroup:], childCgroup)
	return b
}

func buildCgroup(h hdrFields, id uint64, op, flags uint16, path string) []byte {
	h.typ = recCgroup
	b := make([]byte, cgroupPath+len(path)+1)
	putRecHdr(b, h)
	le.PutUint64(b[cgroupID:], id)
	le.PutUint16(b[cgroupOp:], op)
	le.PutUint16(b[cgroupFlags:], flags)
	le.PutUint16(b[cgroupPathLen:], uint16(len(path)))
	copy(b[cgroupPath:], path)
	return b
}

func buildExit(h hdrFields, code uint32, start uint64) []byte {
	h.typ = recExit
	b := make([]byte, exitSize)
	putRecHdr(b, h)
	le.PutUint32(b[exitCode:], code)
	le.PutUint64(b[exitStart:], start)
	return b
}

var testHdr = hdrFields{tgid: 4242, tid: 4243, uid: 1000, euid: 0, ts: 5e9, cgroup: 77, comm: "python3"}

func sampleExec() []byte {
	return buildExec(execFields{
		hdrFields: testHdr, ppid: 1, flags: execFTTY, capEff: 0x1ff, capPrm: 0x3ff, start: 4e9,
		ns:  [7]uint32{4026531841, 4026531836, 4026531840, 4026531837, 4026531838, 4026531839, 4026531835},
		exe: "/usr/bin/python3.12", cwd: "/srv",
		args: []byte("python3\x00-m\x00vllm.entrypoints\x00"),
		env:  envEntries("LD_PRELOAD=/tmp/evil.so", "HF_TOKEN=hf_abc", "CUDA_VISIBLE_DEVICES=0,1"),
	})
}

func sampleOpen() []byte {
	return buildOpen(openFields{
		hdrFields: testHdr, result: 3, flags: 0x80000, dirfd: -100, ino: 12, size: 1 << 30, dev: 8<<20 | 1,
		call: 1, rflags: openFKernel, imode: 0o100644, match: 1, raw: "model.safetensors", path: "/models/llama/model.safetensors",
	})
}

func buildSys(h hdrFields, call uint16, ret int64, path, path2, arg string) []byte {
	h.typ = recSyscall
	b := make([]byte, sysSize)
	putRecHdr(b, h)
	le.PutUint64(b[sysRet:], uint64(ret))
	le.PutUint64(b[sysFlags:], 0x20000)
	le.PutUint32(b[sysTarget:], 1)
	le.PutUint32(b[sysFd:], 3)
	le.PutUint32(b[sysFd2:], 0xffffffff)
	le.PutUint32(b[sysNSInode:], 4026531840)
	le.PutUint16(b[sysCall:], call)
	le.PutUint16(b[sysSFlags:], sysFSocket)
	le.PutUint16(b[sysPathLen:], uint16(len(path)))
	le.PutUint16(b[sysPath2Len:], uint16(len(path2)))
	le.PutUint16(b[sysArgLen:], uint16(len(arg)))
	copy(b[sysPath:], path)
	copy(b[sysPath2:], path2)
	copy(b[sysArg:], arg)
	return b
}
