package export

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// OCSFSchemaVersion is the OCSF schema the encoder writes (metadata.version).
const OCSFSchemaVersion = "1.8.0"

// OCSF class uids written by the encoder.
const (
	OCSFFileActivity            = 1001
	OCSFKernelExtensionActivity = 1002
	OCSFKernelActivity          = 1003
	OCSFProcessActivity         = 1007
	OCSFDetectionFinding        = 2004
	OCSFNetworkActivity         = 4001
)

// OCSFClasses returns the class uids the encoder emits, in ascending order.
func OCSFClasses() []int {
	return []int{OCSFFileActivity, OCSFKernelExtensionActivity, OCSFKernelActivity, OCSFProcessActivity,
		OCSFDetectionFinding, OCSFNetworkActivity}
}

// ErrNoOCSFClass is returned for event kinds that have no OCSF class
// (gpu, lost, status). Exporters count and skip them.
var ErrNoOCSFClass = errors.New("event kind has no OCSF class")

// OCSFOptions are the optional settings of an OCSFEncoder; nil is valid.
//
// Two encoders given the same options encode an event identically: the
// daemon's file exporter and `sensor --tail -o ocsf` attached to it use the
// daemon's node name, version and ring instance, so an event has one
// metadata.uid whichever path it takes.
type OCSFOptions struct {
	// Hostname is device.hostname; defaults to os.Hostname().
	Hostname string
	// ProductVersion is metadata.product.version; defaults to "dev".
	ProductVersion string
	// InstanceID prefixes metadata.uid and finding_info.uid so they are
	// unique across sensor restarts (the ring's InstanceID).
	InstanceID string
}

// OCSFEncoder renders events as OCSF 1.8.0 JSON, core schema only: File
// System Activity 1001, Kernel Extension Activity 1002, Kernel Activity
// 1003, Process Activity 1007, Detection Finding 2004 and Network Activity
// 4001. docs/ocsf.md describes the mapping; TestOCSFValidatesAgainstTheSchema
// checks the output against the official schema.
//
// The encoder appends JSON to a byte slice directly (no reflection, no
// intermediate objects): [OCSFEncoder.AppendEncode] into a reused buffer
// allocates nothing for most events.
//
// It is safe for concurrent use.
type OCSFEncoder struct {
	host, version, instance string
	// procs holds the encoded fields of the process objects last written.
	procs procFrags
}

// NewOCSFEncoder returns an encoder.
func NewOCSFEncoder(opts *OCSFOptions) *OCSFEncoder {
	if opts == nil {
		opts = &OCSFOptions{}
	}
	e := &OCSFEncoder{host: opts.Hostname, version: opts.ProductVersion, instance: opts.InstanceID}
	if e.host == "" {
		e.host, _ = os.Hostname()
	}
	if e.version == "" {
		e.version = "dev"
	}
	return e
}

// Enumerations and captions (OCSF 1.8.0).
var (
	severityNames = [...]string{0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
	categoryNames = map[int]string{1: "System Activity", 2: "Findings", 4: "Network Activity"}
	classNames    = map[int]string{OCSFFileActivity: "File System Activity", OCSFKernelExtensionActivity: "Kernel Extension Activity",
		OCSFKernelActivity: "Kernel Activity", OCSFProcessActivity: "Process Activity",
		OCSFDetectionFinding: "Detection Finding", OCSFNetworkActivity: "Network Activity"}
	activityNames = map[int]map[int]string{
		OCSFFileActivity:            {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 5: "Rename", 6: "Set Attributes", 12: "Mount", 13: "Unmount", 14: "Open"},
		OCSFKernelExtensionActivity: {1: "Load", 2: "Unload"},
		OCSFKernelActivity:          {1: "Create", 2: "Read", 3: "Delete", 4: "Invoke"},
		OCSFProcessActivity:         {1: "Launch", 2: "Terminate", 3: "Open", 4: "Inject", 5: "Set User ID"},
		OCSFDetectionFinding:        {1: "Create", 2: "Update", 3: "Close"},
		OCSFNetworkActivity:         {1: "Open", 2: "Close", 3: "Reset", 4: "Fail", 5: "Refuse", 6: "Traffic", 7: "Listen"},
	}
	// typeNames holds "<class>: <activity>" for every class and activity
	// above, so the header costs no concatenation.
	typeNames = func() map[int]string {
		m := map[int]string{}
		for cls, acts := range activityNames {
			for act, name := range acts {
				m[cls*100+act] = classNames[cls] + ": " + name
			}
			m[cls*100+activityOther] = classNames[cls] + ": Other"
		}
		return m
	}()
	fileTypeNames = [...]string{0: "Unknown", 1: "Regular File", 2: "Folder", 3: "Character Device", 4: "Block Device",
		5: "Local Socket", 6: "Named Pipe", 7: "Symbolic Link"}
	launchTypeNames = map[int]string{2: "Fork", 3: "Exec"}
)

const (
	activityOther = 99

	statusSuccess = 1
	statusFailure = 2

	fileUnknown = 0
	fileRegular = 1
	fileFolder  = 2
)

// maxAncestry bounds process.ancestry.
const maxAncestry = 16

// ocsfPlan is how one event maps: decided before a byte is written, so a
// malformed event leaves the buffer untouched.
type ocsfPlan struct {
	class, activity int
	// activityName is the caption, or the source's own name for Other.
	activityName string
	severity     int
	status       int   // 0: not set
	errno        int64 // > 0 with a Failure status: the errno behind it
	// launchType is launch_type_id of Process Activity Launch.
	launchType int
	// injection is injection_type of Process Activity Inject (Other).
	injection string
	// target is the pid of the process acted on, for process syscalls.
	target uint32
	// reflexive: the process acted on is the actor itself.
	reflexive bool
}

// Encode renders ev as one OCSF JSON object (no trailing newline). Kinds
// without an OCSF class return ErrNoOCSFClass.
func (e *OCSFEncoder) Encode(ev *event.Event) ([]byte, error) {
	bp := ocsfBufs.Get().(*[]byte)
	b, err := e.AppendEncode((*bp)[:0], ev)
	if err != nil {
		ocsfBufs.Put(bp)
		return nil, err
	}
	out := slices.Clone(b)
	*bp = b
	ocsfBufs.Put(bp)
	return out, nil
}

var ocsfBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// AppendEncode appends the OCSF JSON of ev to dst and returns the extended
// slice. On error dst is returned unchanged. Kinds without an OCSF class
// return ErrNoOCSFClass.
func (e *OCSFEncoder) AppendEncode(dst []byte, ev *event.Event) ([]byte, error) {
	if ev == nil {
		return dst, errors.New("encode OCSF: nil event")
	}
	p, err := planOf(ev)
	if err != nil {
		return dst, err
	}
	w := jsonWriter{b: dst, procs: &e.procs}
	e.header(&w, ev, &p)
	switch p.class {
	case OCSFDetectionFinding:
		e.finding(&w, ev)
	case OCSFProcessActivity:
		processActivity(&w, ev, &p)
	case OCSFFileActivity:
		fileActivity(&w, ev)
	case OCSFNetworkActivity:
		networkActivity(&w, ev)
	case OCSFKernelExtensionActivity:
		kernelExtension(&w, ev)
	case OCSFKernelActivity:
		writeActor(&w, ev.Process, ev.Container)
		w.object("kernel")
		w.str("name", ev.Sys.Name)
		w.int("type_id", 2)
		w.lit("type", "System Call")
		w.str("system_call", ev.Sys.Name)
		w.end()
	}
	writeUnmapped(&w, ev)
	w.end()
	return w.b, nil
}

// planOf decides the class, activity and status of ev, and rejects events
// whose payload is missing.
func planOf(ev *event.Event) (ocsfPlan, error) {
	p := ocsfPlan{severity: 1}
	switch ev.Kind {
	case event.KindFinding:
		if ev.Finding == nil {
			return p, errors.New("encode OCSF: finding event without a finding")
		}
		p.class, p.activity = OCSFDetectionFinding, 1
		p.severity = int(ev.Finding.Severity)
		if ev.Finding.Severity < event.SevInfo || ev.Finding.Severity > event.SevCritical {
			p.severity = 0
		}
		p.status = 1 // New
	case event.KindExec, event.KindFork:
		if ev.Process == nil {
			return p, fmt.Errorf("encode OCSF: %s event without a process", ev.Kind)
		}
		p.class, p.activity, p.launchType = OCSFProcessActivity, 1, 3
		if ev.Kind == event.KindFork {
			p.launchType = 2
		}
	case event.KindExit:
		if ev.Process == nil {
			return p, errors.New("encode OCSF: exit event without a process")
		}
		p.class, p.activity, p.reflexive = OCSFProcessActivity, 2, true
	case event.KindOpen:
		if ev.File == nil {
			return p, errors.New("encode OCSF: open event without a file")
		}
		p.class, p.activity = OCSFFileActivity, 14
		p.setStatus(int64(ev.File.Result))
	case event.KindConnect, event.KindEgress, event.KindAccept:
		if ev.Net == nil {
			return p, fmt.Errorf("encode OCSF: %s event without net", ev.Kind)
		}
		n := ev.Net
		p.class, p.activity = OCSFNetworkActivity, 1 // Open
		switch {
		case ev.Kind == event.KindEgress && n.Closed:
			p.activity = 2 // Close
		case ev.Kind == event.KindEgress:
			p.activity = 6 // Traffic
		case n.Result == -int32(unix.ECONNREFUSED):
			p.activity = 5 // Refuse
		case n.Result < 0:
			p.activity = 4 // Fail
		}
		if n.Result < 0 {
			p.setStatus(int64(n.Result))
		}
	case event.KindSyscall:
		if ev.Sys == nil {
			return p, errors.New("encode OCSF: syscall event without a syscall")
		}
		p.syscall(ev)
	default:
		return p, fmt.Errorf("encode OCSF %s: %w", ev.Kind, ErrNoOCSFClass)
	}
	if p.activityName == "" {
		p.activityName = activityNames[p.class][p.activity]
	}
	return p, nil
}

func (p *ocsfPlan) setStatus(ret int64) {
	if ret < 0 {
		p.status, p.errno = statusFailure, -ret
	} else {
		p.status = statusSuccess
	}
}

// Ptrace requests (asm-generic), as the kernel side reports them.
const (
	ptraceTraceMe   = 0
	ptraceAttach    = 16
	ptraceSeize     = 0x4206
	ptracePokeText  = 4
	ptracePokeData  = 5
	ptracePokeUser  = 6
	ptraceSetRegs   = 13
	ptraceSetFPRegs = 15
	ptraceSetRegSet = 0x4205
)

var ptraceInjections = map[uint64]string{
	ptracePokeText: "ptrace PTRACE_POKETEXT", ptracePokeData: "ptrace PTRACE_POKEDATA", ptracePokeUser: "ptrace PTRACE_POKEUSER",
	ptraceSetRegs: "ptrace PTRACE_SETREGS", ptraceSetFPRegs: "ptrace PTRACE_SETFPREGS", ptraceSetRegSet: "ptrace PTRACE_SETREGSET",
}

// syscall maps the escape-primitive syscalls: path operations to File
// System Activity, module loads to Kernel Extension Activity, calls aimed
// at another process to Process Activity, and the rest (namespace, root,
// bpf, memfd and descriptor calls) to Kernel Activity "Invoke" of a system
// call.
func (p *ocsfPlan) syscall(ev *event.Event) {
	s := ev.Sys
	p.setStatus(s.Ret)
	p.target = s.Target
	switch s.Name {
	case "rename":
		p.class, p.activity = OCSFFileActivity, 5
	case "unlink":
		p.class, p.activity = OCSFFileActivity, 4
	case "truncate":
		p.class, p.activity = OCSFFileActivity, 3 // Update
	case "link", "symlink", "mknod":
		p.class, p.activity = OCSFFileActivity, 1
	case "mount", "move_mount":
		// move_mount attaches the mount the new API built (fsmount,
		// open_tree); fsopen, fsconfig, fsmount and open_tree are
		// Kernel Activity, the steps before it.
		p.class, p.activity = OCSFFileActivity, 12
	case "umount":
		p.class, p.activity = OCSFFileActivity, 13
	case "init_module", "finit_module":
		p.class, p.activity = OCSFKernelExtensionActivity, 1
	case "delete_module":
		p.class, p.activity = OCSFKernelExtensionActivity, 2
	case "ptrace":
		// OCSF "Open" is obtaining a handle on a process to act on it
		// later: attach and seize. Writing its memory or registers is
		// "Inject".
		p.class = OCSFProcessActivity
		switch req := s.Flags; {
		case req == ptraceAttach || req == ptraceSeize:
			p.activity = 3
		case req == ptraceTraceMe:
			// The caller offers itself to its parent.
			p.activity, p.reflexive = 3, true
		case ptraceInjections[req] != "":
			p.activity, p.injection = 4, ptraceInjections[req]
		default:
			p.activity, p.activityName = activityOther, "ptrace"
		}
	case "process_vm_readv":
		p.class, p.activity = OCSFProcessActivity, 3
	case "process_vm_writev":
		p.class, p.activity, p.injection = OCSFProcessActivity, 4, "process_vm_writev"
	case "kill":
		p.class = OCSFProcessActivity
		switch syscall.Signal(s.Flags) {
		case syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGABRT, syscall.SIGKILL, syscall.SIGTERM:
			p.activity = 2 // Terminate
		default:
			p.activity, p.activityName = activityOther, "kill"
		}
	default:
		p.class, p.activity = OCSFKernelActivity, 4
	}
}

// header writes the attributes every class has, from '{' to the actor.
func (e *OCSFEncoder) header(w *jsonWriter, ev *event.Event, p *ocsfPlan) {
	w.b = append(w.b, '{')
	w.int("activity_id", int64(p.activity))
	w.lit("activity_name", p.activityName)
	cat := p.class / 1000
	w.int("category_uid", int64(cat))
	w.lit("category_name", categoryNames[cat])
	w.int("class_uid", int64(p.class))
	w.lit("class_name", classNames[p.class])
	w.int("type_uid", int64(p.class*100+p.activity))
	w.lit("type_name", typeNames[p.class*100+p.activity])
	w.int("severity_id", int64(p.severity))
	w.lit("severity", severityNames[p.severity])
	w.int("time", ev.Time.UnixMilli())
	if p.status != 0 {
		w.int("status_id", int64(p.status))
		switch {
		case p.class == OCSFDetectionFinding:
			w.lit("status", "New")
		case p.status == statusSuccess:
			w.lit("status", "Success")
		default:
			w.lit("status", "Failure")
			writeErrno(w, p.errno)
		}
	}
	w.object("metadata")
	w.lit("version", OCSFSchemaVersion)
	w.object("product")
	w.lit("name", "Kestrel")
	w.lit("vendor_name", "kestrel-sec")
	w.str("version", e.version)
	w.end()
	if ev.Seq != 0 {
		w.key("uid")
		w.b = e.appendUID(w.b, ev.Seq)
		w.comma = true
	}
	w.array("profiles")
	w.litElem("host")
	if ev.Container != nil {
		w.litElem("container")
	}
	if p.class == OCSFDetectionFinding {
		w.litElem("security_control")
	}
	w.endArray()
	w.lit("event_code", ev.Kind.String())
	w.end()
	w.object("device")
	w.str("hostname", e.host)
	w.int("type_id", 1)
	w.lit("type", "Server")
	w.object("os")
	w.lit("name", "Linux")
	w.int("type_id", 200)
	w.lit("type", "Linux")
	w.end()
	w.end()
}

// writeErrno writes status_code (the errno's name, e.g. "EACCES") and
// status_detail (its text) for a failed attempt.
func writeErrno(w *jsonWriter, errno int64) {
	if errno <= 0 || errno > 4095 {
		return
	}
	en := syscall.Errno(errno)
	if name := unix.ErrnoName(en); name != "" {
		w.lit("status_code", name)
	} else {
		w.key("status_code")
		w.b = append(w.b, `"errno `...)
		w.b = strconv.AppendInt(w.b, errno, 10)
		w.b = append(w.b, '"')
		w.comma = true
	}
	w.lit("status_detail", en.Error())
}

func (e *OCSFEncoder) appendUID(b []byte, seq uint64) []byte {
	b = append(b, '"')
	if e.instance != "" {
		b = appendJSONEscaped(b, e.instance)
		b = append(b, '-')
	}
	b = strconv.AppendUint(b, seq, 10)
	return append(b, '"')
}

// writeActor writes actor.process: the process that acted, in its
// container.
func writeActor(w *jsonWriter, p *event.Process, c *event.Container) {
	w.object("actor")
	if p == nil {
		// The actor is required; an event without a process says so.
		w.object("process")
		w.int("pid", 0)
		w.lit("name", event.Unknown)
		w.end()
	} else {
		writeProcess(w, "process", p, c)
	}
	w.end()
}

// writeProcess writes a process object: the process, its executable and
// user, its direct parent and its ancestry, and its container.
func writeProcess(w *jsonWriter, key string, p *event.Process, c *event.Container) {
	w.object(key)
	writeProcessFields(w, p, c)
	w.end()
}

// writeProcessFields writes the fields of a process object just opened.
// Snapshots are immutable and shared by the events of a process, so the
// fields are encoded once per process and container snapshot (procFrags).
func writeProcessFields(w *jsonWriter, p *event.Process, c *event.Container) {
	slot := w.procs.slot(p, c)
	if slot == nil {
		encodeProcessFields(w, p, c)
		return
	}
	if f := slot.Load(); f != nil && f.p == p && f.c == c {
		w.b = append(w.b, f.b...)
		w.comma = true
		return
	}
	start := len(w.b)
	encodeProcessFields(w, p, c)
	slot.Store(&procFrag{p: p, c: c, b: slices.Clone(w.b[start:])})
}

func encodeProcessFields(w *jsonWriter, p *event.Process, c *event.Container) {
	w.uint("pid", uint64(p.PID))
	if p.TID != 0 && p.TID != p.PID {
		w.uint("ptid", uint64(p.TID))
	}
	w.strNE("name", p.Comm)
	if len(p.Args) > 0 {
		w.key("cmd_line")
		w.b = append(w.b, '"')
		for i, a := range p.Args {
			if i > 0 {
				w.b = append(w.b, ' ')
			}
			w.b = appendJSONEscaped(w.b, a)
		}
		w.b = append(w.b, '"')
		w.comma = true
	}
	if p.Exe != "" {
		// The kernel executes regular files only.
		writeOCSFFile(w, "file", p.Exe, fileRegular)
	}
	w.object("user")
	w.uintString("uid", uint64(p.UID))
	w.end()
	if !p.StartTime.IsZero() {
		w.int("created_time", p.StartTime.UnixMilli())
	}
	w.strNE("working_directory", p.Cwd)
	anc := p.Ancestors
	switch {
	case len(anc) > 0:
		w.object("parent_process")
		w.uint("pid", uint64(anc[0].PID))
		w.strNE("name", anc[0].Comm)
		if anc[0].Exe != "" {
			writeOCSFFile(w, "file", anc[0].Exe, fileRegular)
		}
		w.end()
	case p.PPID != 0:
		w.object("parent_process")
		w.uint("pid", uint64(p.PPID))
		w.end()
	}
	if len(anc) > 0 {
		w.array("ancestry")
		for _, a := range anc[:min(len(anc), maxAncestry)] {
			w.elem()
			w.uint("pid", uint64(a.PID))
			w.strNE("name", a.Comm)
			w.strNE("path", a.Exe)
			w.end()
		}
		w.endArray()
	}
	if c != nil {
		writeContainer(w, c)
	}
}

// procFragSlots is the size of an encoder's table of process objects: the
// processes that act at once on a node, and then some.
const procFragSlots = 1024

// procFrags is a direct-mapped table of the encoded fields of process
// objects, by process and container snapshot. An entry keeps its two
// snapshots alive until another pair takes its slot. The zero value is
// ready to use; it is safe for concurrent use.
type procFrags struct {
	slots [procFragSlots]atomic.Pointer[procFrag]
}

type procFrag struct {
	p *event.Process
	c *event.Container
	b []byte // the object's fields, without braces
}

// slot returns the slot of (p, c); nil for a nil table.
func (t *procFrags) slot(p *event.Process, c *event.Container) *atomic.Pointer[procFrag] {
	if t == nil {
		return nil
	}
	h := uint64(uintptr(unsafe.Pointer(p)))*0x9e3779b97f4a7c15 ^ uint64(uintptr(unsafe.Pointer(c)))
	return &t.slots[(h>>32)%procFragSlots]
}

// writeOCSFFile writes a file object for path p. A path that is not absolute
// (unresolved) keeps its base name only.
func writeOCSFFile(w *jsonWriter, key, p string, typeID int) {
	w.object(key)
	writeFileFields(w, p, typeID)
	w.end()
}

func writeFileFields(w *jsonWriter, p string, typeID int) {
	switch {
	case p == "":
		w.lit("name", event.Unknown)
	default:
		w.str("name", path.Base(p))
		if strings.HasPrefix(p, "/") {
			w.str("path", p)
		}
	}
	w.int("type_id", int64(typeID))
	w.lit("type", fileTypeNames[typeID])
}

// writeContainer writes the container object (container profile).
func writeContainer(w *jsonWriter, c *event.Container) {
	w.object("container")
	if c.ID == "" {
		w.lit("uid", event.Unknown)
	} else {
		w.str("uid", c.ID)
	}
	w.strNE("name", c.Name)
	if c.Image != "" {
		// The runtime reports the image reference; it is the image's
		// identity as far as the sensor knows it.
		w.object("image")
		w.str("uid", c.Image)
		w.str("name", c.Image)
		w.end()
	}
	w.strNE("runtime", c.Runtime)
	pod := c.PodUID != "" && c.PodUID != event.Unknown
	if pod && isUUID(c.PodUID) {
		w.str("pod_uuid", c.PodUID)
	}
	if pod || c.Pod != "" {
		w.lit("orchestrator", "Kubernetes")
	}
	if len(c.Labels) > 0 {
		var stack [16]string
		keys := stack[:0]
		for k := range c.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.array("labels")
		for _, k := range keys {
			w.sep()
			w.b = append(w.b, '"')
			w.b = appendJSONEscaped(w.b, k)
			w.b = append(w.b, '=')
			w.b = appendJSONEscaped(w.b, c.Labels[k])
			w.b = append(w.b, '"')
			w.comma = true
		}
		w.endArray()
	}
	// OCSF has no pod or namespace attribute: they are tags, named as the
	// OpenTelemetry resource attributes are.
	if c.Pod != "" || c.Namespace != "" || (pod && !isUUID(c.PodUID)) {
		w.array("tags")
		tag := func(name, value string) {
			if value != "" {
				w.elem()
				w.str("name", name)
				w.str("value", value)
				w.end()
			}
		}
		tag("k8s.pod.name", c.Pod)
		tag("k8s.namespace.name", c.Namespace)
		if pod && !isUUID(c.PodUID) {
			tag("k8s.pod.uid", c.PodUID) // a static pod's uid is a hash, not a UUID
		}
		w.endArray()
	}
	w.end()
}

// isUUID reports whether s has the 8-4-4-4-12 hex form of uuid_t.
func isUUID(s string) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	for i := range len(s) {
		if !isHex[s[i]] && i != 8 && i != 13 && i != 18 && i != 23 {
			return false
		}
	}
	return true
}

var isHex = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] = true
	}
	return t
}()

func processActivity(w *jsonWriter, ev *event.Event, p *ocsfPlan) {
	switch ev.Kind {
	case event.KindExec, event.KindFork:
		// The actor is the process that launched this one: its parent.
		w.object("actor")
		w.object("process")
		pr := ev.Process
		if len(pr.Ancestors) > 0 {
			a := pr.Ancestors[0]
			w.uint("pid", uint64(a.PID))
			w.strNE("name", a.Comm)
			if a.Exe != "" {
				writeOCSFFile(w, "file", a.Exe, fileRegular)
			}
		} else {
			w.uint("pid", uint64(pr.PPID))
		}
		w.end()
		w.end()
		writeProcess(w, "process", pr, ev.Container)
		w.int("launch_type_id", int64(p.launchType))
		w.lit("launch_type", launchTypeNames[p.launchType])
	case event.KindExit:
		// Reflexive: the exiting process is the actor. The full object is
		// under process; the actor names it.
		w.object("actor")
		w.object("process")
		w.uint("pid", uint64(ev.Process.PID))
		w.strNE("name", ev.Process.Comm)
		if ev.Process.Exe != "" {
			writeOCSFFile(w, "file", ev.Process.Exe, fileRegular)
		}
		w.end()
		w.end()
		w.object("process")
		writeProcessFields(w, ev.Process, ev.Container)
		w.int("terminated_time", ev.Time.UnixMilli())
		w.end()
		if ev.Exit != nil {
			w.int("exit_code", int64(ev.Exit.Code))
		}
	default: // syscalls aimed at a process
		writeActor(w, ev.Process, ev.Container)
		switch {
		case p.reflexive && ev.Process != nil:
			writeProcess(w, "process", ev.Process, ev.Container)
		case ev.Container != nil:
			// The target pid is the caller's view, in the container's pid
			// namespace: not a host pid. Name it by namespace and pid.
			w.object("process")
			w.key("uid")
			w.b = append(w.b, `"pidns:`...)
			if ev.Process != nil {
				w.b = strconv.AppendUint(w.b, uint64(ev.Process.NS.PID), 10)
			}
			w.b = append(w.b, '/')
			w.b = strconv.AppendUint(w.b, uint64(p.target), 10)
			w.b = append(w.b, '"')
			w.comma = true
			w.uint("namespace_pid", uint64(p.target))
			w.end()
		default:
			w.object("process")
			w.uint("pid", uint64(p.target))
			w.end()
		}
		if p.injection != "" {
			w.int("injection_type_id", activityOther)
			w.lit("injection_type", p.injection)
		}
	}
}

func fileActivity(w *jsonWriter, ev *event.Event) {
	writeActor(w, ev.Process, ev.Container)
	if f := ev.File; f != nil {
		typeID := fileTypeID(f.Type)
		if typeID == fileUnknown && f.Flags&event.ODirectry != 0 && f.Result >= 0 {
			typeID = fileFolder // opening with O_DIRECTORY succeeds on directories only
		}
		w.object("file")
		p := f.Path
		if p == "" && f.PathSource == event.PathUnresolved {
			p = f.RawPath
		}
		writeFileFields(w, p, typeID)
		if f.Size >= 0 && f.Result >= 0 {
			w.int("size", f.Size)
		}
		if f.Inode != 0 {
			w.uintString("uid", f.Inode)
		}
		w.end()
		w.uint("access_mask", uint64(f.Flags))
		return
	}
	s := ev.Sys
	switch s.Name {
	case "rename":
		writeOCSFFile(w, "file", s.Path, fileUnknown)
		if s.Path2 != "" {
			writeOCSFFile(w, "file_result", s.Path2, fileUnknown)
		}
	case "link", "symlink":
		// The new name is what the call created.
		writeOCSFFile(w, "file", firstNonEmpty(s.Path2, s.Path), fileUnknown)
	case "mknod":
		writeOCSFFile(w, "file", s.Path, mknodType(s.Flags))
	case "mount", "move_mount":
		writeOCSFFile(w, "file", firstNonEmpty(s.Path2, s.Path), fileUnknown)
	default: // unlink, umount
		writeOCSFFile(w, "file", s.Path, fileUnknown)
	}
}

// fileTypeID maps event.File.Type to file type_id.
func fileTypeID(t string) int {
	switch t {
	case event.FileTypeRegular:
		return fileRegular
	case event.FileTypeDir:
		return fileFolder
	case event.FileTypeChar:
		return 3
	case event.FileTypeBlock:
		return 4
	case event.FileTypeSocket:
		return 5
	case event.FileTypeFIFO:
		return 6
	case event.FileTypeSymlink:
		return 7
	}
	return fileUnknown
}

// mknodType maps the S_IFMT bits of mknod's mode to file type_id.
func mknodType(mode uint64) int {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return fileRegular
	case unix.S_IFCHR:
		return 3
	case unix.S_IFBLK:
		return 4
	case unix.S_IFSOCK:
		return 5
	case unix.S_IFIFO:
		return 6
	case 0:
		return fileRegular // mknod with no type creates a regular file
	}
	return fileUnknown
}

func kernelExtension(w *jsonWriter, ev *event.Event) {
	s := ev.Sys
	writeActor(w, ev.Process, ev.Container)
	w.object("driver")
	switch {
	case s.Path != "": // finit_module: the file behind the descriptor
		writeOCSFFile(w, "file", s.Path, fileUnknown)
	case s.Name == "delete_module" && s.Arg != "":
		w.object("file")
		w.str("name", s.Arg) // the module's name
		w.int("type_id", fileUnknown)
		w.lit("type", fileTypeNames[fileUnknown])
		w.end()
	default: // init_module loads an image from memory: there is no file
		writeOCSFFile(w, "file", "", fileUnknown)
	}
	w.end()
}

// ipProtoNums are the IANA numbers of the protocols Net.Protocol names.
var ipProtoNums = map[string]int64{"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "udplite": 136}

func networkActivity(w *jsonWriter, ev *event.Event) {
	n := ev.Net
	writeActor(w, ev.Process, ev.Container)
	// An accepted connection was initiated by the remote peer: OCSF puts
	// the initiator at src_endpoint, and the bytes the local end sends back
	// are bytes_in (destination to source).
	inbound := n.Origin == event.OriginAccept
	local, lport, remote, rport := n.SAddr, n.SPort, n.DAddr, n.DPort
	srcA, srcP, dstA, dstP := local, lport, remote, rport
	if inbound {
		srcA, srcP, dstA, dstP = remote, rport, local, lport
	}
	src := srcA.IsValid()
	if src {
		writeEndpoint(w, "src_endpoint", srcA, srcP)
	}
	switch {
	case n.UnixPath != "":
		w.object("dst_endpoint")
		w.str("name", n.UnixPath)
		w.end()
	case dstA.IsValid():
		writeEndpoint(w, "dst_endpoint", dstA, dstP)
	case !src:
		// An endpoint is required; an unnamed unix socket and a send whose
		// destination was not seen have none.
		w.object("dst_endpoint")
		w.lit("name", event.Unknown)
		w.end()
	}
	w.object("connection_info")
	dir, dirName := 2, "Outbound"
	if inbound {
		dir, dirName = 1, "Inbound"
	}
	boundary, boundaryName := 0, ""
	switch n.Class {
	case event.ClassLoopback, event.ClassUnix:
		dir, dirName = 4, "Local"
		boundary, boundaryName = 1, "Localhost"
	case event.ClassNode:
		boundary, boundaryName = 1, "Localhost"
	case event.ClassPod, event.ClassMetadata:
		boundary, boundaryName = 2, "Internal"
	case event.ClassExternal:
		boundary, boundaryName = 3, "External"
	}
	w.int("direction_id", int64(dir))
	w.lit("direction", dirName)
	if boundary != 0 {
		w.int("boundary_id", int64(boundary))
		w.lit("boundary", boundaryName)
	}
	w.strNE("protocol_name", n.Protocol)
	if num, ok := ipProtoNums[n.Protocol]; ok {
		w.int("protocol_num", num)
	} else if n.IPProto != 0 {
		w.int("protocol_num", int64(n.IPProto))
	}
	if a := remote; a.IsValid() {
		if a.Unmap().Is4() {
			w.int("protocol_ver_id", 4)
			w.lit("protocol_ver", "Internet Protocol version 4 (IPv4)")
		} else {
			w.int("protocol_ver_id", 6)
			w.lit("protocol_ver", "Internet Protocol version 6 (IPv6)")
		}
	}
	w.end()
	if ev.Kind == event.KindEgress {
		w.object("traffic")
		if inbound {
			w.long("bytes_in", n.BytesSent)
		} else {
			w.long("bytes_out", n.BytesSent)
		}
		w.end()
	}
}

func writeEndpoint(w *jsonWriter, key string, a netip.Addr, port uint16) {
	w.object(key)
	w.key("ip")
	w.b = append(w.b, '"')
	w.b = a.AppendTo(w.b)
	w.b = append(w.b, '"')
	w.comma = true
	if port != 0 {
		w.uint("port", uint64(port))
	}
	w.end()
}

func (e *OCSFEncoder) finding(w *jsonWriter, ev *event.Event) {
	f := ev.Finding
	msg := f.Explanation
	if msg == "" {
		msg = f.Title
	}
	w.strNE("message", msg)
	if f.Count > 1 {
		w.int("count", int64(f.Count))
	}
	w.bool("is_alert", true)
	writeActor(w, ev.Process, ev.Container)
	w.object("finding_info")
	w.key("uid")
	if ev.Seq != 0 {
		w.b = e.appendUID(w.b, ev.Seq)
	} else {
		// Not yet published: derive a stable id from what is known.
		var pid uint32
		if ev.Process != nil {
			pid = ev.Process.PID
		}
		w.b = append(w.b, '"')
		w.b = appendJSONEscaped(w.b, f.Rule)
		w.b = append(w.b, '-')
		w.b = strconv.AppendUint(w.b, uint64(pid), 10)
		w.b = append(w.b, '-')
		w.b = strconv.AppendInt(w.b, ev.Time.UnixNano(), 10)
		w.b = append(w.b, '"')
	}
	w.comma = true
	w.str("title", f.Title)
	w.strNE("desc", f.Description)
	if fam, _, ok := strings.Cut(f.Rule, "-"); ok && fam != "" {
		w.array("types")
		w.strElem(ruleFamily(fam))
		w.endArray()
	}
	w.object("analytic")
	w.str("uid", f.Rule)
	w.strNE("name", f.Title)
	w.int("type_id", 1)
	w.lit("type", "Rule")
	w.end()
	writeAttacks(w, f.MITRE)
	w.int("created_time", ev.Time.UnixMilli())
	w.end()
	// security_control profile: the sensor observed, it did not block.
	writeAttacks(w, f.MITRE)
	w.int("action_id", 3)
	w.lit("action", "Observed")
	w.int("disposition_id", 15)
	w.lit("disposition", "Detected")
	n := 0
	for _, x := range f.Evidence {
		if x == nil {
			continue
		}
		if n == 0 {
			w.array("evidences")
		}
		n++
		writeEvidence(w, x)
	}
	if n > 0 {
		w.endArray()
	}
}

func ruleFamily(prefix string) string {
	switch prefix {
	case "ESC":
		return "Container Escape"
	case "NVT":
		return "NVIDIA Container Toolkit"
	case "GPU":
		return "GPU Abuse"
	case "EXF":
		return "Model Exfiltration"
	case "C2":
		return "Command and Control"
	case "CRED":
		return "Credential Access"
	case "EXE":
		return "Execution"
	}
	return prefix
}

type ocsfRef struct{ uid, name string }

// tactics maps the ATT&CK techniques of the rule catalog to their primary
// tactic (docs/rules.md lists each rule's techniques).
var tactics = map[string]ocsfRef{
	"T1611": {"TA0004", "Privilege Escalation"}, "T1055": {"TA0004", "Privilege Escalation"},
	"T1005": {"TA0009", "Collection"}, "T1074": {"TA0009", "Collection"}, "T1560": {"TA0009", "Collection"},
	"T1609": {"TA0002", "Execution"}, "T1610": {"TA0002", "Execution"}, "T1059": {"TA0002", "Execution"}, "T1204": {"TA0002", "Execution"},
	"T1552": {"TA0006", "Credential Access"}, "T1003": {"TA0006", "Credential Access"}, "T1528": {"TA0006", "Credential Access"},
	"T1006": {"TA0005", "Defense Evasion"}, "T1014": {"TA0005", "Defense Evasion"}, "T1620": {"TA0005", "Defense Evasion"},
	"T1547": {"TA0003", "Persistence"}, "T1574": {"TA0003", "Persistence"},
	"T1190": {"TA0001", "Initial Access"},
	"T1496": {"TA0040", "Impact"}, "T1565": {"TA0040", "Impact"}, "T1489": {"TA0040", "Impact"}, "T1499": {"TA0040", "Impact"},
	"T1041": {"TA0010", "Exfiltration"}, "T1048": {"TA0010", "Exfiltration"}, "T1567": {"TA0010", "Exfiltration"}, "T1030": {"TA0010", "Exfiltration"},
	"T1105": {"TA0011", "Command and Control"},
	"T1083": {"TA0007", "Discovery"}, "T1613": {"TA0007", "Discovery"},
}

// writeAttacks writes attacks[] for ATT&CK ids ("T1611", "T1059.004") and
// ATLAS ids ("AML.T0025"); nothing when there are none.
func writeAttacks(w *jsonWriter, ids []string) {
	n := 0
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if n == 0 {
			w.array("attacks")
		}
		n++
		w.elem()
		base := id
		if strings.HasPrefix(id, "T") {
			if b, _, ok := strings.Cut(id, "."); ok {
				base = b
				w.object("sub_technique")
				w.str("uid", id)
				w.end()
			}
			if t, ok := tactics[base]; ok {
				w.object("tactic")
				w.lit("uid", t.uid)
				w.lit("name", t.name)
				w.end()
			}
		}
		w.object("technique")
		w.str("uid", base)
		w.end()
		w.end()
	}
	if n > 0 {
		w.endArray()
	}
}

// writeEvidence writes one evidences[] element: the triggering event's
// process, file, endpoints and container, and its own facts in data.
func writeEvidence(w *jsonWriter, x *event.Event) {
	w.elem()
	if x.Process != nil {
		writeProcess(w, "process", x.Process, nil)
	}
	if f := x.File; f != nil {
		writeOCSFFile(w, "file", f.Path, fileUnknown)
	} else if s := x.Sys; s != nil && s.Path != "" {
		writeOCSFFile(w, "file", s.Path, fileUnknown)
	}
	if n := x.Net; n != nil {
		if n.SAddr.IsValid() {
			writeEndpoint(w, "src_endpoint", n.SAddr, n.SPort)
		}
		switch {
		case n.UnixPath != "":
			w.object("dst_endpoint")
			w.str("name", n.UnixPath)
			w.end()
		case n.DAddr.IsValid():
			writeEndpoint(w, "dst_endpoint", n.DAddr, n.DPort)
		}
	}
	if x.Container != nil {
		writeContainer(w, x.Container)
	}
	w.object("data")
	w.str("kind", x.Kind.String())
	w.int("time", x.Time.UnixMilli())
	if x.Seq != 0 {
		w.uint("seq", x.Seq)
	}
	if f := x.File; f != nil {
		w.key("flags")
		w.b = append(w.b, '"')
		w.b = event.AppendOpenFlags(w.b, f.Flags)
		w.b = append(w.b, '"')
		w.comma = true
		w.int("result", int64(f.Result))
	}
	if n := x.Net; n != nil {
		w.str("protocol", n.Protocol)
		w.str("class", n.Class)
		if x.Kind == event.KindEgress {
			w.uint("bytes_sent", n.BytesSent)
		}
	}
	if s := x.Sys; s != nil {
		w.str("syscall", s.Name)
		w.int("ret", s.Ret)
	}
	if g := x.GPU; g != nil {
		w.str("gpu_uuid", g.UUID)
		w.uint("gpu_used_bytes", g.UsedBytes)
	}
	w.end()
	w.end()
}

// writeUnmapped writes what OCSF has no attribute for.
func writeUnmapped(w *jsonWriter, ev *event.Event) {
	var gpus []string
	if ev.Container != nil {
		gpus = ev.Container.GPUs
	}
	var attrs map[string]string
	if ev.Finding != nil {
		attrs = ev.Finding.Attrs
	}
	exitSignal := ev.Kind == event.KindExit && ev.Exit != nil && ev.Exit.Signal != 0
	raw := !ev.ValidUTF8()
	if len(gpus) == 0 && len(attrs) == 0 && !exitSignal && ev.File == nil && ev.Net == nil && ev.Sys == nil && !raw {
		return
	}
	w.object("unmapped")
	if len(gpus) > 0 {
		w.array("container_gpus")
		for _, g := range gpus {
			w.strElem(g)
		}
		w.endArray()
	}
	if exitSignal {
		w.int("signal", int64(ev.Exit.Signal))
	}
	if len(attrs) > 0 {
		w.object("attrs")
		for _, k := range slices.Sorted(maps.Keys(attrs)) {
			w.str(k, attrs[k])
		}
		w.end()
	}
	if f := ev.File; f != nil && ev.Kind == event.KindOpen {
		w.object("open")
		w.strNE("syscall", f.Syscall)
		w.str("raw_path", f.RawPath)
		w.str("path_source", f.PathSource.String())
		w.key("flags")
		w.b = append(w.b, '"')
		w.b = event.AppendOpenFlags(w.b, f.Flags)
		w.b = append(w.b, '"')
		w.comma = true
		if f.Mode != 0 {
			w.uint("mode", uint64(f.Mode))
		}
		w.int("result", int64(f.Result))
		if f.Dev != 0 {
			w.uint("dev", f.Dev)
		}
		if f.Match != 0 {
			w.array("match")
			for i, m := range event.MatchNames {
				if f.Match&(1<<i) != 0 {
					w.litElem(m)
				}
			}
			w.endArray()
		}
		w.strNE("knob", f.Knob)
		if f.Rdev != 0 {
			w.uint("rdev", f.Rdev)
		}
		if f.TargetPID != 0 {
			w.uint("target_pid", uint64(f.TargetPID))
		}
		w.strNE("via", f.Via)
		if f.Truncated&event.TruncPath != 0 {
			w.bool("path_truncated", true)
		}
		if f.Repeats != 0 {
			w.uint("repeats", uint64(f.Repeats))
		}
		w.end()
	}
	if n := ev.Net; n != nil {
		w.object("net")
		w.str("class", n.Class)
		if n.Cookie != 0 {
			w.uint("socket_cookie", n.Cookie)
		}
		if n.Result != 0 {
			w.int("result", int64(n.Result))
		}
		w.strNE("origin", n.Origin)
		w.strNE("via", n.Via)
		w.end()
	}
	if s := ev.Sys; s != nil {
		w.object("syscall")
		w.str("name", s.Name)
		w.int("ret", s.Ret)
		if s.Flags != 0 {
			w.uint("flags", s.Flags)
		}
		if s.Arg2 != 0 {
			w.uint("arg2", s.Arg2)
		}
		if s.Target != 0 {
			w.uint("target", uint64(s.Target))
		}
		w.strNE("path", s.Path)
		w.strNE("path2", s.Path2)
		w.strNE("arg", s.Arg)
		if s.NSInode != 0 {
			w.uint("ns_inode", uint64(s.NSInode))
		}
		if s.FdIsSocket {
			w.bool("fd_is_socket", true)
		}
		w.strNE("via", s.Via)
		w.end()
	}
	if raw {
		// The exact bytes of names that are not valid UTF-8 (the strings
		// above carry U+FFFD), keyed by their JSON-contract field name.
		w.object("raw_b64")
		ev.RawStrings(func(field, s string) { w.str(field, base64.StdEncoding.EncodeToString([]byte(s))) })
		w.end()
	}
	w.end()
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// OCSFClass returns the OCSF class uid ev maps to, or 0 for kinds without
// one and for malformed events.
func OCSFClass(ev *event.Event) int {
	if ev == nil {
		return 0
	}
	p, err := planOf(ev)
	if err != nil {
		return 0
	}
	return p.class
}
