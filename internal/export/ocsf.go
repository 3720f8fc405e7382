package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// OCSFSchemaVersion is the OCSF schema the encoder writes (metadata.version).
const OCSFSchemaVersion = "1.8.0"

// OCSF class uids written by the encoder.
const (
	OCSFFileActivity     = 1001
	OCSFProcessActivity  = 1007
	OCSFDetectionFinding = 2004
	OCSFNetworkActivity  = 4001
)

// ErrNoOCSFClass is returned for event kinds that have no OCSF class
// (gpu, lost, status). Exporters count and skip them.
var ErrNoOCSFClass = errors.New("event kind has no OCSF class")

// OCSFOptions are the optional settings of an OCSFEncoder; nil is valid.
type OCSFOptions struct {
	// Hostname is device.hostname; defaults to os.Hostname().
	Hostname string
	// ProductVersion is metadata.product.version; defaults to "dev".
	ProductVersion string
	// InstanceID prefixes metadata.uid and finding_info.uid so they are
	// unique across sensor restarts (the ring's InstanceID).
	InstanceID string
}

// OCSFEncoder renders events as OCSF 1.8.0 JSON: Detection Finding 2004,
// Process Activity 1007, File System Activity 1001 and Network Activity 4001
// (research/ecosystem.md §1.1). It is hand-written: `time` is a number of
// milliseconds, integers are numbers, and the mapping is explicit.
//
// It is safe for concurrent use.
type OCSFEncoder struct {
	host, version, instance string
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

// The OCSF objects used. Field names and types follow the schema; optional
// values are omitted when unknown.

type ocsfEvent struct {
	ActivityID   int    `json:"activity_id"`
	ActivityName string `json:"activity_name"`
	CategoryUID  int    `json:"category_uid"`
	CategoryName string `json:"category_name"`
	ClassUID     int    `json:"class_uid"`
	ClassName    string `json:"class_name"`
	TypeUID      int    `json:"type_uid"`
	TypeName     string `json:"type_name"`
	SeverityID   int    `json:"severity_id"`
	Severity     string `json:"severity"`
	Time         int64  `json:"time"`
	Message      string `json:"message,omitempty"`
	Count        int    `json:"count,omitempty"`
	StatusID     int    `json:"status_id,omitempty"`
	Status       string `json:"status,omitempty"`
	IsAlert      *bool  `json:"is_alert,omitempty"`

	Metadata ocsfMetadata `json:"metadata"`
	Device   ocsfDevice   `json:"device"`
	Actor    *ocsfActor   `json:"actor,omitempty"`

	Process    *ocsfProcess `json:"process,omitempty"`
	ExitCode   *int32       `json:"exit_code,omitempty"`
	File       *ocsfFile    `json:"file,omitempty"`
	FileResult *ocsfFile    `json:"file_result,omitempty"`

	SrcEndpoint    *ocsfEndpoint `json:"src_endpoint,omitempty"`
	DstEndpoint    *ocsfEndpoint `json:"dst_endpoint,omitempty"`
	ConnectionInfo *ocsfConnInfo `json:"connection_info,omitempty"`
	Traffic        *ocsfTraffic  `json:"traffic,omitempty"`

	FindingInfo *ocsfFindingInfo `json:"finding_info,omitempty"`
	Evidences   []ocsfEvidence   `json:"evidences,omitempty"`
	// security_control profile (findings): the sensor observed, it did not
	// block.
	Attacks       []ocsfAttack `json:"attacks,omitempty"`
	ActionID      int          `json:"action_id,omitempty"`
	Action        string       `json:"action,omitempty"`
	DispositionID int          `json:"disposition_id,omitempty"`
	Disposition   string       `json:"disposition,omitempty"`

	Container    *ocsfContainer `json:"container,omitempty"`
	NamespacePID *uint32        `json:"namespace_pid,omitempty"`
	Unmapped     map[string]any `json:"unmapped,omitempty"`
}

type ocsfProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
	Version    string `json:"version"`
}

type ocsfMetadata struct {
	Version   string      `json:"version"`
	Product   ocsfProduct `json:"product"`
	UID       string      `json:"uid,omitempty"`
	Sequence  uint64      `json:"sequence,omitempty"`
	Profiles  []string    `json:"profiles"`
	LogName   string      `json:"log_name,omitempty"`
	EventCode string      `json:"event_code,omitempty"`
}

type ocsfOS struct {
	Name   string `json:"name"`
	TypeID int    `json:"type_id"`
	Type   string `json:"type"`
}

type ocsfDevice struct {
	Hostname string `json:"hostname"`
	TypeID   int    `json:"type_id"`
	Type     string `json:"type"`
	OS       ocsfOS `json:"os"`
}

type ocsfUser struct {
	UID string `json:"uid"`
}

type ocsfFile struct {
	Name   string `json:"name"`
	Path   string `json:"path,omitempty"`
	TypeID int    `json:"type_id"`
	Type   string `json:"type"`
	Size   *int64 `json:"size,omitempty"`
}

type ocsfProcess struct {
	PID           uint32       `json:"pid"`
	TID           uint32       `json:"tid,omitempty"`
	Name          string       `json:"name,omitempty"`
	CmdLine       string       `json:"cmd_line,omitempty"`
	File          *ocsfFile    `json:"file,omitempty"`
	User          *ocsfUser    `json:"user,omitempty"`
	CreatedTime   int64        `json:"created_time,omitempty"`
	Cwd           string       `json:"working_directory,omitempty"`
	Lineage       []string     `json:"lineage,omitempty"`
	ParentProcess *ocsfProcess `json:"parent_process,omitempty"`
}

type ocsfActor struct {
	Process *ocsfProcess `json:"process"`
}

type ocsfEndpoint struct {
	IP   string `json:"ip,omitempty"`
	Port uint16 `json:"port,omitempty"`
	Name string `json:"name,omitempty"`
}

type ocsfConnInfo struct {
	DirectionID  int    `json:"direction_id"`
	Direction    string `json:"direction"`
	BoundaryID   int    `json:"boundary_id,omitempty"`
	Boundary     string `json:"boundary,omitempty"`
	ProtocolName string `json:"protocol_name,omitempty"`
	ProtocolNum  int    `json:"protocol_num,omitempty"`
}

type ocsfTraffic struct {
	BytesOut uint64 `json:"bytes_out"`
}

type ocsfRef struct {
	UID  string `json:"uid"`
	Name string `json:"name,omitempty"`
}

type ocsfAttack struct {
	Technique    *ocsfRef `json:"technique,omitempty"`
	SubTechnique *ocsfRef `json:"sub_technique,omitempty"`
	Tactic       *ocsfRef `json:"tactic,omitempty"`
}

type ocsfAnalytic struct {
	UID    string `json:"uid"`
	Name   string `json:"name,omitempty"`
	TypeID int    `json:"type_id"`
	Type   string `json:"type"`
}

type ocsfFindingInfo struct {
	UID         string       `json:"uid"`
	Title       string       `json:"title"`
	Desc        string       `json:"desc,omitempty"`
	Types       []string     `json:"types,omitempty"`
	Analytic    ocsfAnalytic `json:"analytic"`
	Attacks     []ocsfAttack `json:"attacks,omitempty"`
	CreatedTime int64        `json:"created_time"`
}

type ocsfEvidence struct {
	Process     *ocsfProcess   `json:"process,omitempty"`
	File        *ocsfFile      `json:"file,omitempty"`
	DstEndpoint *ocsfEndpoint  `json:"dst_endpoint,omitempty"`
	SrcEndpoint *ocsfEndpoint  `json:"src_endpoint,omitempty"`
	Container   *ocsfContainer `json:"container,omitempty"`
	Data        map[string]any `json:"data"`
}

type ocsfImage struct {
	UID  string `json:"uid"`
	Name string `json:"name"`
}

type ocsfContainer struct {
	UID          string     `json:"uid"`
	Name         string     `json:"name,omitempty"`
	Image        *ocsfImage `json:"image,omitempty"`
	Runtime      string     `json:"runtime,omitempty"`
	PodUUID      string     `json:"pod_uuid,omitempty"`
	Orchestrator string     `json:"orchestrator,omitempty"`
	Labels       []string   `json:"labels,omitempty"`
}

// Enumerations (OCSF 1.8.0).
var (
	severityNames = [...]string{0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
	categoryNames = map[int]string{1: "System Activity", 2: "Findings", 4: "Network Activity"}
	classNames    = map[int]string{OCSFFileActivity: "File System Activity", OCSFProcessActivity: "Process Activity",
		OCSFDetectionFinding: "Detection Finding", OCSFNetworkActivity: "Network Activity"}
	activityNames = map[int]map[int]string{
		OCSFFileActivity:     {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 5: "Rename", 6: "Set Attributes", 12: "Mount", 13: "Unmount", 14: "Open", 99: "Other"},
		OCSFProcessActivity:  {1: "Launch", 2: "Terminate", 3: "Open", 4: "Inject", 5: "Set User ID", 99: "Other"},
		OCSFDetectionFinding: {1: "Create", 2: "Update", 3: "Close"},
		OCSFNetworkActivity:  {1: "Open", 2: "Close", 3: "Reset", 4: "Fail", 5: "Refuse", 6: "Traffic", 99: "Other"},
	}
	fileTypeNames = map[int]string{0: "Unknown", 1: "Regular File", 2: "Folder", 3: "Character Device", 5: "Local Socket"}
)

// maxLineage bounds the parent_process chain and lineage list.
const maxLineage = 16

// Encode renders ev as one OCSF JSON object (no trailing newline). Kinds
// without an OCSF class return ErrNoOCSFClass.
func (e *OCSFEncoder) Encode(ev *event.Event) ([]byte, error) {
	o, err := e.build(ev)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Command lines and paths hold '>' and '&'; SIEMs want them verbatim.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(o); err != nil {
		return nil, fmt.Errorf("marshal OCSF %d: %w", o.ClassUID, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

func (e *OCSFEncoder) build(ev *event.Event) (*ocsfEvent, error) {
	if ev == nil {
		return nil, errors.New("encode OCSF: nil event")
	}
	o := &ocsfEvent{
		Time:       ev.Time.UnixMilli(),
		SeverityID: 1,
		Metadata: ocsfMetadata{
			Version:   OCSFSchemaVersion,
			Product:   ocsfProduct{Name: "Kestrel", VendorName: "kestrel-sec", Version: e.version},
			Sequence:  ev.Seq,
			Profiles:  []string{"host"},
			EventCode: ev.Kind.String(),
		},
		Device: ocsfDevice{Hostname: e.host, TypeID: 1, Type: "Server", OS: ocsfOS{Name: "Linux", TypeID: 200, Type: "Linux"}},
	}
	if ev.Seq != 0 {
		o.Metadata.UID = e.uid(ev)
	}
	if c := ocsfContainerOf(ev.Container); c != nil {
		o.Container = c
		o.Metadata.Profiles = append(o.Metadata.Profiles, "container")
		if k := k8sOf(ev.Container); k != nil {
			o.addUnmapped("k8s", k)
		}
		if len(ev.Container.GPUs) > 0 {
			o.addUnmapped("container_gpus", ev.Container.GPUs)
		}
	}
	actor := &ocsfActor{Process: ocsfProcessOf(ev.Process)}

	switch ev.Kind {
	case event.KindFinding:
		if ev.Finding == nil {
			return nil, errors.New("encode OCSF: finding event without a finding")
		}
		e.finding(o, ev)
		o.Actor = actor
	case event.KindExec, event.KindFork, event.KindExit:
		o.setClass(OCSFProcessActivity, 1)
		o.Process = ocsfProcessOf(ev.Process)
		if o.Process == nil {
			return nil, fmt.Errorf("encode OCSF: %s event without a process", ev.Kind)
		}
		switch ev.Kind {
		case event.KindExit:
			o.setClass(OCSFProcessActivity, 2)
			o.Actor = actor
			if ev.Exit != nil {
				code := ev.Exit.Code
				o.ExitCode = &code
				if ev.Exit.Signal != 0 {
					o.addUnmapped("signal", ev.Exit.Signal)
				}
			}
		default:
			// The launching process is the actor (OCSF "representing
			// process parentage"): the parent, with its own lineage.
			o.Actor = &ocsfActor{Process: o.Process.ParentProcess}
			if o.Actor.Process == nil {
				o.Actor.Process = &ocsfProcess{PID: ev.Process.PPID}
			}
			if ev.Kind == event.KindFork {
				o.addUnmapped("fork", true)
			}
		}
	case event.KindOpen:
		if ev.File == nil {
			return nil, errors.New("encode OCSF: open event without a file")
		}
		o.setClass(OCSFFileActivity, 14)
		o.Actor = actor
		o.File = ocsfFileOf(ev.File.Path, ev.File.Flags)
		if ev.File.Size >= 0 {
			sz := ev.File.Size
			o.File.Size = &sz
		}
		o.addUnmapped("open", map[string]any{"raw_path": ev.File.RawPath, "flags": event.OpenFlagString(ev.File.Flags),
			"result": ev.File.Result, "path_source": ev.File.PathSource.String()})
		if ev.File.Result < 0 {
			o.StatusID, o.Status = 2, "Failure"
		} else {
			o.StatusID, o.Status = 1, "Success"
		}
	case event.KindConnect, event.KindEgress:
		if ev.Net == nil {
			return nil, fmt.Errorf("encode OCSF: %s event without net", ev.Kind)
		}
		e.network(o, ev)
		o.Actor = actor
	case event.KindSyscall:
		if ev.Sys == nil {
			return nil, errors.New("encode OCSF: syscall event without a syscall")
		}
		e.syscall(o, ev)
		if o.Actor == nil {
			o.Actor = actor
		}
	default:
		return nil, fmt.Errorf("encode OCSF %s: %w", ev.Kind, ErrNoOCSFClass)
	}
	if o.Actor != nil && o.Actor.Process == nil {
		o.Actor.Process = &ocsfProcess{}
	}
	if raw := rawB64(ev); raw != nil {
		o.addUnmapped("raw_b64", raw)
	}
	return o, nil
}

func (e *OCSFEncoder) uid(ev *event.Event) string {
	if e.instance == "" {
		return strconv.FormatUint(ev.Seq, 10)
	}
	return e.instance + "-" + strconv.FormatUint(ev.Seq, 10)
}

func (o *ocsfEvent) setClass(class, activity int) {
	cat := class / 1000
	o.ClassUID, o.ClassName = class, classNames[class]
	o.CategoryUID, o.CategoryName = cat, categoryNames[cat]
	o.ActivityID, o.ActivityName = activity, activityNames[class][activity]
	o.TypeUID = class*100 + activity
	o.TypeName = o.ClassName + ": " + o.ActivityName
	if o.SeverityID >= 0 && o.SeverityID < len(severityNames) {
		o.Severity = severityNames[o.SeverityID]
	}
}

func (o *ocsfEvent) addUnmapped(k string, v any) {
	if o.Unmapped == nil {
		o.Unmapped = map[string]any{}
	}
	o.Unmapped[k] = v
}

func (e *OCSFEncoder) finding(o *ocsfEvent, ev *event.Event) {
	f := ev.Finding
	o.SeverityID = int(f.Severity)
	if f.Severity < event.SevInfo || f.Severity > event.SevCritical {
		o.SeverityID = 0
	}
	o.setClass(OCSFDetectionFinding, 1)
	alert := true
	o.IsAlert = &alert
	o.StatusID, o.Status = 1, "New"
	o.Message = f.Explanation
	if o.Message == "" {
		o.Message = f.Title
	}
	if f.Count > 1 {
		o.Count = f.Count
	}
	uid := e.uid(ev)
	if ev.Seq == 0 {
		// Not yet published: derive a stable id from what is known.
		pid := uint32(0)
		if ev.Process != nil {
			pid = ev.Process.PID
		}
		uid = fmt.Sprintf("%s-%d-%d", f.Rule, pid, ev.Time.UnixNano())
	}
	fi := &ocsfFindingInfo{
		UID:         uid,
		Title:       f.Title,
		Desc:        f.Description,
		Analytic:    ocsfAnalytic{UID: f.Rule, Name: f.Title, TypeID: 1, Type: "Rule"},
		CreatedTime: ev.Time.UnixMilli(),
	}
	if fam, _, ok := strings.Cut(f.Rule, "-"); ok && fam != "" {
		fi.Types = []string{ruleFamily(fam)}
	}
	for _, id := range f.MITRE {
		if a, ok := attackOf(id); ok {
			fi.Attacks = append(fi.Attacks, a)
		}
	}
	o.FindingInfo = fi
	o.Attacks = fi.Attacks
	o.ActionID, o.Action = 3, "Observed"
	o.DispositionID, o.Disposition = 15, "Detected"
	o.Metadata.Profiles = append(o.Metadata.Profiles, "security_control")
	for _, ee := range f.Evidence {
		if ee == nil {
			continue
		}
		o.Evidences = append(o.Evidences, evidenceOf(ee))
	}
	if len(f.Attrs) > 0 {
		o.addUnmapped("attrs", f.Attrs)
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

// tactics maps ATT&CK techniques used by the rule catalog to their primary
// tactic (detections.md).
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

// attackOf maps "T1611", "T1059.004" or an ATLAS id ("AML.T0025") to an
// OCSF attack object.
func attackOf(id string) (ocsfAttack, bool) {
	id = strings.TrimSpace(id)
	if id == "" {
		return ocsfAttack{}, false
	}
	base := id
	var a ocsfAttack
	if strings.HasPrefix(id, "T") {
		if b, _, ok := strings.Cut(id, "."); ok {
			base = b
			a.SubTechnique = &ocsfRef{UID: id}
		}
		if t, ok := tactics[base]; ok {
			a.Tactic = &t
		}
	}
	a.Technique = &ocsfRef{UID: base}
	return a, true
}

func evidenceOf(ev *event.Event) ocsfEvidence {
	x := ocsfEvidence{
		Process:   ocsfProcessOf(ev.Process),
		Container: ocsfContainerOf(ev.Container),
		Data:      map[string]any{"kind": ev.Kind.String(), "time": ev.Time.UnixMilli()},
	}
	if ev.Seq != 0 {
		x.Data["seq"] = ev.Seq
	}
	if f := ev.File; f != nil {
		x.File = ocsfFileOf(f.Path, f.Flags)
		x.Data["flags"] = event.OpenFlagString(f.Flags)
		x.Data["result"] = f.Result
	}
	if n := ev.Net; n != nil {
		x.SrcEndpoint, x.DstEndpoint = endpoints(n)
		x.Data["protocol"] = n.Protocol
		x.Data["class"] = n.Class
		if ev.Kind == event.KindEgress {
			x.Data["bytes_sent"] = n.BytesSent
		}
	}
	if s := ev.Sys; s != nil {
		x.Data["syscall"] = s.Name
		x.Data["ret"] = s.Ret
		if s.Path != "" {
			x.File = ocsfFileOf(s.Path, 0)
		}
	}
	if g := ev.GPU; g != nil {
		x.Data["gpu_uuid"] = g.UUID
		x.Data["gpu_used_bytes"] = g.UsedBytes
	}
	return x
}

func (e *OCSFEncoder) network(o *ocsfEvent, ev *event.Event) {
	n := ev.Net
	act := 1 // Open
	switch {
	case ev.Kind == event.KindEgress && n.Closed:
		act = 2 // Close
	case ev.Kind == event.KindEgress:
		act = 6 // Traffic
	case n.Result == -111: // ECONNREFUSED
		act = 5
	case n.Result < 0:
		act = 4
	}
	o.setClass(OCSFNetworkActivity, act)
	o.SrcEndpoint, o.DstEndpoint = endpoints(n)
	ci := &ocsfConnInfo{DirectionID: 2, Direction: "Outbound", ProtocolName: n.Protocol}
	switch n.Protocol {
	case "tcp":
		ci.ProtocolNum = 6
	case "udp":
		ci.ProtocolNum = 17
	}
	switch n.Class {
	case event.ClassLoopback, event.ClassNode, event.ClassUnix:
		ci.BoundaryID, ci.Boundary = 1, "Localhost"
		if n.Class == event.ClassLoopback || n.Class == event.ClassUnix {
			ci.DirectionID, ci.Direction = 4, "Local"
		}
	case event.ClassPod, event.ClassMetadata:
		ci.BoundaryID, ci.Boundary = 2, "Internal"
	case event.ClassExternal:
		ci.BoundaryID, ci.Boundary = 3, "External"
	}
	o.ConnectionInfo = ci
	if ev.Kind == event.KindEgress {
		o.Traffic = &ocsfTraffic{BytesOut: n.BytesSent}
	}
	un := map[string]any{"class": n.Class}
	if n.Cookie != 0 {
		un["socket_cookie"] = n.Cookie
	}
	if n.Result != 0 {
		un["result"] = n.Result
	}
	o.addUnmapped("net", un)
}

func endpoints(n *event.Net) (src, dst *ocsfEndpoint) {
	if n.SAddr.IsValid() {
		src = &ocsfEndpoint{IP: n.SAddr.String(), Port: n.SPort}
	}
	switch {
	case n.UnixPath != "":
		dst = &ocsfEndpoint{Name: n.UnixPath}
	case n.DAddr.IsValid():
		dst = &ocsfEndpoint{IP: n.DAddr.String(), Port: n.DPort}
	}
	return src, dst
}

// syscall maps the escape-primitive syscalls: file-system ones to File
// System Activity, process-targeting ones to Process Activity.
func (e *OCSFEncoder) syscall(o *ocsfEvent, ev *event.Event) {
	s := ev.Sys
	un := map[string]any{"name": s.Name, "ret": s.Ret}
	if s.Flags != 0 {
		un["flags"] = s.Flags
	}
	if s.Arg != "" {
		un["arg"] = s.Arg
	}
	if s.NSInode != 0 {
		un["ns_inode"] = s.NSInode
	}
	if s.Path != "" {
		un["path"] = s.Path
	}
	if s.Path2 != "" {
		un["path2"] = s.Path2
	}
	o.addUnmapped("syscall", un)
	if s.Ret < 0 {
		o.StatusID, o.Status = 2, "Failure"
	} else {
		o.StatusID, o.Status = 1, "Success"
	}
	file := func(act int, p string) {
		o.setClass(OCSFFileActivity, act)
		o.File = ocsfFileOf(p, 0)
	}
	switch s.Name {
	case "rename", "renameat", "renameat2":
		file(5, s.Path)
		if s.Path2 != "" {
			o.FileResult = ocsfFileOf(s.Path2, 0)
		}
	case "unlink", "unlinkat", "rmdir":
		file(4, s.Path)
	case "link", "linkat", "symlink", "symlinkat":
		file(1, firstNonEmpty(s.Path2, s.Path))
	case "mknod", "mknodat":
		file(1, s.Path)
	case "mount":
		file(12, firstNonEmpty(s.Path2, s.Path))
	case "umount", "umount2":
		file(13, s.Path)
	case "ptrace", "process_vm_writev":
		o.setClass(OCSFProcessActivity, 4) // Inject
		o.Process = &ocsfProcess{PID: s.Target}
	case "process_vm_readv":
		o.setClass(OCSFProcessActivity, 3) // Open
		o.Process = &ocsfProcess{PID: s.Target}
	default:
		// setns, unshare, module and bpf loads, memfd_create, chroot,
		// pivot_root, dup, kill: process activity of the caller.
		o.setClass(OCSFProcessActivity, 99)
		o.Process = ocsfProcessOf(ev.Process)
		if s.Target != 0 {
			un["target"] = s.Target
		}
	}
	if o.ClassUID == OCSFProcessActivity && o.Process == nil {
		o.Process = &ocsfProcess{}
	}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func ocsfFileOf(p string, flags uint32) *ocsfFile {
	name := path.Base(p)
	if p == "" {
		name = event.Unknown
	}
	f := &ocsfFile{Name: name, Path: p, TypeID: 1}
	switch {
	case flags&event.ODirectry != 0:
		f.TypeID = 2
	case strings.HasPrefix(p, "/dev/"):
		f.TypeID = 3
	case strings.HasPrefix(p, "/proc/") || strings.HasPrefix(p, "/sys/") || p == "":
		f.TypeID = 0
	}
	f.Type = fileTypeNames[f.TypeID]
	return f
}

func ocsfProcessOf(p *event.Process) *ocsfProcess {
	if p == nil {
		return nil
	}
	op := &ocsfProcess{PID: p.PID, Name: p.Comm, CmdLine: strings.Join(p.Args, " "), Cwd: p.Cwd,
		User: &ocsfUser{UID: strconv.FormatUint(uint64(p.UID), 10)}}
	if p.TID != 0 && p.TID != p.PID {
		op.TID = p.TID
	}
	if p.Exe != "" {
		op.File = &ocsfFile{Name: path.Base(p.Exe), Path: p.Exe, TypeID: 1, Type: "Regular File"}
	}
	if !p.StartTime.IsZero() {
		op.CreatedTime = p.StartTime.UnixMilli()
	}
	anc := p.Ancestors
	if len(anc) > maxLineage {
		anc = anc[:maxLineage]
	}
	for _, a := range anc {
		op.Lineage = append(op.Lineage, a.Exe)
	}
	// Build parent_process from the outermost ancestor inwards.
	var parent *ocsfProcess
	for i := len(anc) - 1; i >= 0; i-- {
		pp := &ocsfProcess{PID: anc[i].PID, ParentProcess: parent}
		if anc[i].Exe != "" {
			pp.File = &ocsfFile{Name: path.Base(anc[i].Exe), Path: anc[i].Exe, TypeID: 1, Type: "Regular File"}
		}
		if i+1 < len(anc) {
			for _, b := range anc[i+1:] {
				pp.Lineage = append(pp.Lineage, b.Exe)
			}
		}
		parent = pp
	}
	if parent == nil && p.PPID != 0 {
		parent = &ocsfProcess{PID: p.PPID}
	}
	op.ParentProcess = parent
	return op
}

func ocsfContainerOf(c *event.Container) *ocsfContainer {
	if c == nil {
		return nil
	}
	oc := &ocsfContainer{UID: c.ID, Name: c.Name, Runtime: c.Runtime, PodUUID: c.PodUID}
	if oc.UID == "" {
		oc.UID = event.Unknown
	}
	if c.Image != "" {
		oc.Image = &ocsfImage{UID: c.Image, Name: c.Image}
	}
	if c.Pod != "" || c.PodUID != "" {
		oc.Orchestrator = "Kubernetes"
	}
	if oc.PodUUID == event.Unknown {
		oc.PodUUID = ""
	}
	for k, v := range c.Labels {
		oc.Labels = append(oc.Labels, k+"="+v)
	}
	slices.Sort(oc.Labels)
	return oc
}

func k8sOf(c *event.Container) map[string]string {
	if c.Pod == "" && c.Namespace == "" {
		return nil
	}
	return map[string]string{"pod": c.Pod, "namespace": c.Namespace}
}

// OCSFClass returns the OCSF class uid ev maps to, or 0 for kinds without
// one.
func OCSFClass(ev *event.Event) int {
	switch ev.Kind {
	case event.KindFinding:
		return OCSFDetectionFinding
	case event.KindExec, event.KindFork, event.KindExit:
		return OCSFProcessActivity
	case event.KindOpen:
		return OCSFFileActivity
	case event.KindConnect, event.KindEgress:
		return OCSFNetworkActivity
	case event.KindSyscall:
		if ev.Sys != nil {
			switch ev.Sys.Name {
			case "rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir", "link", "linkat", "symlink",
				"symlinkat", "mknod", "mknodat", "mount", "umount", "umount2":
				return OCSFFileActivity
			}
		}
		return OCSFProcessActivity
	}
	return 0
}
