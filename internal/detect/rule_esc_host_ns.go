package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// errno values used to read failed attempts.
const (
	errEPERM  = 1
	errEACCES = 13
)

type esc004 struct{ baseRule }

func newESC004(*Settings) Rule {
	return &esc004{baseRule{Meta{
		ID:       "ESC-004",
		Title:    "Container process enters host namespaces",
		MITRE:    []string{"T1611"},
		Severity: event.SevCritical,
		Description: "A container process tries to join the host's namespaces: (1) exec of nsenter targeting pid 1, " +
			"/proc/1/ns/* or a process outside its container; (2) an open of /proc/<pid|self|thread-self>/[task/<tid>/]ns/<type> whose target is a " +
			"host namespace (the resolved nsfs inode equals the initial namespace; failed opens of pid 1 or 2 from " +
			"a host-PID-namespace process, or failing with EACCES/EPERM, count as attempts because the target " +
			"cannot be resolved); (3) a setns syscall onto a host namespace inode, or (high, target unresolved) " +
			"setns on a pidfd into the mount, PID, network, user or cgroup namespace of another process; (4) an exec in the container's " +
			"cgroup in the host mount or PID namespace while the container's first process was not. Host " +
			"processes joining a container (runc exec, probes) are the opposite direction and do not match. " +
			"Host namespaces come from /proc/2/ns/* (Options.HostNS).",
		Knobs: []string{"container_image_allowlist"},
		Kinds: kinds(event.KindExec, event.KindOpen, event.KindSyscall),
	}}}
}

// nsInode returns the inode of namespace type typ (an /proc/<pid>/ns/ name)
// in ns, or 0 for unknown types.
func nsInode(ns event.Namespaces, typ string) uint32 {
	switch typ {
	case "mnt":
		return ns.Mnt
	case "pid", "pid_for_children":
		return ns.PID
	case "net":
		return ns.Net
	case "user":
		return ns.User
	case "uts":
		return ns.UTS
	case "ipc":
		return ns.IPC
	case "cgroup":
		return ns.Cgroup
	}
	return 0
}

// hostNSType returns the namespace type whose host inode is ino, or "".
func hostNSType(host event.Namespaces, ino uint32) string {
	if ino == 0 {
		return ""
	}
	for _, t := range []string{"mnt", "pid", "net", "user", "uts", "ipc", "cgroup"} {
		if nsInode(host, t) == ino {
			return t
		}
	}
	return ""
}

// parseNSLink parses an nsfs d_path such as "net:[4026531840]".
func parseNSLink(p string) (string, uint32, bool) {
	i := strings.IndexByte(p, ':')
	if i <= 0 || len(p) < i+4 || p[i+1] != '[' || p[len(p)-1] != ']' {
		return "", 0, false
	}
	s := p[i+2 : len(p)-1]
	if !isDigits(s) || len(s) > 10 {
		return "", 0, false
	}
	var v uint64
	for j := 0; j < len(s); j++ {
		v = v*10 + uint64(s[j]-'0')
	}
	if v == 0 || v > 1<<32-1 {
		return "", 0, false
	}
	return p[:i], uint32(v), true
}

// nsenterTargetsHost reports whether nsenter's argv targets pid 1 or names
// /proc/1/ns/* files.
func nsenterTargetsHost(args []string) (string, bool) {
	if v, ok := argValue(args, "-t", "--target"); ok && v == "1" {
		return "--target 1", true
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if j := strings.Index(a, "=/proc/1/ns/"); j > 0 && strings.HasPrefix(a, "--") {
			return a, true
		}
	}
	return "", false
}

func (r *esc004) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if !inContainer(ev) || p == nil {
		return
	}
	host := ctx.Settings.HostNS
	switch ev.Kind {
	case event.KindExec:
		if baseName(p.Exe) == "nsenter" || argv0Base(p) == "nsenter" {
			what, ok := nsenterTargetsHost(p.Args)
			if !ok {
				// A hostPID container sees host pids: a target outside the
				// container (from the process table, else the kernel) has
				// other namespaces than its own.
				if v, found := argValue(p.Args, "-t", "--target"); found {
					if t, mapped := ctx.State.HostPID(p, atoiPID(v), ctx.Now); mapped {
						if out, other, decided := ctx.State.Outside(p, ev.Container, t, ctx.Now); decided && out {
							what, ok = "--target "+v+" (a process of "+other+")", true
						}
					}
				}
			}
			if ok {
				ctx.Emit(ev, Report{
					Key:         "pid:" + itoa(uint64(p.PID)),
					Explanation: who(ev) + " ran nsenter " + what + " to enter the host's namespaces from " + where(ev) + ".",
					Attrs:       map[string]string{"condition": "nsenter", "cmdline": cmdline(p)},
				})
				return
			}
		}
		cs := ctx.State.Container(ev.Container.ID)
		if cs == nil || cs.Entrypoint == p.PID || cs.Execs <= 1 {
			return
		}
		var typ string
		switch {
		case host.Mnt != 0 && p.NS.Mnt == host.Mnt && cs.BaseNS.Mnt != 0 && cs.BaseNS.Mnt != host.Mnt:
			typ = "mnt"
		case host.PID != 0 && p.NS.PID == host.PID && cs.BaseNS.PID != 0 && cs.BaseNS.PID != host.PID:
			typ = "pid"
		default:
			return
		}
		ctx.Emit(ev, Report{
			Key: "pid:" + itoa(uint64(p.PID)),
			Explanation: who(ev) + " runs in the host " + typ + " namespace inside the cgroup of " + where(ev) +
				", whose first process did not.",
			Attrs: map[string]string{"condition": "exec_in_host_ns", "ns_type": typ},
		})
	case event.KindOpen:
		f := ev.File
		if f == nil {
			return
		}
		t, ok := nsOpenTarget(host, p, f)
		if !ok || !t.host || nsInode(p.NS, t.typ) == nsInode(host, t.typ) {
			return // not a host namespace, or the actor is already in it
		}
		ctx.Emit(ev, Report{
			Key: "pid:" + itoa(uint64(p.PID)),
			Explanation: who(ev) + " opened host " + t.typ + " namespace file " + t.path + resultNote(int64(f.Result)) +
				" from " + where(ev) + ".",
			Attrs: map[string]string{"condition": "host_nsfs_open", "path": t.path, "ns_type": t.typ, "target": t.how},
		})
	case event.KindSyscall:
		s := ev.Sys
		if s == nil || s.Name != "setns" {
			return
		}
		if s.NSInode == 0 {
			// Not an nsfs fd: setns(pidfd, CLONE_NEW*) joins the namespaces of
			// the process behind a pidfd (nsenter -t since util-linux 2.38).
			// The record carries no namespace inode for it, so the target is
			// unknown: reported at high when a container process joins the
			// mount, PID, network or user namespace of another process.
			kinds := setnsKinds(s.Flags)
			if !inContainer(ev) || kinds == "" || s.Ret < 0 && s.Ret != -errEPERM && s.Ret != -errEACCES {
				return
			}
			ctx.Emit(ev, Report{
				Key:      "pid:" + itoa(uint64(p.PID)),
				Severity: event.SevHigh,
				Explanation: who(ev) + " called setns on a pidfd (fd " + itoaSigned(int64(s.Fd)) + ") to join the " + kinds +
					" namespaces of another process" + resultNote(s.Ret) + " from " + where(ev) +
					"; the target is not resolved (possibly the host).",
				Attrs: map[string]string{"condition": "setns_pidfd", "ns_types": kinds},
			})
			return
		}
		typ := hostNSType(host, s.NSInode)
		if typ == "" || nsInode(p.NS, typ) == s.NSInode {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "pid:" + itoa(uint64(p.PID)),
			Explanation: who(ev) + " called setns into the host " + typ + " namespace" + resultNote(s.Ret) + " from " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "setns", "ns_type": typ, "ns_inode": itoa(uint64(s.NSInode))},
		})
	}
}

// setnsKinds names the escape-relevant namespace types in setns flags
// (CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUSER, CLONE_NEWCGROUP),
// comma-separated, or "".
func setnsKinds(flags uint64) string {
	var out []string
	for _, k := range []struct {
		bit  uint64
		name string
	}{{0x00020000, "mnt"}, {0x20000000, "pid"}, {0x40000000, "net"}, {0x10000000, "user"}, {0x02000000, "cgroup"}} {
		if flags&k.bit != 0 {
			out = append(out, k.name)
		}
	}
	return strings.Join(out, ",")
}

// nsTarget describes an open of a namespace file.
type nsTarget struct {
	path, typ string
	host      bool   // the target is the host namespace of typ
	how       string // "resolved" or "inferred"
}

// nsOpenTarget inspects an open of /proc/<pid|self|thread-self>/[task/<tid>/]ns/<type>
// (raw or resolved path). The target is the host namespace when the
// resolved nsfs inode equals HOST_NS[type]; when the open failed or was not
// resolved, an open of pid 1 or 2 counts as host when the actor sees host
// pids, and a denied (EACCES/EPERM) open of pid 1 counts too, since a
// container's own init is readable by its root.
//
// A successful open the kernel matched as a namespace file (a namespace the
// caller is not in, reached by any name: a symlink, a bind mount, a
// hostPID view) is judged by the inode it opened alone.
func nsOpenTarget(host event.Namespaces, p *event.Process, f *event.File) (nsTarget, bool) {
	if f.Match.Has(event.MatchNamespace) {
		typ, ino, ok := parseNSLink(f.Path)
		if !ok {
			return nsTarget{}, false
		}
		return nsTarget{path: f.Path, typ: typ, how: "resolved", host: ino != 0 && ino == nsInode(host, typ)}, true
	}
	path := f.RawPath
	pid, rest, ok := procPath(path)
	if !ok {
		path = f.Path
		if pid, rest, ok = procPath(path); !ok {
			return nsTarget{}, false
		}
	}
	if !strings.HasPrefix(rest, "ns/") {
		return nsTarget{}, false
	}
	t := nsTarget{path: path, typ: rest[len("ns/"):], how: "resolved"}
	hostIno := nsInode(host, t.typ)
	if hostIno == 0 {
		return t, true
	}
	var target uint32
	if typ, ino, ok := parseNSLink(f.Path); ok && strings.HasPrefix(t.typ, typ) {
		target = ino
	} else if f.Result >= 0 && f.Inode != 0 && f.Inode < 1<<32 {
		target = uint32(f.Inode)
	}
	if target == 0 {
		n := atoiPID(pid)
		denied := f.Result == -errEACCES || f.Result == -errEPERM
		hostPIDView := host.PID != 0 && p.NS.PID == host.PID
		if (n == 1 || n == 2) && (hostPIDView || (denied && n == 1)) {
			target, t.how = hostIno, "inferred"
		}
	}
	t.host = target == hostIno
	return t, true
}
