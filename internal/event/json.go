package event

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The JSON contract (docs/output.md). These mirror types keep the wire names in
// one place; Event itself carries no tags so the hot path stays free of them.

type jsonProcess struct {
	PID       uint32         `json:"pid"`
	PPID      uint32         `json:"ppid"`
	TID       uint32         `json:"tid,omitempty"`
	Comm      string         `json:"comm"`
	Exe       string         `json:"exe"`
	Args      []string       `json:"args"`
	UID       uint32         `json:"uid"`
	EUID      uint32         `json:"euid"`
	Cwd       string         `json:"cwd,omitempty"`
	StartTime string         `json:"start_time,omitempty"`
	CgroupID  uint64         `json:"cgroup_id,omitempty"`
	CapEff    string         `json:"cap_eff,omitempty"`
	TTY       bool           `json:"tty,omitempty"`
	GPUOwner  bool           `json:"gpu_owner,omitempty"`
	Env       []jsonEnv      `json:"env,omitempty"`
	Ancestors []jsonAncestor `json:"ancestors"`
	Truncated []string       `json:"truncated,omitempty"`
	// The exact bytes of fields that are not valid UTF-8 (see text.go).
	CommB64 string   `json:"comm_b64,omitempty"`
	ExeB64  string   `json:"exe_b64,omitempty"`
	CwdB64  string   `json:"cwd_b64,omitempty"`
	ArgsB64 []string `json:"args_b64,omitempty"`
}

type jsonEnv struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	NameB64  string `json:"name_b64,omitempty"`
	ValueB64 string `json:"value_b64,omitempty"`
}

type jsonAncestor struct {
	PID     uint32 `json:"pid"`
	Exe     string `json:"exe"`
	Comm    string `json:"comm,omitempty"`
	ExeB64  string `json:"exe_b64,omitempty"`
	CommB64 string `json:"comm_b64,omitempty"`
}

type jsonContainer struct {
	ID         string            `json:"id"`
	Runtime    string            `json:"runtime"`
	Pod        string            `json:"pod"`
	Namespace  string            `json:"namespace"`
	PodUID     string            `json:"pod_uid"`
	Name       string            `json:"name,omitempty"`
	Image      string            `json:"image,omitempty"`
	CgroupPath string            `json:"cgroup_path,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	GPUs       []string          `json:"gpus,omitempty"`
	// The exact bytes of fields that are not valid UTF-8.
	IDB64         string `json:"id_b64,omitempty"`
	PodB64        string `json:"pod_b64,omitempty"`
	NamespaceB64  string `json:"namespace_b64,omitempty"`
	NameB64       string `json:"name_b64,omitempty"`
	ImageB64      string `json:"image_b64,omitempty"`
	CgroupPathB64 string `json:"cgroup_path_b64,omitempty"`
}

type jsonFile struct {
	Path       string `json:"path"`
	RawPath    string `json:"raw_path"`
	PathSource string `json:"path_source"`
	Flags      uint32 `json:"flags"`
	FlagNames  string `json:"flag_names"`
	Mode       uint32 `json:"mode,omitempty"`
	Result     int32  `json:"result"`
	Syscall    string `json:"syscall,omitempty"`
	Size       *int64 `json:"size,omitempty"`
	// Identity of the opened file and how the kernel matched it.
	Inode     uint64   `json:"inode,omitempty"`
	Dev       uint64   `json:"dev,omitempty"`
	Type      string   `json:"type,omitempty"`
	Rdev      uint64   `json:"rdev,omitempty"`
	Match     []string `json:"match,omitempty"`
	Knob      string   `json:"knob,omitempty"`
	TargetPID uint32   `json:"target_pid,omitempty"`
	Via       string   `json:"via,omitempty"`
	Repeats   uint32   `json:"repeats,omitempty"`
	ExitOnly  bool     `json:"exit_only,omitempty"`
	Compat    bool     `json:"compat,omitempty"`
	// Truncated names the paths the capture cut short.
	Truncated  []string `json:"truncated,omitempty"`
	PathB64    string   `json:"path_b64,omitempty"`
	RawPathB64 string   `json:"raw_path_b64,omitempty"`
}

type jsonNet struct {
	Protocol  string `json:"protocol"`
	IPProto   uint8  `json:"ip_proto,omitempty"`
	SAddr     string `json:"saddr,omitempty"`
	SPort     uint16 `json:"sport"`
	DAddr     string `json:"daddr,omitempty"`
	DPort     uint16 `json:"dport"`
	UnixPath  string `json:"unix_path,omitempty"`
	Class     string `json:"class"`
	Cookie    uint64 `json:"cookie,omitempty"`
	BytesSent uint64 `json:"bytes_sent"`
	Closed    bool   `json:"closed,omitempty"`
	Result    int32  `json:"result,omitempty"`
	// UnixPathB64 is the exact sun_path when it is not valid UTF-8.
	UnixPathB64 string `json:"unix_path_b64,omitempty"`
	Fd          *int32 `json:"fd,omitempty"`
	Origin      string `json:"origin,omitempty"`
	Via         string `json:"via,omitempty"`
}

type jsonSys struct {
	Name       string   `json:"name"`
	Ret        int64    `json:"ret"`
	Flags      uint64   `json:"flags,omitempty"`
	Target     uint32   `json:"target,omitempty"`
	Path       string   `json:"path,omitempty"`
	Path2      string   `json:"path2,omitempty"`
	Arg        string   `json:"arg,omitempty"`
	Arg2       uint64   `json:"arg2,omitempty"`
	Fd         int32    `json:"fd"`
	Fd2        int32    `json:"fd2,omitempty"`
	NSInode    uint32   `json:"ns_inode,omitempty"`
	FdIsSocket bool     `json:"fd_is_socket,omitempty"`
	Via        string   `json:"via,omitempty"`
	ExitOnly   bool     `json:"exit_only,omitempty"`
	Compat     bool     `json:"compat,omitempty"`
	Truncated  []string `json:"truncated,omitempty"`
	PathB64    string   `json:"path_b64,omitempty"`
	Path2B64   string   `json:"path2_b64,omitempty"`
	ArgB64     string   `json:"arg_b64,omitempty"`
}

type jsonGPU struct {
	Change    string `json:"change"`
	UUID      string `json:"uuid"`
	Index     int    `json:"index"`
	MIG       string `json:"mig,omitempty"`
	Name      string `json:"name,omitempty"`
	PID       uint32 `json:"pid"`
	UsedBytes uint64 `json:"used_bytes"`
}

type jsonEvent struct {
	Kind      string         `json:"kind"`
	Time      string         `json:"time"`
	Seq       uint64         `json:"seq,omitempty"`
	Process   *jsonProcess   `json:"process"`
	Container *jsonContainer `json:"container"`
	File      *jsonFile      `json:"file,omitempty"`
	Net       *jsonNet       `json:"net,omitempty"`
	Sys       *jsonSys       `json:"syscall,omitempty"`
	GPU       *jsonGPU       `json:"gpu,omitempty"`
	Exit      *Exit          `json:"exit,omitempty"`
	// Finding fields are flattened onto the line, as the contract says.
	Rule        string            `json:"rule,omitempty"`
	Severity    string            `json:"severity,omitempty"`
	Title       string            `json:"title,omitempty"`
	MITRE       []string          `json:"mitre,omitempty"`
	Explanation string            `json:"explanation,omitempty"`
	Description string            `json:"description,omitempty"`
	Count       int               `json:"count,omitempty"`
	Attrs       map[string]string `json:"attrs,omitempty"`
	Evidence    []*jsonEvent      `json:"evidence,omitempty"`
	// The exact bytes of an explanation or attribute that is not valid UTF-8.
	ExplanationB64 string            `json:"explanation_b64,omitempty"`
	AttrsB64       map[string]string `json:"attrs_b64,omitempty"`
	// Lost and status.
	Source   string            `json:"source,omitempty"`
	Lost     uint64            `json:"count_lost,omitempty"`
	Detail   string            `json:"detail,omitempty"`
	Ready    *bool             `json:"ready,omitempty"`
	GPUOn    *bool             `json:"gpu_enabled,omitempty"`
	Message  string            `json:"message,omitempty"`
	Programs []string          `json:"programs,omitempty"`
	Fields   map[string]string `json:"fields,omitempty"`
}

// TimeFormat is RFC 3339 with nanoseconds, as the contract requires.
const TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// MarshalJSON renders e in the --tail -o json contract (docs/output.md),
// terminal-safe (TerminalSafeJSON): the line may be read on a terminal.
func (e *Event) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(toJSON(e, 0))
	return TerminalSafeJSON(b), err
}

func toJSON(e *Event, depth int) *jsonEvent {
	j := &jsonEvent{
		Kind: e.Kind.String(),
		Time: e.Time.UTC().Format(TimeFormat),
		Seq:  e.Seq,
	}
	j.Process = processJSON(e.Process)
	j.Container = containerJSON(e.Container)
	if f := e.File; f != nil {
		jf := &jsonFile{Path: f.Path, RawPath: f.RawPath, PathSource: f.PathSource.String(), Flags: f.Flags,
			FlagNames: OpenFlagString(f.Flags), Mode: f.Mode, Result: f.Result, Syscall: f.Syscall,
			Inode: f.Inode, Dev: f.Dev, Type: f.Type, Rdev: f.Rdev, Match: f.Match.Names(), Knob: f.Knob,
			TargetPID: f.TargetPID, Via: f.Via, Repeats: f.Repeats, ExitOnly: f.ExitOnly, Compat: f.Compat,
			Truncated: f.Truncated.Names(), PathB64: b64(f.Path), RawPathB64: b64(f.RawPath)}
		if f.Size >= 0 {
			sz := f.Size
			jf.Size = &sz
		}
		j.File = jf
	}
	if n := e.Net; n != nil {
		jn := &jsonNet{Protocol: n.Protocol, IPProto: n.IPProto, SPort: n.SPort, DPort: n.DPort, UnixPath: n.UnixPath,
			Class: n.Class, Cookie: n.Cookie, BytesSent: n.BytesSent, Closed: n.Closed, Result: n.Result,
			Origin: n.Origin, Via: n.Via, UnixPathB64: b64(n.UnixPath)}
		if n.Fd >= 0 && e.Kind != KindEgress {
			fd := n.Fd
			jn.Fd = &fd
		}
		if n.SAddr.IsValid() {
			jn.SAddr = n.SAddr.String()
		}
		if n.DAddr.IsValid() {
			jn.DAddr = n.DAddr.String()
		}
		j.Net = jn
	}
	if s := e.Sys; s != nil {
		j.Sys = &jsonSys{Name: s.Name, Ret: s.Ret, Flags: s.Flags, Target: s.Target, Path: s.Path, Path2: s.Path2,
			Arg: s.Arg, Arg2: s.Arg2, Fd: s.Fd, Fd2: s.Fd2, NSInode: s.NSInode, FdIsSocket: s.FdIsSocket,
			Via: s.Via, ExitOnly: s.ExitOnly, Compat: s.Compat,
			Truncated: s.Truncated.Names(), PathB64: b64(s.Path), Path2B64: b64(s.Path2), ArgB64: b64(s.Arg)}
	}
	if g := e.GPU; g != nil {
		j.GPU = &jsonGPU{Change: g.Change, UUID: g.UUID, Index: g.Index, MIG: g.MIG, Name: g.Name, PID: g.PID, UsedBytes: g.UsedBytes}
	}
	j.Exit = e.Exit
	if f := e.Finding; f != nil {
		j.Rule, j.Severity, j.Title, j.MITRE = f.Rule, f.Severity.String(), f.Title, f.MITRE
		j.Explanation, j.Description, j.Count, j.Attrs = f.Explanation, f.Description, f.Count, f.Attrs
		j.ExplanationB64 = b64(f.Explanation)
		for k, v := range f.Attrs {
			if r := b64(v); r != "" {
				if j.AttrsB64 == nil {
					j.AttrsB64 = map[string]string{}
				}
				j.AttrsB64[k] = r
			}
		}
		if depth == 0 {
			for _, ev := range f.Evidence {
				j.Evidence = append(j.Evidence, toJSON(ev, depth+1))
			}
		}
	}
	if l := e.Lost; l != nil {
		j.Source, j.Lost, j.Detail = l.Source, l.Count, l.Detail
	}
	if s := e.Status; s != nil {
		r := s.Ready
		g := s.GPUEnabled
		j.Ready, j.GPUOn, j.Message, j.Programs, j.Fields = &r, &g, s.Message, s.Programs, s.Fields
	}
	return j
}

// ContextJSON renders a process and a container exactly as event lines do,
// for other documents that embed them (the AI bill of materials).
func ContextJSON(p *Process, c *Container) (process, container any) {
	jp, jc := processJSON(p), containerJSON(c)
	if jp != nil {
		process = jp
	}
	if jc != nil {
		container = jc
	}
	return process, container
}

func processJSON(p *Process) *jsonProcess {
	if p == nil {
		return nil
	}
	jp := &jsonProcess{
		PID: p.PID, PPID: p.PPID, Comm: p.Comm, Exe: p.Exe, Args: p.Args,
		UID: p.UID, EUID: p.EUID, Cwd: p.Cwd, CgroupID: p.CgroupID, TTY: p.TTY,
		GPUOwner: p.GPUOwner, Truncated: p.Truncated.Names(),
		CommB64: b64(p.Comm), ExeB64: b64(p.Exe), CwdB64: b64(p.Cwd),
	}
	if _, ok := ValidTexts(p.Args); !ok {
		jp.ArgsB64 = make([]string, len(p.Args))
		for i, a := range p.Args {
			jp.ArgsB64[i] = base64.StdEncoding.EncodeToString([]byte(a))
		}
	}
	if len(p.Env) > 0 {
		jp.Env = make([]jsonEnv, len(p.Env))
		for i, e := range p.Env {
			jp.Env[i] = jsonEnv{Name: e.Name, Value: e.Value, NameB64: b64(e.Name), ValueB64: b64(e.Value)}
		}
	}
	jp.Ancestors = make([]jsonAncestor, len(p.Ancestors))
	for i, a := range p.Ancestors {
		jp.Ancestors[i] = jsonAncestor{PID: a.PID, Exe: a.Exe, Comm: a.Comm, ExeB64: b64(a.Exe), CommB64: b64(a.Comm)}
	}
	if p.TID != p.PID {
		jp.TID = p.TID
	}
	if !p.StartTime.IsZero() {
		jp.StartTime = p.StartTime.UTC().Format(TimeFormat)
	}
	if p.CapEff != 0 {
		jp.CapEff = "0x" + strconv.FormatUint(p.CapEff, 16)
	}
	if jp.Args == nil {
		jp.Args = []string{}
	}
	return jp
}

func containerJSON(c *Container) *jsonContainer {
	if c == nil {
		return nil
	}
	return &jsonContainer{
		ID: c.ID, Runtime: c.Runtime, Pod: orUnknown(c.Pod), Namespace: orUnknown(c.Namespace),
		PodUID: orUnknown(c.PodUID), Name: c.Name, Image: c.Image, CgroupPath: c.CgroupPath,
		Labels: c.Labels, GPUs: c.GPUs,
		IDB64: b64(c.ID), PodB64: b64(c.Pod), NamespaceB64: b64(c.Namespace), NameB64: b64(c.Name),
		ImageB64: b64(c.Image), CgroupPathB64: b64(c.CgroupPath),
	}
}

// b64 returns the base64 of s when s is not valid UTF-8, else "": the JSON
// encoder replaces invalid bytes with U+FFFD, so the readable field alone
// would not name the real file.
func b64(s string) string {
	if utf8.ValidString(s) {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(s))
}

func orUnknown(s string) string {
	if s == "" {
		return Unknown
	}
	return s
}

var openFlagNames = []struct {
	bit  uint32
	name string
}{
	{OCreat, "O_CREAT"}, {0x80, "O_EXCL"}, {0x100, "O_NOCTTY"}, {OTrunc, "O_TRUNC"}, {OAppend, "O_APPEND"},
	{0x800, "O_NONBLOCK"}, {0x1000, "O_DSYNC"}, {0x4000, "O_DIRECT"}, {ODirectry, "O_DIRECTORY"},
	{0x20000, "O_NOFOLLOW"}, {0x40000, "O_NOATIME"}, {0x80000, "O_CLOEXEC"}, {0x200000, "O_PATH"}, {0x400000, "O_TMPFILE"},
}

// OpenFlagString renders open(2) flags as "O_RDONLY|O_CLOEXEC".
func OpenFlagString(flags uint32) string {
	return string(AppendOpenFlags(nil, flags))
}

// AppendOpenFlags appends the OpenFlagString form of flags to b.
func AppendOpenFlags(b []byte, flags uint32) []byte {
	switch flags & OAccMode {
	case ORdonly:
		b = append(b, "O_RDONLY"...)
	case OWronly:
		b = append(b, "O_WRONLY"...)
	case ORdwr:
		b = append(b, "O_RDWR"...)
	default:
		b = append(b, "O_ACCMODE"...)
	}
	for _, f := range openFlagNames {
		if flags&f.bit == f.bit {
			b = append(b, '|')
			b = append(b, f.name...)
		}
	}
	return b
}
