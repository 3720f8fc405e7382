package event

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Names come from the kernel as bytes: a file name, an argument or an
// executable path may be any byte sequence but NUL. The wire formats (proto
// strings, JSON, OCSF) carry text, so every such field is rendered in a
// readable form that is valid UTF-8 by construction, and where that differs
// from the bytes the exact bytes travel beside it (a proto bytes field, a
// JSON "<name>_b64" field). Evidence never loses the real name.

// ValidText returns s itself when it is valid UTF-8, and otherwise s with
// every byte that is not part of a valid UTF-8 sequence replaced by U+FFFD
// (one replacement per byte, as encoding/json does); ok reports whether s
// was valid. A valid s costs one scan and no allocation.
func ValidText(s string) (text string, ok bool) {
	if utf8.ValidString(s) {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String(), false
}

// ValidTexts applies ValidText to every element. It returns ss itself when
// all are valid; ok is false when any was not.
func ValidTexts(ss []string) (texts []string, ok bool) {
	for i, s := range ss {
		if utf8.ValidString(s) {
			continue
		}
		out := make([]string, len(ss))
		copy(out, ss[:i])
		for j := i; j < len(ss); j++ {
			out[j], _ = ValidText(ss[j])
		}
		return out, false
	}
	return ss, true
}

// Truncation says which fields of a record were cut short on the way: by
// the kernel's capture bounds (argument bytes, path depth) or by the
// decoder's (argument count). A truncated field is part of the real value,
// never the whole of it, and rules must not read it as complete: a prefix
// for arguments and paths as passed (which end in "..."), the deepest part
// for paths the kernel walked (exe, cwd, a resolved path: "..." in front),
// so that no truncated path passes for an absolute one.
type Truncation uint8

// Truncation bits.
const (
	// TruncArgs: the argument vector was longer than the capture bound
	// (bytes or entries); the last kept argument may be partial.
	TruncArgs Truncation = 1 << iota
	// TruncEnv: the environment block was longer than the capture bound.
	TruncEnv
	// TruncExe: the executable path was deeper than the kernel walks.
	TruncExe
	// TruncCwd: the working directory was deeper than the kernel walks.
	TruncCwd
	// TruncPath: the resolved (absolute) path was cut.
	TruncPath
	// TruncRawPath: the path as passed was longer than the capture slot.
	TruncRawPath
	truncMax
)

var truncNames = [...]string{"args", "env", "exe", "cwd", "path", "raw_path"}

// Names returns the truncated fields' contract names ("args", "path" ...),
// or nil when nothing was truncated.
func (t Truncation) Names() []string {
	if t == 0 {
		return nil
	}
	var out []string
	for i, n := range truncNames {
		if t&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	if t >= truncMax {
		out = append(out, "unknown_"+strconv.Itoa(int(t&^(truncMax-1))))
	}
	return out
}

// ParseTruncation is the inverse of Names; unknown names are ignored (a
// newer sensor may mark more fields).
func ParseTruncation(names []string) Truncation {
	var t Truncation
	for _, n := range names {
		for i, k := range truncNames {
			if n == k {
				t |= 1 << i
			}
		}
	}
	return t
}

// RawStrings calls fn for every string field of e (and of its process,
// container and payload, and of a finding's evidence) that is not valid
// UTF-8, with the field's name in the JSON contract ("file.path",
// "process.args[2]", "finding.evidence[0].file.path") and its exact value.
// Encoders that have no typed place for the raw bytes (OCSF's unmapped)
// use it.
func (e *Event) RawStrings(fn func(field, raw string)) {
	e.rawStrings("", fn, 0)
}

func (e *Event) rawStrings(pfx string, fn func(field, raw string), depth int) {
	if e == nil {
		return
	}
	check := func(name, s string) {
		if !utf8.ValidString(s) {
			fn(pfx+name, s)
		}
	}
	if p := e.Process; p != nil {
		check("process.comm", p.Comm)
		check("process.exe", p.Exe)
		check("process.cwd", p.Cwd)
		// Names are built only for a field that is not valid: the common
		// case costs one scan per string and nothing else.
		for i, a := range p.Args {
			if !utf8.ValidString(a) {
				fn(pfx+"process.args["+strconv.Itoa(i)+"]", a)
			}
		}
		for i, v := range p.Env {
			if !utf8.ValidString(v.Name) {
				fn(pfx+"process.env["+strconv.Itoa(i)+"].name", v.Name)
			}
			if !utf8.ValidString(v.Value) {
				fn(pfx+"process.env["+strconv.Itoa(i)+"].value", v.Value)
			}
		}
		for i, a := range p.Ancestors {
			if !utf8.ValidString(a.Exe) {
				fn(pfx+"process.ancestors["+strconv.Itoa(i)+"].exe", a.Exe)
			}
			if !utf8.ValidString(a.Comm) {
				fn(pfx+"process.ancestors["+strconv.Itoa(i)+"].comm", a.Comm)
			}
		}
	}
	if c := e.Container; c != nil {
		check("container.id", c.ID)
		check("container.cgroup_path", c.CgroupPath)
		check("container.name", c.Name)
		check("container.pod", c.Pod)
		check("container.namespace", c.Namespace)
		check("container.image", c.Image)
	}
	if f := e.File; f != nil {
		check("file.path", f.Path)
		check("file.raw_path", f.RawPath)
	}
	if n := e.Net; n != nil {
		check("net.unix_path", n.UnixPath)
	}
	if s := e.Sys; s != nil {
		check("syscall.path", s.Path)
		check("syscall.path2", s.Path2)
		check("syscall.arg", s.Arg)
	}
	if f := e.Finding; f != nil {
		check("explanation", f.Explanation)
		if anyInvalid(f.Attrs) {
			// In key order, so the order does not vary.
			for _, k := range sortedKeys(f.Attrs) {
				check("attrs."+k, f.Attrs[k])
			}
		}
		if depth == 0 {
			for i, ev := range f.Evidence {
				if ev != nil && !ev.validUTF8(depth+1) {
					ev.rawStrings(pfx+"evidence["+strconv.Itoa(i)+"].", fn, depth+1)
				}
			}
		}
	}
}

func anyInvalid(m map[string]string) bool {
	for _, v := range m {
		if !utf8.ValidString(v) {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

// ValidUTF8 reports whether every string RawStrings walks is valid UTF-8:
// the common case, checked with one scan per string and no calls.
func (e *Event) ValidUTF8() bool {
	return e.validUTF8(0)
}

func (e *Event) validUTF8(depth int) bool {
	v := utf8.ValidString
	if p := e.Process; p != nil {
		if !v(p.Comm) || !v(p.Exe) || !v(p.Cwd) {
			return false
		}
		for _, a := range p.Args {
			if !v(a) {
				return false
			}
		}
		for _, x := range p.Env {
			if !v(x.Name) || !v(x.Value) {
				return false
			}
		}
		for _, a := range p.Ancestors {
			if !v(a.Exe) || !v(a.Comm) {
				return false
			}
		}
	}
	if c := e.Container; c != nil && (!v(c.ID) || !v(c.CgroupPath) || !v(c.Name) || !v(c.Pod) || !v(c.Namespace) || !v(c.Image)) {
		return false
	}
	if f := e.File; f != nil && (!v(f.Path) || !v(f.RawPath)) {
		return false
	}
	if n := e.Net; n != nil && !v(n.UnixPath) {
		return false
	}
	if s := e.Sys; s != nil && (!v(s.Path) || !v(s.Path2) || !v(s.Arg)) {
		return false
	}
	if f := e.Finding; f != nil {
		if !v(f.Explanation) || anyInvalid(f.Attrs) {
			return false
		}
		if depth == 0 {
			for _, ev := range f.Evidence {
				if ev != nil && !ev.validUTF8(depth+1) {
					return false
				}
			}
		}
	}
	return true
}
