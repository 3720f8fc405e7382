package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// runtimeSockets are sun_path suffixes of container-runtime and kubelet APIs.
var runtimeSockets = []string{
	"docker.sock", "containerd.sock", "containerd.sock.ttrpc", "crio.sock", "podman.sock", "cri-dockerd.sock",
	"dockershim.sock", "kubelet/pod-resources/kubelet.sock",
}

// isRuntimeClient reports whether b is a runtime or cluster client of
// ESC-006 condition 3 (docker, ctr, crictl, nerdctl, podman, kubectl, runc).
func isRuntimeClient(b string) bool {
	switch b {
	case "docker", "ctr", "crictl", "nerdctl", "podman", "kubectl", "runc":
		return true
	}
	return false
}

// runtimeAPIPorts are kubelet and Docker TCP API ports.
var runtimeAPIPorts = []uint16{10250, 10255, 2375, 2376}

// runtimeSocket classifies a unix socket path: "" when it is no runtime API,
// with an info severity for the nvidia-persistenced socket.
func runtimeSocket(p string) (string, event.Severity) {
	if strings.HasPrefix(p, "@/containerd-shim/") {
		return "containerd-shim", 0
	}
	for _, s := range runtimeSockets {
		if strings.HasSuffix(p, s) {
			return s, 0
		}
	}
	if strings.HasSuffix(p, "nvidia-persistenced/socket") {
		return "nvidia-persistenced", event.SevInfo
	}
	return "", 0
}

// RuntimeSockets knows the container runtime's API sockets on the node by
// the identity of their socket files, which every other name of the socket
// (symlink, hard link, bind mount under another path) shares.
type RuntimeSockets interface {
	// RuntimeSocket returns the host path of the runtime API socket whose
	// file is (dev, ino), or "" when it is none of them. known is false
	// when no runtime socket was found on the node at all, so that a miss
	// says nothing.
	RuntimeSocket(dev, ino uint64) (path string, known bool)
}

type esc006 struct{ baseRule }

func newESC006(*Settings) Rule {
	return &esc006{baseRule{Meta{
		ID:       "ESC-006",
		Title:    "Container-runtime / kubelet API socket used from a container",
		MITRE:    []string{"T1609", "T1610", "T1552.007", "T1611"},
		Severity: event.SevCritical,
		Description: "A container process (1) connects to a runtime or kubelet unix socket: the socket file it " +
			"reached is one of the node's runtime sockets (the CRI socket, the well-known docker, containerd, " +
			"CRI-O and podman sockets, runtime_sockets_extra), whatever name, link or bind mount led there; " +
			"where the socket's file is unknown (a refused connect, an abstract socket, no runtime socket found on " +
			"the node), the name the server bound or the caller used decides (docker.sock, containerd.sock[.ttrpc], " +
			"crio.sock, podman.sock, cri-dockerd.sock, dockershim.sock, kubelet pod-resources, abstract " +
			"@/containerd-shim/; nvidia-persistenced at info); a socket named so that is not the runtime's is " +
			"low; (2) opens one for writing, " +
			"(3) runs a runtime client (docker, ctr, crictl, nerdctl, podman, kubectl, runc) or passes " +
			"--unix-socket/unix:// with a runtime socket name (low: the connect is judged on the socket), or (4) connects to a node address on 10250/10255 " +
			"(kubelet) or 2375/2376 (Docker TCP). Whoever drives the runtime API owns the node.",
		Knobs: []string{"container_image_allowlist", "rules.ESC-006.allow_cgroup", "runtime_sockets_extra"},
		Kinds: kinds(event.KindConnect, event.KindOpen, event.KindExec),
	}}}
}

func (r *esc006) Eval(ctx *Context, ev *event.Event) {
	if !inContainer(ev) || ev.Process == nil {
		return
	}
	switch ev.Kind {
	case event.KindConnect:
		n := ev.Net
		if n == nil {
			return
		}
		if n.Protocol == "unix" {
			r.unixConnect(ctx, ev, n)
			return
		}
		if !n.DAddr.IsValid() {
			return
		}
		port := n.DPort
		isAPIPort := false
		for _, p := range runtimeAPIPorts {
			if port == p {
				isAPIPort = true
			}
		}
		if !isAPIPort {
			return
		}
		hostNet := ctx.Settings.HostNS.Net != 0 && ev.Process.NS.Net == ctx.Settings.HostNS.Net
		if n.Class != event.ClassNode && !(n.Class == event.ClassLoopback && hostNet) {
			return
		}
		dst := n.DAddr.String() + ":" + itoa(uint64(port))
		ctx.Emit(ev, Report{
			Key:         "tcp:" + dst,
			Explanation: who(ev) + " connected to the node's runtime/kubelet API port " + dst + resultNote(int64(n.Result)) + " from " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "api_port", "destination": dst},
		})
	case event.KindOpen:
		f := ev.File
		if f == nil || !f.IsWrite() {
			return
		}
		name, sev := runtimeSocket(f.Path)
		if name == "" {
			return
		}
		ctx.Emit(ev, Report{
			Key:         "sock:" + f.Path,
			Severity:    sev,
			Explanation: who(ev) + " opened runtime socket " + f.Path + " for writing from " + where(ev) + ".",
			Attrs:       map[string]string{"condition": "socket_open", "socket": f.Path, "api": name},
		})
	case event.KindExec:
		p := ev.Process
		b := exeBase(p)
		a0 := argv0Base(p)
		for _, c := range [2]string{b, a0} {
			if !isRuntimeClient(c) || c == "runc" && hasArg(p.Args, "init") {
				continue
			}
			ctx.Emit(ev, Report{
				Key:         "exec:" + c,
				Explanation: who(ev) + " ran runtime client " + c + " (" + cmdline(p) + ") from " + where(ev) + ".",
				Attrs:       map[string]string{"condition": "client_exec", "client": c},
			})
			return
		}
		for i := 1; i < len(p.Args); i++ {
			a := p.Args[i]
			var sock string
			switch {
			case a == "--unix-socket" && i+1 < len(p.Args):
				sock = p.Args[i+1]
			case strings.HasPrefix(a, "--unix-socket="):
				sock = a[len("--unix-socket="):]
			case strings.Contains(a, "unix://"):
				sock = a[strings.Index(a, "unix://")+len("unix://"):]
			default:
				continue
			}
			if name, _ := runtimeSocket(sock); name != "" {
				// A name on the command line proves nothing about the
				// socket; the connect that follows is judged on its file.
				ctx.Emit(ev, Report{
					Key:         "exec-sock:" + sock,
					Severity:    event.SevLow,
					Explanation: who(ev) + " was started with runtime socket " + sock + " (" + cmdline(p) + ") from " + where(ev) + ".",
					Attrs:       map[string]string{"condition": "socket_arg", "socket": sock},
				})
				return
			}
		}
	}
}

// unixConnect judges an AF_UNIX connect on the socket file the caller
// reached (the kernel's peer), not on the name it passed: a symlink, a hard
// link or a bind mount of the runtime's socket under another name is the
// runtime all the same, and a container's own socket named docker.sock is
// not. Names decide only where the file is unknown.
func (r *esc006) unixConnect(ctx *Context, ev *event.Event, n *event.Net) {
	var host string
	known := false
	if n.PeerIno != 0 && ctx.Settings.Sockets != nil {
		host, known = ctx.Settings.Sockets.RuntimeSocket(n.PeerDev, n.PeerIno)
	}
	// Without the runtime's file, names: the server's bound name is its own
	// choice, the caller's is evidence.
	sock, name, sev := host, "", event.Severity(0)
	if host != "" {
		if name, sev = runtimeSocket(host); name == "" {
			name = host
		}
	} else {
		sock = n.PeerPath
		if name, sev = runtimeSocket(sock); name == "" {
			sock = n.UnixPath
			name, sev = runtimeSocket(sock)
		}
		if name == "" {
			return
		}
	}
	attrs := map[string]string{"condition": "unix_connect", "socket": n.UnixPath, "api": name}
	if n.PeerPath != "" {
		attrs["peer_bound"] = n.PeerPath
	}
	peerID := ""
	if n.PeerIno != 0 {
		major, minor := devNumbers(n.PeerDev) // as ls and stat print them
		peerID = "device " + itoa(major) + ":" + itoa(minor) + " inode " + itoa(n.PeerIno)
		attrs["peer_file"] = peerID
	}
	switch {
	case host != "":
		attrs["runtime_socket"] = host
		via := ""
		if n.UnixPath != host {
			via = " through " + n.UnixPath
		}
		ctx.Emit(ev, Report{
			Key:         "sock:" + host,
			Severity:    sev,
			Explanation: who(ev) + " connected to runtime socket " + host + via + " (the same socket file, " + peerID + ") from " + where(ev) + ".",
			Attrs:       attrs,
		})
	case n.PeerIno != 0 && known:
		// The socket file is known and it is none of the runtime's: a name
		// proves nothing.
		if sev == 0 || sev > event.SevLow {
			sev = event.SevLow
		}
		ctx.Emit(ev, Report{
			Key:      "sock:" + sock,
			Severity: sev,
			Explanation: who(ev) + " connected to " + n.UnixPath + ", named like runtime socket " + name +
				", but its socket file (" + peerID + ") is none of the node's runtime sockets, from " + where(ev) + ".",
			Attrs: attrs,
		})
	default:
		ctx.Emit(ev, Report{
			Key:         "sock:" + sock,
			Severity:    sev,
			Explanation: who(ev) + " connected to runtime socket " + sock + resultNote(int64(n.Result)) + " from " + where(ev) + ".",
			Attrs:       attrs,
		})
	}
}
