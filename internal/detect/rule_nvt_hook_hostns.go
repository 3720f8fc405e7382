package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// hookSockets are unix sockets NVIDIA hooks may legitimately talk to.
var hookSockets = []string{"nvidia-persistenced/socket", "nvidia-fabricmanager/socket", "nvidia-fabricmanager.sock"}

type nvt003 struct{ baseRule }

func newNVT003(*Settings) Rule {
	return &nvt003{baseRule{Meta{
		ID:       "NVT-003",
		Title:    "NVIDIA hook touches host namespaces or the network",
		MITRE:    []string{"T1611"},
		Severity: event.SevCritical,
		Description: "A process with an NVIDIA hook (run by the container runtime) in its lineage, or the hook " +
			"itself, opens a host namespace file (/proc/<pid>/ns/* resolving to HOST_NS, failed attempts on pid 1 " +
			"included), opens /proc/1/root/*, connects anywhere (inet, or unix other than nvidia-persistenced / " +
			"fabricmanager), or calls setns into a host namespace. Hooks configure files and mounts; they have no " +
			"reason to dial out. nvidia-container-cli entering the container's own namespaces is not matched.",
		Knobs: []string{"runtime_binaries_extra"},
		Kinds: kinds(event.KindOpen, event.KindConnect, event.KindSyscall),
	}}}
}

func (r *nvt003) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if p == nil {
		return
	}
	// Cheap shape checks first: only then walk the lineage.
	var what, key string
	attrs := map[string]string(nil)
	switch ev.Kind {
	case event.KindOpen:
		f := ev.File
		if f == nil {
			return
		}
		if pid, rest, ok := procPath(f.RawPath); ok && pid == "1" && strings.HasPrefix(rest, "root/") {
			if _, _, ok := hookLineage(ctx.Settings, p, true); !ok {
				return
			}
			what, key = "opened "+f.RawPath+" (the host root)"+resultNote(int64(f.Result)), "root"
			break
		}
		t, ok := nsOpenTarget(ctx.Settings.HostNS, p, f)
		if !ok || !t.host {
			return
		}
		if _, _, ok := hookLineage(ctx.Settings, p, true); !ok {
			return
		}
		what, key = "opened host "+t.typ+" namespace file "+t.path+resultNote(int64(f.Result)), "ns"
		attrs = map[string]string{"path": t.path, "target": t.how}
	case event.KindConnect:
		n := ev.Net
		if n == nil {
			return
		}
		if n.UnixPath != "" {
			for _, s := range hookSockets {
				if strings.HasSuffix(n.UnixPath, s) {
					return
				}
			}
		}
		if _, _, ok := hookLineage(ctx.Settings, p, true); !ok {
			return
		}
		dst := n.UnixPath
		if dst == "" {
			dst = n.DAddr.String() + ":" + itoa(uint64(n.DPort))
		}
		what, key = "connected to "+dst+resultNote(int64(n.Result)), "net"
		attrs = map[string]string{"destination": dst}
	case event.KindSyscall:
		s := ev.Sys
		if s == nil || s.Name != "setns" {
			return
		}
		typ := hostNSType(ctx.Settings.HostNS, s.NSInode)
		if typ == "" {
			return
		}
		if _, _, ok := hookLineage(ctx.Settings, p, true); !ok {
			return
		}
		what, key = "called setns into the host "+typ+" namespace"+resultNote(s.Ret), "ns"
	default:
		return
	}
	hook, hookPID, _ := hookLineage(ctx.Settings, p, true)
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrs["hook"] = hook
	ctx.Emit(ev, Report{
		Key:         key + ":" + itoa(uint64(hookPID)),
		Explanation: who(ev) + ", run under NVIDIA hook " + baseName(hook) + ", " + what + " in " + where(ev) + ".",
		Attrs:       attrs,
	})
}
