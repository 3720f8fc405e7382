package detect

import (
	"strings"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// revShellMarkers are argv substrings of reverse-shell one-liners. Perl's
// IO::Socket::UNIX is removed before matching: a local unix-socket client is
// not a reverse shell (ESC-006 judges runtime sockets).
var revShellMarkers = []string{"/dev/tcp/", "/dev/udp/", "pty.spawn", "IO::Socket", "fsockopen"}

// dupAfterConnect is how soon after an outbound connect on the same
// descriptor a dup onto stdio counts as a confirmed inet socket.
const dupAfterConnect = 30 * time.Second

// stdioSocketConnect returns the non-loopback inet socket (TCP or UDP,
// connected out or accepted from a remote peer: a reverse or a bind shell)
// on descriptor fd of p or, before it forked p, of its fork parent (nc -e,
// socat and the NVIDIAScape payload connect, fork, then dup in the child).
// The dup event only says "a socket": without this, a unix socketpair (scp
// and ssh, most process supervisors) looks the same as a reverse shell.
func stdioSocketConnect(ctx *Context, p *event.Process, fd int32) (Connect, bool) {
	for _, pid := range [2]uint32{p.PID, p.ForkParent} {
		if pid == 0 {
			continue
		}
		if c, ok := ctx.State.SocketOnFd(pid, fd); ok && within(ctx.Now, c.Time, dupAfterConnect) {
			return c, true
		}
	}
	return Connect{}, false
}

// hookOrContainer scopes the shell-after-connect fallback to container
// processes and NVIDIA hooks: on hosts, test runners and agents connect and
// spawn shells all day (markers and dup2 still cover host reverse shells).
func hookOrContainer(ctx *Context, ev *event.Event) bool {
	if ev.Container != nil {
		return true
	}
	_, _, ok := hookLineage(ctx.Settings, ev.Process, true)
	return ok
}

func cidOrEmpty(c *event.Container) string {
	if c == nil {
		return ""
	}
	return c.ID
}

// within reports whether a and b are at most d apart.
func within(a, b time.Time, d time.Duration) bool {
	if a.Before(b) {
		a, b = b, a
	}
	return a.Sub(b) <= d
}

// shellAfterConnect is how soon after an outbound connect a shell started
// by the connecting process (or its child) counts as a reverse shell.
const shellAfterConnect = 5 * time.Second

type c2001 struct{ baseRule }

func newC2001(*Settings) Rule {
	return &c2001{baseRule{Meta{
		ID:       "C2-001",
		Title:    "Reverse shell / stdio over a socket",
		MITRE:    []string{"T1059.004", "AML.T0072"},
		Severity: event.SevHigh,
		Description: "A socket is duplicated onto fd 0, 1 or 2 (dup2/dup3 syscall events with the old fd a " +
			"socket; low unless the same fd, in the process or its fork parent, connected out over TCP or UDP or " +
			"was accepted from a remote peer (a bind shell) within 30 s, or " +
			"the process runs under an NVIDIA hook, since the dup event cannot tell a unix socketpair such as " +
			"scp's from a TCP socket), a connect is made on fd 0-2, or (core fallback) a shell or interpreter runs a reverse-shell " +
			"one-liner: /dev/tcp/, /dev/udp/, '-i >&', nc/ncat -e, socat exec:, mkfifo in /tmp, pty.spawn, " +
			"socket.socket with dup2/subprocess//bin/, IO::Socket (not ::UNIX), fsockopen; or, in containers and under NVIDIA hooks, a shell exec'd within 5 s " +
			"(either event order) of a TCP connect to a destination outside egress_allowlist by the same process or " +
			"its fork parent (the shape of stdio over a socket when dup2 is not captured). Critical in inference containers and under NVIDIA hooks. " +
			"A shell or interpreter whose command line was cut at the capture bound is medium: its end is not visible.",
		Knobs: []string{"inference_selector", "egress_allowlist"},
		Kinds: kinds(event.KindExec, event.KindSyscall, event.KindConnect),
	}}}
}

// hasMarkerByte is a cheap prefilter: every reverse-shell marker contains
// '/', '.', ':', '&', 'k' or " -".
func hasMarkerByte(a string) bool {
	return strings.ContainsAny(a, "/.:&k") || strings.Contains(a, " -")
}

// hasSocketCtor reports whether a calls Python's socket.socket constructor;
// socket.socketpair (a local pair, e.g. a supervisor's worker stdio) does
// not count.
func hasSocketCtor(a string) bool {
	for i := 0; ; {
		j := strings.Index(a[i:], "socket.socket")
		if j < 0 {
			return false
		}
		i += j + len("socket.socket")
		if !strings.HasPrefix(a[i:], "pair") {
			return true
		}
	}
}

// revShellArg returns the reverse-shell marker found in argv, or "".
func revShellArg(p *event.Process) string {
	b := argv0Base(p)
	if in(b, "nc", "ncat", "netcat") && hasArg(p.Args, "-e", "-c", "--exec", "--sh-exec") {
		return b + " -e"
	}
	if b == "socat" {
		for i := 1; i < len(p.Args); i++ {
			if l := strings.ToLower(p.Args[i]); strings.Contains(l, "exec:") || strings.Contains(l, "system:") {
				return "socat exec:"
			}
		}
	}
	if !isShell(b) && !isInterpreter(b) && !isShell(exeBase(p)) && !isInterpreter(exeBase(p)) {
		return ""
	}
	for i := 1; i < len(p.Args); i++ {
		a := p.Args[i]
		if len(a) < 6 || !hasMarkerByte(a) {
			continue // every marker holds one of these bytes
		}
		if strings.Contains(a, "IO::Socket::UNIX") {
			a = strings.ReplaceAll(a, "IO::Socket::UNIX", "")
		}
		for _, m := range revShellMarkers {
			if strings.Contains(a, m) {
				return m
			}
		}
		if hasSocketCtor(a) && (strings.Contains(a, "dup2") || strings.Contains(a, "subprocess") ||
			strings.Contains(a, "pty") || strings.Contains(a, "/bin/sh") || strings.Contains(a, "/bin/bash")) {
			return "socket.socket"
		}
		if containsAfter(a, "sh -i", ">&") || containsAfter(a, "sh -i", "<&") || containsAfter(a, "mkfifo", "/tmp") ||
			containsAfter(a, "nc ", " -e ") || containsAfter(a, "ncat ", " -e ") || containsAfter(a, "socat ", "exec:") {
			return a
		}
	}
	return ""
}

// cutShellLine reports whether p is a shell or an interpreter whose command
// line the capture cut: its end, where a one-liner would hide a reverse shell
// behind a pad, was not seen.
func cutShellLine(p *event.Process) bool {
	return p.Truncated&event.TruncArgs != 0 && (isShell(exeBase(p)) || isInterpreter(exeBase(p)) || isShell(argv0Base(p)))
}

func (r *c2001) Eval(ctx *Context, ev *event.Event) {
	p := ev.Process
	if p == nil {
		return
	}
	var what, key string
	unconfirmed, cut, corroborated := false, false, false
	switch ev.Kind {
	case event.KindExec:
		if m := revShellArg(p); m != "" {
			what, key = "ran a reverse-shell command line ("+cmdline(p)+")", "exec:"+itoa(uint64(p.PID))
			break
		}
		// A command line longer than the capture keeps its end out of
		// sight: a pad before /dev/tcp/ is how to hide a one-liner. A cut
		// shell or interpreter command line is suspicious, not clean.
		if cutShellLine(p) {
			what, key = "ran a command line longer than the sensor captures, whose end (where a reverse shell would be) is not visible ("+
				cmdline(p)+" ...)", "cut:"+itoa(uint64(p.PID))
			cut = true
			break
		}
		if !isShell(exeBase(p)) && !isShell(argv0Base(p)) || !hookOrContainer(ctx, ev) {
			return
		}
		// A shell started by a process that dialled out just before: the
		// stdio-over-socket shape when dup2 is not captured.
		var ci Connect
		ok := false
		for _, pid := range [2]uint32{p.PID, p.ForkParent} {
			if c, found := ctx.State.LastConnect(pid); found && pid != 0 && within(ctx.Now, c.Time, shellAfterConnect) &&
				!ctx.Settings.EgressAllowed(ev.Container, c.Dst.Addr(), c.Dst.Port()) {
				ci, ok = c, true
				break
			}
		}
		if !ok {
			return
		}
		what, key = "was started right after its parent connected to "+ci.Dst.String()+" ("+cmdline(p)+")", "shell:"+itoa(uint64(p.PID))
	case event.KindSyscall:
		s := ev.Sys
		if s == nil || !strings.HasPrefix(s.Name, "dup") || !s.FdIsSocket || s.Fd2 < 0 || s.Fd2 > 2 {
			return
		}
		what, key = "duplicated socket fd "+itoaSigned(int64(s.Fd))+" onto fd "+itoaSigned(int64(s.Fd2)), "dup:"+itoa(uint64(p.PID))
		if c, ok := stdioSocketConnect(ctx, p, s.Fd); ok {
			how := c.Protocol + ", connected to "
			if c.Accepted {
				how = c.Protocol + ", accepted from " // a bind shell
			}
			what = "duplicated socket fd " + itoaSigned(int64(s.Fd)) + " (" + how + c.Dst.String() + ") onto fd " + itoaSigned(int64(s.Fd2))
		} else {
			// No remote inet socket on that descriptor: a unix socketpair
			// (scp->ssh) or a loopback socket. Kept, at low, unless under an
			// NVIDIA hook, which never dups sockets onto stdio.
			what += " (no remote connect or accept seen on it: a unix socketpair or a loopback socket)"
			unconfirmed = true
		}
	case event.KindConnect:
		n := ev.Net
		if n == nil || n.UnixPath != "" || !n.DAddr.IsValid() {
			return
		}
		if n.Fd >= 0 && n.Fd <= 2 {
			what, key = "connected fd "+itoaSigned(int64(n.Fd))+" (stdio) to "+n.DAddr.String()+":"+itoa(uint64(n.DPort)), "conn:"+itoa(uint64(p.PID))
			break
		}
		// A shell or interpreter whose command line the capture cut dials
		// out: the hidden end of the line is doing something on the network.
		if cutShellLine(p) && !n.DAddr.IsLoopback() && n.Class != event.ClassLoopback &&
			(n.Result == 0 || n.Result == -115) && !ctx.Settings.EgressAllowed(ev.Container, n.DAddr, n.DPort) {
			what, key = "connected to "+n.DAddr.String()+":"+itoa(uint64(n.DPort))+" from a command line longer than the sensor captures ("+
				cmdline(p)+" ...)", "cutconn:"+itoa(uint64(p.PID))
			cut, corroborated = true, true
			break
		}
		// Events from different CPUs may arrive out of order: the shell a
		// child started may be seen before the connect that preceded it.
		sh, found := ctx.State.LastShell(p.PID)
		if !found || !within(ctx.Now, sh.Time, shellAfterConnect) || n.Protocol != "tcp" || n.DAddr.IsLoopback() ||
			n.Class == event.ClassLoopback || sh.Container != cidOrEmpty(ev.Container) || !hookOrContainer(ctx, ev) ||
			// a shell forked before the connecting image was exec'd belongs to
			// an earlier image (pyenv shims fork bash, then exec python)
			(!p.ExecTime.IsZero() && sh.Time.Before(p.ExecTime)) ||
			(n.Result != 0 && n.Result != -115) || ctx.Settings.EgressAllowed(ev.Container, n.DAddr, n.DPort) {
			return
		}
		what, key = "connected to "+n.DAddr.String()+":"+itoa(uint64(n.DPort))+" and its child "+baseName(sh.Exe)+
			" (pid "+itoa(uint64(sh.PID))+") is a shell started within seconds", "shell:"+itoa(uint64(sh.PID))
	default:
		return
	}
	sev := event.Severity(0)
	if _, _, hook := hookLineage(ctx.Settings, p, true); hook ||
		inContainer(ev) && (ctx.Settings.MatchesInferenceSelector(ev.Container) || ctx.State.IsGPUContainer(ev.Container)) {
		sev = event.SevCritical
	}
	if cut {
		// A long entrypoint script or python -c is common and benign: the
		// cut line alone is low; medium once the process also dials out.
		sev = event.SevLow
		if corroborated {
			sev = event.SevMedium
		}
	}
	if unconfirmed {
		sev = event.SevLow
		if _, _, hook := hookLineage(ctx.Settings, p, true); hook {
			sev = event.SevCritical
		}
	}
	ctx.Emit(ev, Report{
		Key:         key,
		Severity:    sev,
		Explanation: who(ev) + " " + what + " in " + where(ev) + ".",
		Attrs:       map[string]string{"condition": strings.SplitN(key, ":", 2)[0]},
	})
}
