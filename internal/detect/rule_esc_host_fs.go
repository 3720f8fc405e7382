package detect

import (
	"path"
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// hostMountDirs are common hostPath mount points of the host root.
var hostMountDirs = []string{"/host", "/rootfs", "/hostfs", "/node"}

// sensitiveHostPaths raise ESC-005 to critical (paths relative to the host root).
var sensitiveHostPaths = []string{
	"etc/shadow", "etc/gshadow", "etc/sudoers", "etc/kubernetes/", "var/lib/kubelet/", "root/.ssh/",
	"run/containerd/", "var/run/docker.sock", "run/docker.sock", "etc/ssh/", "var/lib/etcd/",
}

type esc005 struct{ baseRule }

func newESC005(*Settings) Rule {
	return &esc005{baseRule{Meta{
		ID:       "ESC-005",
		Title:    "Host filesystem reached through /proc/<pid>/root or cwd, or a host-root mount",
		MITRE:    []string{"T1611", "T1005"},
		Severity: event.SevHigh,
		Description: "A container process opened a file through /proc/<pid>/root/ or /proc/<pid>/cwd/ (or that directory " +
			"itself, the base of relative opens such as tar -C /proc/<pid>/root), chroot()ed into one, or " +
			"cloned its mount tree with open_tree(OPEN_TREE_CLONE) (a bind mount with the new mount API), of a " +
			"process outside its container (the pid is the actor's, mapped to the host pid; outside is decided " +
			"by the engine's process table, else by the target's cgroup and mount namespace: pid 1 seen from a " +
			"hostPID pod), or opened a file under a common host-root mount point (/host, /rootfs, /hostfs, " +
			"/node). Critical when the file is a credential, runtime socket or kubelet state, and for a chroot " +
			"into, or a tree clone of, the host's root. Needs raw_path: the resolved path of /proc/1/root/etc/shadow is /etc/shadow.",
		Knobs: []string{"container_image_allowlist", "rules.ESC-005.allow_cgroup"},
		Kinds: kinds(event.KindOpen, event.KindSyscall),
	}}}
}

// open_tree(2) flag and the dirfd meaning the cwd (linux/mount.h, fcntl.h).
const (
	openTreeClone = 1
	atFDCWD       = -100
)

// procRootTarget splits a path through /proc/<pid>/root or cwd into the pid,
// the entry ("root" or "cwd") and the path below it; ok is false for other
// paths and for the actor's own (self, thread-self).
func procRootTarget(raw string) (pid, entry, sub string, ok bool) {
	pid, rest, ok := procPath(raw)
	if !ok || pid == "self" || pid == "thread-self" {
		return "", "", "", false
	}
	switch {
	case strings.HasPrefix(rest, "root/"):
		return pid, "root", rest[len("root/"):], true
	case strings.HasPrefix(rest, "cwd/"):
		return pid, "cwd", rest[len("cwd/"):], true
	case rest == "root" || rest == "cwd":
		// The directory itself, opened as the base of later relative
		// opens (tar -C /proc/N/root, openat(dirfd), fchdir) or chroot'ed
		// into: those resolve on the target's side with no /proc prefix.
		return pid, rest, "", true
	}
	return "", "", "", false
}

func (r *esc005) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if !inContainer(ev) || p == nil {
		return
	}
	var raw string
	var res int64
	chroot, clone := false, false
	switch ev.Kind {
	case event.KindOpen:
		if ev.File == nil {
			return
		}
		raw, res = ev.File.RawPath, int64(ev.File.Result)
	case event.KindSyscall:
		s := ev.Sys
		switch {
		case s == nil:
			return
		case s.Name == "chroot":
			chroot = true
		case s.Name == "open_tree" && s.Flags&openTreeClone != 0:
			// A copy of the tree, to attach with move_mount: a bind
			// mount of the other process's root with no mount(2). A
			// path relative to a directory fd other than the cwd is
			// not resolved here (the open of that directory was an
			// event of its own).
			if !strings.HasPrefix(s.Path, "/") && s.Fd != atFDCWD {
				return
			}
			clone = true
		default:
			return
		}
		raw, res = s.Path, s.Ret
		// Any spelling: proc/1/root from /, //proc/./1/root/.
		if !strings.HasPrefix(raw, "/") && p.Cwd != "" {
			raw = p.Cwd + "/" + raw
		}
		raw = path.Clean(raw)
	default:
		return
	}
	var hostPath, via, other string
	if pid, entry, sub, ok := procRootTarget(raw); ok {
		n := atoiPID(pid)
		t, mapped := ctx.State.HostPID(p, n, ctx.Now)
		if !mapped || t == p.PID {
			return // not a live pid the actor can name, or its own
		}
		out, w, decided := ctx.State.Outside(p, ev.Container, t, ctx.Now)
		if decided && !out {
			return
		}
		other = w // "" when undecided (no ProcView and the pid never showed)
		hostPath, via = sub, "/proc/"+pid+"/"+entry
	} else if f := ev.File; f != nil {
		for _, d := range hostMountDirs {
			if underDir(f.Path, d) && len(f.Path) > len(d) {
				hostPath, via = f.Path[len(d)+1:], d
				break
			}
		}
		if via == "" {
			return
		}
	} else {
		return
	}
	sev := event.Severity(0)
	for _, s := range sensitiveHostPaths {
		if strings.HasPrefix(hostPath, s) {
			sev = event.SevCritical
			break
		}
	}
	if strings.HasSuffix(hostPath, ".sock") {
		sev = event.SevCritical
	}
	what := "opened host file /" + hostPath
	if hostPath == "" {
		what = "opened the host directory / (a base for relative opens)"
	}
	switch {
	case chroot:
		what = "chroot()ed into /" + hostPath
	case clone:
		what = "cloned the mount tree at /" + hostPath + " with open_tree(OPEN_TREE_CLONE)"
	}
	if (chroot || clone) && other == "the host" {
		sev = event.SevCritical
	}
	if other != "" {
		what += " of " + other
	}
	attrs := map[string]string{"host_path": "/" + hostPath, "via": via, "raw_path": raw}
	switch {
	case chroot:
		attrs["condition"] = "chroot"
	case clone:
		attrs["condition"] = "open_tree"
	}
	ctx.Emit(ev, Report{
		Key:         via,
		Severity:    sev,
		Explanation: who(ev) + " " + what + " through " + via + resultNote(res) + " from " + where(ev) + ".",
		Attrs:       attrs,
	})
}
