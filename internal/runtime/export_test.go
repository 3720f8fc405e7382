package runtime

import (
	"net/netip"
	"strings"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Record builders and the decoder, for the external test package
// (runtime_test) whose benchmark runs the whole user-space pipeline from
// ring-buffer records.

// RecHdr is the header of a record built for a test.
type RecHdr struct {
	PID, TID, UID uint32
	Comm          string
	Cgroup        uint64
	BootNS        uint64 // ts_ns
}

func (h RecHdr) fields() hdrFields {
	tid := h.TID
	if tid == 0 {
		tid = h.PID
	}
	return hdrFields{tgid: h.PID, tid: tid, uid: h.UID, euid: h.UID, ts: h.BootNS, cgroup: h.Cgroup, comm: h.Comm}
}

// ExecRecord builds an exec record; env holds the entries the kernel
// keeps ("NAME=VALUE").
func ExecRecord(h RecHdr, ppid uint32, exe, cwd string, args, env []string, ns event.Namespaces) []byte {
	var argv []byte
	for _, a := range args {
		argv = append(append(argv, a...), 0)
	}
	return buildExec(execFields{hdrFields: h.fields(), ppid: ppid, start: h.BootNS, exe: exe, cwd: cwd, args: argv,
		env: envEntries(env...), ns: [7]uint32{ns.Mnt, ns.PID, ns.Net, ns.User, ns.UTS, ns.IPC, ns.Cgroup}})
}

// OpenRecord builds the record of an open the kernel resolved: fd or
// -errno in result.
func OpenRecord(h RecHdr, path string, flags uint32, result int32, ino uint64, size uint64) []byte {
	raw := path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		raw = path[i+1:]
	}
	return buildOpen(openFields{hdrFields: h.fields(), result: result, flags: flags, dirfd: -100, ino: ino, size: size,
		dev: 8<<20 | 1, call: 1, rflags: openFKernel, raw: raw, path: path})
}

// ForkRecord builds the record of h's process forking child.
func ForkRecord(h RecHdr, child uint32) []byte {
	return buildFork(h.fields(), child, h.PID, h.BootNS, 0)
}

// ExitRecord builds the record of h's process exiting with status 0.
func ExitRecord(h RecHdr, start uint64) []byte {
	return buildExit(h.fields(), 0, start)
}

// ConnectRecord builds the record of a TCP connect from h's process to dst.
func ConnectRecord(h RecHdr, dst netip.AddrPort, cookie uint64) []byte {
	b := connRec{cookie: cookie, family: afInet, proto: ipprotoTCP, flags: connFResult | connFFd | connFDst | connFSrc, fd: 5,
		sport: 40000, dport: dst.Port(), saddr: a16("10.244.1.7"), daddr: a16(dst.Addr().String()), pathLen: -1}.bytes()
	f := h.fields()
	f.typ = recConnect
	putRecHdr(b, f)
	return b
}

// Decoder decodes records as the ring-buffer reader does.
type Decoder struct{ d decoder }

// NewDecoder returns a decoder whose boot time is the host's.
func NewDecoder() (*Decoder, error) {
	epoch, err := bootEpoch()
	if err != nil {
		return nil, err
	}
	return &Decoder{d: decoder{bootEpoch: epoch}}, nil
}

// Decode decodes one record.
func (d *Decoder) Decode(b []byte) (*event.Event, error) { return d.d.decode(b) }

// BootNS returns the boot-clock nanoseconds of t for this decoder.
func (d *Decoder) BootNS(t time.Time) uint64 { return uint64(t.Sub(d.d.bootEpoch)) }
