package detect

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Helpers for matching paths, names and argv without allocating. They run
// on the event path for every candidate event.

// baseName returns the last element of p ("" for "" or a trailing "/").
func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// underDir reports whether p is dir or lies below it.
func underDir(p, dir string) bool {
	if !strings.HasPrefix(p, dir) {
		return false
	}
	if len(p) == len(dir) || strings.HasSuffix(dir, "/") {
		return true
	}
	return p[len(dir)] == '/'
}

// underAny reports whether p lies under one of dirs.
func underAny(p string, dirs []string) bool {
	for _, d := range dirs {
		if underDir(p, d) {
			return true
		}
	}
	return false
}

// in reports whether s is one of set.
func in(s string, set ...string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// isShell reports whether the basename b is a shell (a switch: the
// compiler turns it into a length-and-binary search).
func isShell(b string) bool {
	switch b {
	case "sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox":
		return true
	}
	return false
}

// isInterpreter reports whether the basename b is a scripting interpreter.
func isInterpreter(b string) bool {
	for _, p := range []string{"python", "perl", "ruby", "php", "node", "lua"} {
		if strings.HasPrefix(b, p) {
			rest := b[len(p):]
			ok := true
			for i := 0; i < len(rest); i++ {
				if (rest[i] < '0' || rest[i] > '9') && rest[i] != '.' {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// exeBase returns the basename of the process's exe, or of argv[0] when the
// exe is unknown.
func exeBase(p *event.Process) string {
	if p == nil {
		return ""
	}
	if p.Exe != "" {
		return baseName(p.Exe)
	}
	if len(p.Args) > 0 {
		return baseName(p.Args[0])
	}
	return p.Comm
}

// argv0Base returns the basename of argv[0] (the name a multi-call binary
// such as kmod or busybox was invoked as), or exeBase.
func argv0Base(p *event.Process) string {
	if len(p.Args) > 0 && p.Args[0] != "" {
		return baseName(p.Args[0])
	}
	return exeBase(p)
}

// hasArg reports whether one of args (after argv[0]) equals one of want.
func hasArg(args []string, want ...string) bool {
	for i := 1; i < len(args); i++ {
		if in(args[i], want...) {
			return true
		}
	}
	return false
}

// argContains reports whether some argument (after argv[0]) contains sub.
func argContains(args []string, sub string) bool {
	for i := 1; i < len(args); i++ {
		if strings.Contains(args[i], sub) {
			return true
		}
	}
	return false
}

// argValue returns the value of a "-x v", "-xv", "--long v" or "--long=v"
// option, where short and long may be empty.
func argValue(args []string, short, long string) (string, bool) {
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return "", false
		}
		if (short != "" && a == short) || (long != "" && a == long) {
			if i+1 < len(args) {
				return args[i+1], true
			}
			return "", false
		}
		if long != "" && strings.HasPrefix(a, long) && len(a) > len(long) && a[len(long)] == '=' {
			return a[len(long)+1:], true
		}
		if short != "" && len(short) == 2 && strings.HasPrefix(a, short) && len(a) > 2 && !strings.HasPrefix(a, "--") {
			return a[2:], true
		}
	}
	return "", false
}

// envValue returns the value of the captured environment variable name.
func envValue(p *event.Process, name string) (string, bool) {
	if p == nil {
		return "", false
	}
	for i := range p.Env {
		if p.Env[i].Name == name {
			return p.Env[i].Value, true
		}
	}
	return "", false
}

// containsAfter reports whether s contains a and, after it, b.
func containsAfter(s, a, b string) bool {
	i := strings.Index(s, a)
	return i >= 0 && strings.Contains(s[i+len(a):], b)
}

// procPath splits "/proc/<pid|self|thread-self>/<rest>" into the pid part
// and the rest; ok is false for other paths. A "task/<tid>/" step after the
// pid is skipped.
func procPath(p string) (pid, rest string, ok bool) {
	if !strings.HasPrefix(p, "/proc/") {
		return "", "", false
	}
	s := p[len("/proc/"):]
	i := strings.IndexByte(s, '/')
	if i <= 0 {
		return "", "", false
	}
	pid, rest = s[:i], s[i+1:]
	if pid != "self" && pid != "thread-self" && !isDigits(pid) {
		return "", "", false
	}
	if strings.HasPrefix(rest, "task/") {
		r := rest[len("task/"):]
		j := strings.IndexByte(r, '/')
		if j <= 0 || !isDigits(r[:j]) {
			return "", "", false
		}
		rest = r[j+1:]
	}
	return pid, rest, true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// atoiPID parses a decimal pid; 0 when s is not one.
func atoiPID(s string) uint32 {
	if !isDigits(s) || len(s) > 10 {
		return 0
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		n = n*10 + uint64(s[i]-'0')
	}
	if n > 1<<31 {
		return 0
	}
	return uint32(n)
}

// isSharedObject reports whether the basename b matches `\.so(\.\d+)*$`.
func isSharedObject(b string) bool {
	i := strings.Index(b, ".so")
	for i >= 0 {
		rest := b[i+3:]
		ok := true
		for rest != "" {
			if rest[0] != '.' {
				ok = false
				break
			}
			j := 1
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			if j == 1 {
				ok = false
				break
			}
			rest = rest[j:]
		}
		if ok && i > 0 {
			return true
		}
		n := strings.Index(b[i+3:], ".so")
		if n < 0 {
			return false
		}
		i += 3 + n
	}
	return false
}

// sevMax returns the higher of two severities.
func sevMax(a, b event.Severity) event.Severity {
	if a > b {
		return a
	}
	return b
}

// where names the actor's place for explanations: "container <id>" or "the host".
func where(ev *event.Event) string {
	if ev.Container == nil {
		return "the host"
	}
	name := ev.Container.ID
	if ev.Container.Pod != "" && ev.Container.Pod != event.Unknown {
		return "container " + name + " (pod " + ev.Container.Namespace + "/" + ev.Container.Pod + ")"
	}
	return "container " + name
}

// who names the actor for explanations: "<exe basename> (pid N)".
func who(ev *event.Event) string {
	p := ev.Process
	if p == nil {
		return "an unknown process"
	}
	return exeBase(p) + " (pid " + itoa(uint64(p.PID)) + ")"
}

func itoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}

func itoaSigned(n int64) string {
	if n < 0 {
		return "-" + itoa(uint64(-n))
	}
	return itoa(uint64(n))
}

// resultNote describes a failed syscall result for explanations.
func resultNote(res int64) string {
	if res >= 0 {
		return ""
	}
	return " (failed, errno " + itoa(uint64(-res)) + ")"
}

// cmdline joins argv for explanations and allowlist regexes (allocates;
// only on the finding path).
func cmdline(p *event.Process) string {
	if p == nil {
		return ""
	}
	if len(p.Args) == 0 {
		return exeBase(p)
	}
	return strings.Join(p.Args, " ")
}

// baseCmdline is "<name> <args[1:]...>" with the name of actorName, the
// form the child allowlists and model_updaters are written against.
func baseCmdline(p *event.Process) string {
	b := actorName(p)
	if len(p.Args) <= 1 {
		return b
	}
	return b + " " + strings.Join(p.Args[1:], " ")
}
