package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// ANSI colours for the human format. Empty strings when colour is off.
type palette struct {
	reset, dim, bold, red, green, yellow, blue, magenta, cyan string
}

var colours = palette{
	reset: "\x1b[0m", dim: "\x1b[2m", bold: "\x1b[1m", red: "\x1b[31m", green: "\x1b[32m",
	yellow: "\x1b[33m", blue: "\x1b[34m", magenta: "\x1b[35m", cyan: "\x1b[36m",
}

// humanRenderer prints one compact line per event, in the spirit of
// `tetra getevents -o compact`: time, kind, actor, what, where.
//
// Every string that comes from the observed system (paths, exe, comm, argv,
// container and pod names, explanations, NVML names) passes through
// event.EscapeText: a file name can hold a newline and an ANSI sequence, and must
// not forge a line or drive the operator's terminal.
type humanRenderer struct {
	w io.Writer
	c palette
}

func newHumanRenderer(w io.Writer, colour bool) *humanRenderer {
	r := &humanRenderer{w: w}
	if colour {
		r.c = colours
	}
	return r
}

func (r *humanRenderer) Render(ev *event.Event) error {
	var b strings.Builder
	c := r.c
	b.WriteString(c.dim)
	b.WriteString(ev.Time.Local().Format("15:04:05.000"))
	b.WriteString(c.reset)
	b.WriteByte(' ')

	label, colour := r.label(ev)
	fmt.Fprintf(&b, "%s%-8s%s ", colour, label, c.reset)

	if ev.Kind != event.KindStatus && ev.Kind != event.KindLost {
		b.WriteString(actor(ev.Process))
		b.WriteByte(' ')
	}
	b.WriteString(r.detail(ev))
	b.WriteByte(' ')
	b.WriteString(c.dim)
	b.WriteString(where(ev.Container))
	b.WriteString(c.reset)
	b.WriteByte('\n')
	_, err := io.WriteString(r.w, b.String())
	return err
}

func (r *humanRenderer) label(ev *event.Event) (string, string) {
	c := r.c
	switch ev.Kind {
	case event.KindFinding:
		switch ev.Finding.Severity {
		case event.SevCritical:
			return "CRITICAL", c.bold + c.red
		case event.SevHigh:
			return "HIGH", c.red
		case event.SevMedium:
			return "MEDIUM", c.yellow
		case event.SevLow:
			return "LOW", c.cyan
		}
		return "INFO", c.dim
	case event.KindExec:
		return "exec", c.green
	case event.KindFork, event.KindExit:
		return ev.Kind.String(), c.dim
	case event.KindOpen:
		return "open", c.blue
	case event.KindConnect, event.KindEgress, event.KindAccept:
		return ev.Kind.String(), c.magenta
	case event.KindGPU:
		return "gpu", c.cyan
	case event.KindSyscall:
		if ev.Sys != nil {
			return event.EscapeText(ev.Sys.Name), c.yellow
		}
	case event.KindLost:
		return "LOST", c.bold + c.yellow
	case event.KindStatus:
		return "status", c.dim
	}
	return ev.Kind.String(), ""
}

func actor(p *event.Process) string {
	if p == nil {
		return "?"
	}
	name := p.Comm
	if p.Exe != "" {
		name = baseName(p.Exe)
	}
	s := event.EscapeText(name) + "(" + strconv.FormatUint(uint64(p.PID), 10) + ")"
	if len(p.Ancestors) > 0 {
		a := p.Ancestors[0]
		s += "<" + event.EscapeText(baseName(a.Exe)) + "(" + strconv.FormatUint(uint64(a.PID), 10) + ")"
	}
	return s
}

func (r *humanRenderer) detail(ev *event.Event) string {
	switch ev.Kind {
	case event.KindExec:
		if ev.Process == nil {
			return ""
		}
		s := event.EscapeText(ev.Process.Exe)
		if len(ev.Process.Args) > 1 {
			s += " " + quoteArgs(ev.Process.Args[1:])
		}
		return s
	case event.KindExit:
		if ev.Exit != nil {
			if ev.Exit.Signal != 0 {
				return "signal " + strconv.Itoa(int(ev.Exit.Signal))
			}
			return "code " + strconv.Itoa(int(ev.Exit.Code))
		}
	case event.KindFork:
		if ev.Process != nil {
			return "child of " + strconv.FormatUint(uint64(ev.Process.PPID), 10)
		}
	case event.KindOpen:
		if f := ev.File; f != nil {
			s := event.EscapeText(f.Path)
			if f.RawPath != "" && f.RawPath != f.Path {
				s += " (as " + event.EscapeText(f.RawPath) + ")"
			}
			s += " " + event.OpenFlagString(f.Flags)
			if f.Result < 0 {
				s += " " + r.c.red + "= -" + errnoName(-f.Result) + r.c.reset
			} else {
				s += " = " + strconv.Itoa(int(f.Result))
			}
			return s
		}
	case event.KindConnect, event.KindEgress, event.KindAccept:
		if n := ev.Net; n != nil {
			dst := event.EscapeText(n.UnixPath)
			switch {
			case dst != "":
			case n.DAddr.IsValid():
				dst = hostPort(n.DAddr.String(), n.DPort)
			default:
				dst = "destination unknown"
			}
			proto := event.EscapeText(n.Protocol)
			if n.IPProto != 0 {
				proto += "/" + strconv.Itoa(int(n.IPProto))
			}
			s := proto + " " + dst
			if ev.Kind == event.KindAccept {
				s = proto + " from " + dst + " on :" + strconv.Itoa(int(n.SPort))
			}
			if n.Class != "" {
				s += " " + event.EscapeText(n.Class)
			}
			if ev.Kind == event.KindEgress {
				s = humanBytes(n.BytesSent) + " sent, " + s
				if n.Origin == event.OriginAccept {
					s += " (accepted)"
				}
				if n.Closed {
					s += " (closed)"
				}
			}
			if n.Via != "" {
				s += " via " + event.EscapeText(n.Via)
			}
			if n.Result < 0 {
				s += " = -" + errnoName(-n.Result)
			}
			return s
		}
	case event.KindSyscall:
		if s := ev.Sys; s != nil {
			parts := []string{}
			for _, v := range []string{s.Path, s.Path2, s.Arg} {
				if v != "" {
					parts = append(parts, event.EscapeText(v))
				}
			}
			if s.Target != 0 {
				parts = append(parts, "target "+strconv.FormatUint(uint64(s.Target), 10))
			}
			if s.Flags != 0 {
				parts = append(parts, "flags 0x"+strconv.FormatUint(s.Flags, 16))
			}
			parts = append(parts, "= "+strconv.FormatInt(s.Ret, 10))
			return strings.Join(parts, " ")
		}
	case event.KindGPU:
		if g := ev.GPU; g != nil {
			return fmt.Sprintf("%s %s #%d pid %d %s", event.EscapeText(g.Change), event.EscapeText(g.UUID), g.Index, g.PID, humanBytes(g.UsedBytes))
		}
	case event.KindFinding:
		f := ev.Finding
		// The explanation quotes command lines and paths as the rule saw
		// them: a multi-line command line stays on this line, escaped.
		s := r.c.bold + event.EscapeText(f.Rule) + r.c.reset + " " + event.EscapeText(f.Title) + ": " + event.EscapeText(f.Explanation)
		if f.Count > 1 {
			s += " (x" + strconv.Itoa(f.Count) + ")"
		}
		if len(f.MITRE) > 0 {
			s += " [" + event.EscapeText(strings.Join(f.MITRE, ",")) + "]"
		}
		return s
	case event.KindLost:
		if l := ev.Lost; l != nil {
			return strconv.FormatUint(l.Count, 10) + " events lost at " + event.EscapeText(l.Source)
		}
	case event.KindStatus:
		if s := ev.Status; s != nil {
			if s.Ready {
				return fmt.Sprintf("ready: %d programs attached. %s", len(s.Programs), event.EscapeText(s.Message))
			}
			return event.EscapeText(s.Message)
		}
	}
	return ""
}

func where(c *event.Container) string {
	if c == nil {
		return "[host]"
	}
	id := c.ID
	if len(id) > 12 && isHex(id) {
		id = id[:12]
	}
	s := "[" + event.EscapeText(id)
	if c.Pod != "" && c.Pod != event.Unknown {
		s += " " + event.EscapeText(c.Namespace) + "/" + event.EscapeText(c.Pod)
	}
	return s + "]"
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f') {
			return false
		}
	}
	return true
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 && i < len(p)-1 {
		return p[i+1:]
	}
	return p
}

func hostPort(h string, port uint16) string {
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return h + ":" + strconv.Itoa(int(port))
}

// quoteArgs renders argv shell-like: an argument that is empty, holds a
// blank, a quote or a shell metacharacter, or anything event.EscapeText would
// escape, is Go-quoted (strconv.Quote escapes the same characters in the
// same notation); the others are shown as they are.
func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \"'$`") || event.EscapeText(a) != a {
			out[i] = strconv.Quote(a)
		} else {
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

var errnoNames = map[int32]string{
	1: "EPERM", 2: "ENOENT", 9: "EBADF", 13: "EACCES", 17: "EEXIST", 20: "ENOTDIR", 21: "EISDIR",
	22: "EINVAL", 24: "EMFILE", 26: "ETXTBSY", 30: "EROFS", 36: "ENAMETOOLONG", 40: "ELOOP",
	111: "ECONNREFUSED", 110: "ETIMEDOUT", 113: "EHOSTUNREACH", 101: "ENETUNREACH", 115: "EINPROGRESS",
}

func errnoName(e int32) string {
	if n, ok := errnoNames[e]; ok {
		return n
	}
	return strconv.Itoa(int(e))
}
