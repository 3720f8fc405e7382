package detect

import (
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// capSysAdmin is the CAP_SYS_ADMIN bit of CapEff.
const capSysAdmin = 1 << 21

// cgroupMountRecent is how long a container's cgroup mount raises the
// context of a release_agent write.
const cgroupMountRecent = 5 * time.Minute

type esc001 struct{ baseRule }

func newESC001(*Settings) Rule {
	return &esc001{baseRule{Meta{
		ID:       "ESC-001",
		Title:    "cgroup release_agent / notify_on_release written from a container",
		MITRE:    []string{"T1611", "AML.T0105"},
		Severity: event.SevCritical,
		Description: "A container process opened a cgroup v1 release_agent or notify_on_release file for writing " +
			"(recognised by the file the kernel opened, whatever path reached it; attempts that fail count by " +
			"name), or renamed a file onto release_agent. The kernel runs release_agent as " +
			"root in the host's namespaces when the cgroup empties: this is the classic privileged-container " +
			"escape (CVE-2022-0492). Context notes CAP_SYS_ADMIN and a cgroup mount by the container in the last " +
			"minutes. Core: open events; rename events where the capture reports them.",
		Knobs: []string{"container_image_allowlist", "rules.ESC-001.allow_cgroup"},
		Kinds: kinds(event.KindOpen, event.KindSyscall),
	}}}
}

func isReleaseAgent(b string) bool { return b == "release_agent" || b == "notify_on_release" }

func (r *esc001) Eval(ctx *Context, ev *event.Event) {
	if !inContainer(ev) {
		return
	}
	var path string
	var res int64
	switch ev.Kind {
	case event.KindOpen:
		f := ev.File
		if f == nil || !f.IsWrite() {
			return
		}
		switch {
		case f.Match.Has(event.MatchKnob):
			// The kernel named the cgroup v1 file it opened, whatever path
			// (a symlink, another cgroup mount) reached it.
			if f.Knob != event.KnobReleaseAgent && f.Knob != event.KnobNotifyOnRelease {
				return
			}
			path = f.Path
		case isReleaseAgent(baseName(f.Path)):
			path = f.Path
		case isReleaseAgent(baseName(f.RawPath)):
			path = f.RawPath
		default:
			return
		}
		res = int64(f.Result)
	case event.KindSyscall:
		s := ev.Sys
		if s == nil || (s.Name != "rename" && s.Name != "link" && s.Name != "symlink") || baseName(s.Path2) != "release_agent" {
			return
		}
		path, res = s.Path2, s.Ret
	default:
		return
	}
	attrs := map[string]string{"path": path}
	if ev.Process != nil && ev.Process.CapEff&capSysAdmin != 0 {
		attrs["cap_sys_admin"] = "true"
	}
	if cs := ctx.State.Container(ev.Container.ID); cs != nil && !cs.CgroupMount.IsZero() && ctx.Now.Sub(cs.CgroupMount) < cgroupMountRecent {
		attrs["cgroup_mounted"] = cs.CgroupMount.UTC().Format(time.RFC3339)
	}
	verb := "opened " + path + " for writing"
	if ev.Kind == event.KindSyscall {
		verb = "renamed a file onto " + path
	}
	ctx.Emit(ev, Report{
		Key:         path,
		Explanation: who(ev) + " " + verb + resultNote(res) + " from " + where(ev) + ".",
		Attrs:       attrs,
	})
}
