package export

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var kindPairs = [...]struct {
	e event.Kind
	p sensorv1.EventKind
}{
	{event.KindExec, sensorv1.EventKind_EVENT_KIND_EXEC},
	{event.KindFork, sensorv1.EventKind_EVENT_KIND_FORK},
	{event.KindExit, sensorv1.EventKind_EVENT_KIND_EXIT},
	{event.KindOpen, sensorv1.EventKind_EVENT_KIND_OPEN},
	{event.KindConnect, sensorv1.EventKind_EVENT_KIND_CONNECT},
	{event.KindEgress, sensorv1.EventKind_EVENT_KIND_EGRESS},
	{event.KindSyscall, sensorv1.EventKind_EVENT_KIND_SYSCALL},
	{event.KindGPU, sensorv1.EventKind_EVENT_KIND_GPU},
	{event.KindFinding, sensorv1.EventKind_EVENT_KIND_FINDING},
	{event.KindLost, sensorv1.EventKind_EVENT_KIND_LOST},
	{event.KindStatus, sensorv1.EventKind_EVENT_KIND_STATUS},
	{event.KindAccept, sensorv1.EventKind_EVENT_KIND_ACCEPT},
}

func kindToProto(k event.Kind) sensorv1.EventKind {
	for _, p := range kindPairs {
		if p.e == k {
			return p.p
		}
	}
	return sensorv1.EventKind_EVENT_KIND_UNSPECIFIED
}

func kindFromProto(k sensorv1.EventKind) (event.Kind, bool) {
	for _, p := range kindPairs {
		if p.p == k {
			return p.e, true
		}
	}
	return event.KindInvalid, false
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func fromTS(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// EventToProto converts ev to its wire form. Evidence events of a finding are
// converted one level deep. Every string of the result is valid UTF-8; the
// exact bytes of names that were not are in the messages' Exact fields
// (allocated only then, so the common case costs nothing more).
func EventToProto(ev *event.Event) *sensorv1.Event {
	return eventToProto(ev, 0)
}

func eventToProto(ev *event.Event, depth int) *sensorv1.Event {
	p := eventBodyToProto(ev, depth)
	if p != nil {
		p.Process, p.Container = processToProto(ev.Process), containerToProto(ev.Container)
	}
	return p
}

// eventBodyToProto converts ev without its process and container: the wire
// encoder (wire.go) encodes those once per snapshot.
func eventBodyToProto(ev *event.Event, depth int) *sensorv1.Event {
	if ev == nil {
		return nil
	}
	p := &sensorv1.Event{
		Kind: kindToProto(ev.Kind),
		Time: ts(ev.Time),
		Seq:  ev.Seq,
	}
	switch {
	case ev.File != nil:
		f := ev.File
		pf := &sensorv1.File{
			PathSource: sensorv1.PathSource(f.PathSource + 1), Flags: f.Flags,
			Mode: f.Mode, Result: f.Result, Size: f.Size, Inode: f.Inode, Dev: f.Dev, Syscall: vt(f.Syscall),
			Truncated: f.Truncated.Names(), ExitOnly: f.ExitOnly, Compat: f.Compat,
			Via: vt(f.Via), Match: f.Match.Names(), Knob: vt(f.Knob), Type: vt(f.Type), Rdev: f.Rdev, TargetPid: f.TargetPID,
			Repeats: f.Repeats,
		}
		var path, raw []byte
		pf.Path, path = text(f.Path)
		pf.RawPath, raw = text(f.RawPath)
		if path != nil || raw != nil {
			pf.Exact = &sensorv1.FileExact{Path: path, RawPath: raw}
		}
		p.Payload = &sensorv1.Event_File{File: pf}
	case ev.Net != nil:
		n := ev.Net
		pn := &sensorv1.Net{
			Protocol: vt(n.Protocol), Saddr: addrString(n.SAddr), Sport: uint32(n.SPort), Daddr: addrString(n.DAddr),
			Dport: uint32(n.DPort), Class: vt(n.Class), Cookie: n.Cookie, BytesSent: n.BytesSent,
			Closed: n.Closed, Result: n.Result, Fd: n.Fd, IpProto: uint32(n.IPProto), Origin: vt(n.Origin), Via: vt(n.Via),
		}
		var raw []byte
		if pn.UnixPath, raw = text(n.UnixPath); raw != nil {
			pn.Exact = &sensorv1.NetExact{UnixPath: raw}
		}
		p.Payload = &sensorv1.Event_Net{Net: pn}
	case ev.Sys != nil:
		s := ev.Sys
		ps := &sensorv1.Syscall{
			Name: vt(s.Name), Ret: s.Ret, Flags: s.Flags, Target: s.Target, Arg2: s.Arg2,
			Fd: s.Fd, Fd2: s.Fd2, NsInode: s.NSInode, FdIsSocket: s.FdIsSocket, Truncated: s.Truncated.Names(),
			ExitOnly: s.ExitOnly, Compat: s.Compat, Via: vt(s.Via), SensorObject: s.SensorObject, Pending: s.Pending,
		}
		var path, path2, arg []byte
		ps.Path, path = text(s.Path)
		ps.Path2, path2 = text(s.Path2)
		ps.Arg, arg = text(s.Arg)
		if path != nil || path2 != nil || arg != nil {
			ps.Exact = &sensorv1.SyscallExact{Path: path, Path2: path2, Arg: arg}
		}
		p.Payload = &sensorv1.Event_Syscall{Syscall: ps}
	case ev.GPU != nil:
		g := ev.GPU
		p.Payload = &sensorv1.Event_Gpu{Gpu: &sensorv1.Gpu{
			Change: vt(g.Change), Uuid: vt(g.UUID), Index: int32(g.Index), Mig: vt(g.MIG), Name: vt(g.Name), Pid: g.PID, UsedBytes: g.UsedBytes,
		}}
	case ev.Exit != nil:
		p.Payload = &sensorv1.Event_Exit{Exit: &sensorv1.Exit{Code: ev.Exit.Code, Signal: ev.Exit.Signal}}
	case ev.Finding != nil:
		f := ev.Finding
		pf := &sensorv1.Finding{
			Rule: vt(f.Rule), Title: vt(f.Title), Severity: sensorv1.Severity(f.Severity), Mitre: vts(f.MITRE),
			Description: vt(f.Description), Count: uint32(max(f.Count, 0)), Attrs: vmap(f.Attrs),
		}
		var expl []byte
		var attrs map[string][]byte
		pf.Explanation, expl = text(f.Explanation)
		for k, v := range f.Attrs {
			if _, raw := text(v); raw != nil {
				if attrs == nil {
					attrs = map[string][]byte{}
				}
				attrs[vt(k)] = raw
			}
		}
		if expl != nil || attrs != nil {
			pf.Exact = &sensorv1.FindingExact{Explanation: expl, Attrs: attrs}
		}
		if depth == 0 {
			for _, e := range f.Evidence {
				if e != nil {
					pf.Evidence = append(pf.Evidence, eventToProto(e, depth+1))
				}
			}
		}
		p.Payload = &sensorv1.Event_Finding{Finding: pf}
	case ev.Lost != nil:
		p.Payload = &sensorv1.Event_Lost{Lost: &sensorv1.Lost{Source: vt(ev.Lost.Source), Count: ev.Lost.Count}}
	case ev.Status != nil:
		p.Payload = &sensorv1.Event_Status{Status: statusToProto(ev.Status)}
	}
	return p
}

func processToProto(pr *event.Process) *sensorv1.Process {
	if pr == nil {
		return nil
	}
	p := &sensorv1.Process{
		Pid: pr.PID, Tid: pr.TID, Ppid: pr.PPID, ForkParent: pr.ForkParent, Uid: pr.UID, Euid: pr.EUID,
		StartTime: ts(pr.StartTime), ExecTime: ts(pr.ExecTime), CgroupId: pr.CgroupID, CapEff: pr.CapEff,
		CapPrm: pr.CapPrm, Tty: pr.TTY, GpuOwner: pr.GPUOwner, ExeMemfd: pr.ExeMemfd, Truncated: pr.Truncated.Names(),
	}
	var comm, exe, cwd []byte
	var args [][]byte
	p.Comm, comm = text(pr.Comm)
	p.Exe, exe = text(pr.Exe)
	p.Cwd, cwd = text(pr.Cwd)
	var ok bool
	if p.Args, ok = event.ValidTexts(pr.Args); !ok {
		args = make([][]byte, len(pr.Args))
		for i, a := range pr.Args {
			args[i] = []byte(a)
		}
	}
	if comm != nil || exe != nil || cwd != nil || args != nil {
		p.Exact = &sensorv1.ProcessExact{Comm: comm, Exe: exe, Cwd: cwd, Args: args}
	}
	if pr.NS != (event.Namespaces{}) {
		n := pr.NS
		p.Ns = &sensorv1.Namespaces{Mnt: n.Mnt, Pid: n.PID, Net: n.Net, User: n.User, Uts: n.UTS, Ipc: n.IPC, Cgroup: n.Cgroup}
	}
	for _, e := range pr.Env {
		pe := &sensorv1.EnvVar{}
		var name, value []byte
		pe.Name, name = text(e.Name)
		pe.Value, value = text(e.Value)
		if name != nil || value != nil {
			pe.Exact = &sensorv1.EnvVarExact{Name: name, Value: value}
		}
		p.Env = append(p.Env, pe)
	}
	for _, a := range pr.Ancestors {
		pa := &sensorv1.Ancestor{Pid: a.PID}
		var exe, comm []byte
		pa.Exe, exe = text(a.Exe)
		pa.Comm, comm = text(a.Comm)
		if exe != nil || comm != nil {
			pa.Exact = &sensorv1.AncestorExact{Exe: exe, Comm: comm}
		}
		p.Ancestors = append(p.Ancestors, pa)
	}
	return p
}

func containerToProto(c *event.Container) *sensorv1.Container {
	if c == nil {
		return nil
	}
	p := &sensorv1.Container{
		Runtime: vt(c.Runtime), PodUid: vt(c.PodUID), Labels: vmap(c.Labels), Gpus: vts(c.GPUs), StartTime: ts(c.StartTime),
	}
	var id, cg, pod, ns, name, image []byte
	p.Id, id = text(c.ID)
	p.CgroupPath, cg = text(c.CgroupPath)
	p.Pod, pod = text(c.Pod)
	p.Namespace, ns = text(c.Namespace)
	p.Name, name = text(c.Name)
	p.Image, image = text(c.Image)
	if id != nil || cg != nil || pod != nil || ns != nil || name != nil || image != nil {
		p.Exact = &sensorv1.ContainerExact{Id: id, CgroupPath: cg, Pod: pod, Namespace: ns, Name: name, Image: image}
	}
	return p
}

// EventFromProto converts a wire event back into the sensor's vocabulary. It
// rejects what the sensor could never have sent: an unknown kind, an
// unparsable address, a port out of range.
func EventFromProto(p *sensorv1.Event) (*event.Event, error) {
	return eventFromProto(p, 0)
}

func eventFromProto(p *sensorv1.Event, depth int) (*event.Event, error) {
	if p == nil {
		return nil, fmt.Errorf("nil event")
	}
	k, ok := kindFromProto(p.GetKind())
	if !ok {
		return nil, fmt.Errorf("kind: unknown event kind %d", int32(p.GetKind()))
	}
	ev := &event.Event{Kind: k, Time: fromTS(p.GetTime()), Seq: p.GetSeq(),
		Process: processFromProto(p.GetProcess()), Container: containerFromProto(p.GetContainer())}
	switch pl := p.GetPayload().(type) {
	case *sensorv1.Event_File:
		f := pl.File
		src := event.PathUnresolved
		if ps := f.GetPathSource(); ps >= sensorv1.PathSource_PATH_SOURCE_AS_PASSED && ps <= sensorv1.PathSource_PATH_SOURCE_UNRESOLVED {
			src = event.PathSource(ps - 1)
		}
		match, ok := event.ParseFileMatch(f.GetMatch())
		if !ok {
			return nil, fmt.Errorf("file.match: unknown match in %q", f.GetMatch())
		}
		ev.File = &event.File{Path: fromText(f.GetPath(), f.GetExact().GetPath()), RawPath: fromText(f.GetRawPath(), f.GetExact().GetRawPath()),
			PathSource: src, Flags: f.GetFlags(), Mode: f.GetMode(), Result: f.GetResult(), Size: f.GetSize(), Inode: f.GetInode(),
			Dev: f.GetDev(), Syscall: f.GetSyscall(), Truncated: event.ParseTruncation(f.GetTruncated()),
			ExitOnly: f.GetExitOnly(), Compat: f.GetCompat(), Via: f.GetVia(), Match: match, Knob: f.GetKnob(),
			Type: f.GetType(), Rdev: f.GetRdev(), TargetPID: f.GetTargetPid(), Repeats: f.GetRepeats()}
	case *sensorv1.Event_Net:
		n := pl.Net
		if n.GetSport() > 65535 || n.GetDport() > 65535 {
			return nil, fmt.Errorf("net: port out of range (%d, %d)", n.GetSport(), n.GetDport())
		}
		if n.GetIpProto() > 255 {
			return nil, fmt.Errorf("net: ip_proto %d out of range", n.GetIpProto())
		}
		en := &event.Net{Protocol: n.GetProtocol(), IPProto: uint8(n.GetIpProto()), SPort: uint16(n.GetSport()),
			DPort: uint16(n.GetDport()), UnixPath: fromText(n.GetUnixPath(), n.GetExact().GetUnixPath()),
			Class: n.GetClass(), Cookie: n.GetCookie(), BytesSent: n.GetBytesSent(), Closed: n.GetClosed(),
			Result: n.GetResult(), Fd: n.GetFd(), Origin: n.GetOrigin(), Via: n.GetVia()}
		var err error
		if en.SAddr, err = parseAddr(n.GetSaddr()); err != nil {
			return nil, fmt.Errorf("net.saddr: %w", err)
		}
		if en.DAddr, err = parseAddr(n.GetDaddr()); err != nil {
			return nil, fmt.Errorf("net.daddr: %w", err)
		}
		ev.Net = en
	case *sensorv1.Event_Syscall:
		s := pl.Syscall
		ev.Sys = &event.Syscall{Name: s.GetName(), Ret: s.GetRet(), Flags: s.GetFlags(), Target: s.GetTarget(),
			Path: fromText(s.GetPath(), s.GetExact().GetPath()), Path2: fromText(s.GetPath2(), s.GetExact().GetPath2()),
			Arg: fromText(s.GetArg(), s.GetExact().GetArg()), Arg2: s.GetArg2(), Fd: s.GetFd(), Fd2: s.GetFd2(),
			NSInode: s.GetNsInode(), FdIsSocket: s.GetFdIsSocket(), Truncated: event.ParseTruncation(s.GetTruncated()),
			ExitOnly: s.GetExitOnly(), Compat: s.GetCompat(), Via: s.GetVia(),
			SensorObject: s.GetSensorObject(), Pending: s.GetPending()}
	case *sensorv1.Event_Gpu:
		g := pl.Gpu
		ev.GPU = &event.GPU{Change: g.GetChange(), UUID: g.GetUuid(), Index: int(g.GetIndex()), MIG: g.GetMig(),
			Name: g.GetName(), PID: g.GetPid(), UsedBytes: g.GetUsedBytes()}
	case *sensorv1.Event_Exit:
		ev.Exit = &event.Exit{Code: pl.Exit.GetCode(), Signal: pl.Exit.GetSignal()}
	case *sensorv1.Event_Finding:
		f := pl.Finding
		sev := event.Severity(f.GetSeverity())
		if sev.String() == "invalid" {
			return nil, fmt.Errorf("finding.severity: unknown severity %d", int32(f.GetSeverity()))
		}
		ef := &event.Finding{Rule: f.GetRule(), Title: f.GetTitle(), Severity: sev, MITRE: f.GetMitre(),
			Description: f.GetDescription(), Explanation: fromText(f.GetExplanation(), f.GetExact().GetExplanation()),
			Count: int(f.GetCount()), Attrs: f.GetAttrs()}
		if len(f.GetExact().GetAttrs()) > 0 {
			ef.Attrs = maps.Clone(ef.Attrs)
			if ef.Attrs == nil {
				ef.Attrs = map[string]string{}
			}
			for k, v := range f.GetExact().GetAttrs() {
				ef.Attrs[k] = fromText(ef.Attrs[k], v)
			}
		}
		if depth == 0 {
			for i, e := range f.GetEvidence() {
				ee, err := eventFromProto(e, depth+1)
				if err != nil {
					return nil, fmt.Errorf("finding.evidence[%d]: %w", i, err)
				}
				ef.Evidence = append(ef.Evidence, ee)
			}
		}
		ev.Finding = ef
	case *sensorv1.Event_Lost:
		ev.Lost = &event.Lost{Source: pl.Lost.GetSource(), Count: pl.Lost.GetCount(), Detail: pl.Lost.GetDetail()}
	case *sensorv1.Event_Status:
		s := pl.Status
		ev.Status = &event.Status{Ready: s.GetReady(), GPUEnabled: s.GetGpuEnabled(), Message: s.GetMessage(), Programs: s.GetPrograms(),
			Fields: s.GetFields(), Counters: s.GetCounters()}
	}
	return ev, nil
}

func parseAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	return netip.ParseAddr(s)
}

func processFromProto(p *sensorv1.Process) *event.Process {
	if p == nil {
		return nil
	}
	pr := &event.Process{
		PID: p.GetPid(), TID: p.GetTid(), PPID: p.GetPpid(), ForkParent: p.GetForkParent(), UID: p.GetUid(), EUID: p.GetEuid(),
		Comm: fromText(p.GetComm(), p.GetExact().GetComm()), Exe: fromText(p.GetExe(), p.GetExact().GetExe()), Args: p.GetArgs(),
		Cwd: fromText(p.GetCwd(), p.GetExact().GetCwd()), StartTime: fromTS(p.GetStartTime()),
		ExecTime: fromTS(p.GetExecTime()), CgroupID: p.GetCgroupId(), CapEff: p.GetCapEff(), CapPrm: p.GetCapPrm(),
		TTY: p.GetTty(), GPUOwner: p.GetGpuOwner(), ExeMemfd: p.GetExeMemfd(), Truncated: event.ParseTruncation(p.GetTruncated()),
	}
	if raw := p.GetExact().GetArgs(); len(raw) > 0 {
		pr.Args = make([]string, len(raw))
		for i, a := range raw {
			pr.Args[i] = string(a)
		}
	}
	if n := p.GetNs(); n != nil {
		pr.NS = event.Namespaces{Mnt: n.GetMnt(), PID: n.GetPid(), Net: n.GetNet(), User: n.GetUser(), UTS: n.GetUts(), IPC: n.GetIpc(), Cgroup: n.GetCgroup()}
	}
	for _, e := range p.GetEnv() {
		pr.Env = append(pr.Env, event.EnvVar{Name: fromText(e.GetName(), e.GetExact().GetName()), Value: fromText(e.GetValue(), e.GetExact().GetValue())})
	}
	for _, a := range p.GetAncestors() {
		pr.Ancestors = append(pr.Ancestors, event.Ancestor{PID: a.GetPid(), Exe: fromText(a.GetExe(), a.GetExact().GetExe()),
			Comm: fromText(a.GetComm(), a.GetExact().GetComm())})
	}
	return pr
}

func containerFromProto(c *sensorv1.Container) *event.Container {
	if c == nil {
		return nil
	}
	return &event.Container{
		ID: fromText(c.GetId(), c.GetExact().GetId()), Runtime: c.GetRuntime(), CgroupPath: fromText(c.GetCgroupPath(), c.GetExact().GetCgroupPath()),
		PodUID: c.GetPodUid(), Pod: fromText(c.GetPod(), c.GetExact().GetPod()), Namespace: fromText(c.GetNamespace(), c.GetExact().GetNamespace()),
		Name: fromText(c.GetName(), c.GetExact().GetName()), Image: fromText(c.GetImage(), c.GetExact().GetImage()), Labels: c.GetLabels(),
		GPUs: c.GetGpus(), StartTime: fromTS(c.GetStartTime()),
	}
}

// InventoryToProto converts the AI bill of materials to its wire form.
func InventoryToProto(inv *event.Inventory) *sensorv1.Inventory {
	if inv == nil {
		return nil
	}
	p := &sensorv1.Inventory{Node: vt(inv.Node), Time: ts(inv.Time)}
	for _, g := range inv.GPUs {
		pg := &sensorv1.InventoryGpu{Uuid: vt(g.UUID), Index: int32(g.Index), Name: vt(g.Name), Mig: vt(g.MIG)}
		for _, o := range g.Owners {
			pg.Owners = append(pg.Owners, ownerToProto(o))
		}
		p.Gpus = append(p.Gpus, pg)
	}
	for _, o := range inv.Unowned {
		p.Unowned = append(p.Unowned, ownerToProto(o))
	}
	return p
}

func ownerToProto(o event.InventoryOwner) *sensorv1.InventoryOwner {
	p := &sensorv1.InventoryOwner{Process: processToProto(o.Process), Container: containerToProto(o.Container), UsedBytes: o.UsedBytes}
	for _, m := range o.Models {
		pm := &sensorv1.ModelFile{Size: m.Size, Inode: m.Inode, Dev: m.Dev,
			Sha256: vt(m.SHA256), FirstLoader: m.FirstLoader, FirstSeen: ts(m.FirstSeen)}
		pm.Path, pm.PathExact = text(m.Path)
		p.Models = append(p.Models, pm)
	}
	for _, pe := range o.Peers {
		p.Peers = append(p.Peers, &sensorv1.Peer{Addr: addrString(pe.Addr), Port: uint32(pe.Port), Protocol: vt(pe.Protocol),
			Class: vt(pe.Class), BytesSent: pe.BytesSent})
	}
	return p
}

// InventoryFromProto converts a wire inventory back. Unparsable peer
// addresses are an error.
func InventoryFromProto(p *sensorv1.Inventory) (*event.Inventory, error) {
	if p == nil {
		return nil, fmt.Errorf("nil inventory")
	}
	inv := &event.Inventory{Node: p.GetNode(), Time: fromTS(p.GetTime())}
	for i, g := range p.GetGpus() {
		eg := event.InventoryGPU{UUID: g.GetUuid(), Index: int(g.GetIndex()), Name: g.GetName(), MIG: g.GetMig()}
		for j, o := range g.GetOwners() {
			eo, err := ownerFromProto(o)
			if err != nil {
				return nil, fmt.Errorf("gpus[%d].owners[%d]: %w", i, j, err)
			}
			eg.Owners = append(eg.Owners, eo)
		}
		inv.GPUs = append(inv.GPUs, eg)
	}
	for j, o := range p.GetUnowned() {
		eo, err := ownerFromProto(o)
		if err != nil {
			return nil, fmt.Errorf("unowned[%d]: %w", j, err)
		}
		inv.Unowned = append(inv.Unowned, eo)
	}
	return inv, nil
}

func ownerFromProto(p *sensorv1.InventoryOwner) (event.InventoryOwner, error) {
	o := event.InventoryOwner{Process: processFromProto(p.GetProcess()), Container: containerFromProto(p.GetContainer()), UsedBytes: p.GetUsedBytes()}
	for _, m := range p.GetModels() {
		o.Models = append(o.Models, event.ModelFile{Path: fromText(m.GetPath(), m.GetPathExact()), Size: m.GetSize(), Inode: m.GetInode(), Dev: m.GetDev(),
			SHA256: m.GetSha256(), FirstLoader: m.GetFirstLoader(), FirstSeen: fromTS(m.GetFirstSeen())})
	}
	for i, pe := range p.GetPeers() {
		a, err := parseAddr(pe.GetAddr())
		if err != nil {
			return o, fmt.Errorf("peers[%d].addr: %w", i, err)
		}
		if pe.GetPort() > 65535 {
			return o, fmt.Errorf("peers[%d].port: %d out of range", i, pe.GetPort())
		}
		o.Peers = append(o.Peers, event.Peer{Addr: a, Port: uint16(pe.GetPort()), Protocol: pe.GetProtocol(),
			Class: pe.GetClass(), BytesSent: pe.GetBytesSent()})
	}
	return o, nil
}

// statusToProto converts a pipeline status; maps are cloned so the wire
// message does not alias the caller's.
func statusToProto(s *event.Status) *sensorv1.Status {
	if s == nil {
		return nil
	}
	counters := make(map[string]uint64, len(s.Counters))
	for k, v := range s.Counters {
		counters[vt(k)] = v
	}
	return &sensorv1.Status{Ready: s.Ready, GpuEnabled: s.GPUEnabled, Message: vt(s.Message), Programs: slices.Clone(vts(s.Programs)),
		Fields: maps.Clone(vmap(s.Fields)), Counters: counters}
}
