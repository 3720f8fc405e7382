package detect

import (
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
			"itself, the base of relative opens such as tar -C /proc/<pid>/root) of a process " +
			"outside its container (seen from a host PID namespace, e.g. pid 1 in a hostPID pod), or under a " +
			"common host-root mount point (/host, /rootfs, /hostfs, /node). Critical when the file is a credential, " +
			"runtime socket or kubelet state. Needs raw_path: the resolved path of /proc/1/root/etc/shadow is " +
			"/etc/shadow.",
		Knobs: []string{"container_image_allowlist", "rules.ESC-005.allow_cgroup"},
		Kinds: kinds(event.KindOpen),
	}}}
}

func (r *esc005) Eval(ctx *Context, ev *event.Event) {
	f := ev.File
	p := ev.Process
	if !inContainer(ev) || f == nil || p == nil {
		return
	}
	var hostPath, via string
	if pid, rest, ok := procPath(f.RawPath); ok && pid != "self" && pid != "thread-self" {
		var sub, entry string
		switch {
		case strings.HasPrefix(rest, "root/"):
			sub, entry = rest[len("root/"):], "root"
		case strings.HasPrefix(rest, "cwd/"):
			sub, entry = rest[len("cwd/"):], "cwd"
		case rest == "root" || rest == "cwd":
			// The directory itself, opened as the base of later relative
			// opens (tar -C /proc/N/root, openat(dirfd), fchdir): those
			// resolve on the host and carry no /proc prefix.
			entry = rest
		default:
			return
		}
		host := ctx.Settings.HostNS
		if host.PID != 0 && p.NS.PID != 0 && p.NS.PID != host.PID {
			return // pid is local to the container's own PID namespace
		}
		n := atoiPID(pid)
		if n == p.PID {
			return
		}
		if cid, known := ctx.State.ProcessContainer(n); known && cid == ev.Container.ID {
			return
		}
		hostPath, via = sub, "/proc/"+pid+"/"+entry
	} else {
		for _, d := range hostMountDirs {
			if underDir(f.Path, d) && len(f.Path) > len(d) {
				hostPath, via = f.Path[len(d)+1:], d
				break
			}
		}
		if via == "" {
			return
		}
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
	what := "host file /" + hostPath
	if hostPath == "" {
		what = "the host directory / (a base for relative opens)"
	}
	ctx.Emit(ev, Report{
		Key:         via,
		Severity:    sev,
		Explanation: who(ev) + " opened " + what + " through " + via + resultNote(int64(f.Result)) + " from " + where(ev) + ".",
		Attrs:       map[string]string{"host_path": "/" + hostPath, "via": via, "raw_path": f.RawPath},
	})
}
