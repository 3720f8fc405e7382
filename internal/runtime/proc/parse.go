// Package proc reads processes from /proc and keeps the sensor's process
// table: who each process is (exe, args, uid, start time), who forked it,
// and its lineage up to the root; and answers what the event stream cannot
// at the moment a rule asks: which files a process holds (descriptors and
// mappings), which host pid a namespace-relative pid is, and which cgroup
// and namespaces a live process is in.
//
// The parsers (ParseStat, ParseStatus, ParseCgroup, ParseMountinfo,
// ParseMaps) are pure
// functions over the bytes of the /proc files: they never panic on hostile or
// truncated input and return an error naming the problem.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Stat is what the sensor uses from /proc/<pid>/stat.
type Stat struct {
	PID   uint32
	Comm  string
	State byte
	PPID  uint32
	// Flags are the kernel's PF_* flags.
	Flags uint64
	// StartTicks is the start time in clock ticks since boot.
	StartTicks uint64
}

// PFKthread is the PF_KTHREAD flag of kernel threads.
const PFKthread = 0x00200000

// ErrMalformed is wrapped by every parser error.
var ErrMalformed = errors.New("malformed")

// ParseStat parses /proc/<pid>/stat. The comm field may contain spaces and
// parentheses; it ends at the last ')'.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 1 || closing < open {
		return s, fmt.Errorf("stat: %w: no (comm)", ErrMalformed)
	}
	pid, err := strconv.ParseUint(string(bytes.TrimSpace(b[:open])), 10, 32)
	if err != nil {
		return s, fmt.Errorf("stat: %w: pid %q", ErrMalformed, bytes.TrimSpace(b[:open]))
	}
	s.PID = uint32(pid)
	s.Comm = string(b[open+1 : closing])
	// Fields after comm, numbered from 3 (state) as in proc(5).
	f := bytes.Fields(b[closing+1:])
	if len(f) < 20 {
		return s, fmt.Errorf("stat: %w: %d fields after comm, want >= 20", ErrMalformed, len(f))
	}
	if len(f[0]) != 1 {
		return s, fmt.Errorf("stat: %w: state %q", ErrMalformed, f[0])
	}
	s.State = f[0][0]
	ppid, err := strconv.ParseUint(string(f[1]), 10, 32)
	if err != nil {
		return s, fmt.Errorf("stat: %w: ppid %q", ErrMalformed, f[1])
	}
	s.PPID = uint32(ppid)
	if s.Flags, err = strconv.ParseUint(string(f[6]), 10, 64); err != nil {
		return s, fmt.Errorf("stat: %w: flags %q", ErrMalformed, f[6])
	}
	// Field 22 (starttime) is f[19].
	if s.StartTicks, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return s, fmt.Errorf("stat: %w: starttime %q", ErrMalformed, f[19])
	}
	return s, nil
}

// Status is what the sensor uses from /proc/<pid>/status.
type Status struct {
	Name string
	Tgid uint32
	PPid uint32
	// UID and GID are real, effective, saved and filesystem ids.
	UID, GID       [4]uint32
	CapEff, CapPrm uint64
	// NSpid lists the pid in each pid namespace, outermost first.
	NSpid []uint32
	// Seen records which of the fields above were present.
	Seen uint32
}

// Status.Seen bits.
const (
	SeenName = 1 << iota
	SeenTgid
	SeenPPid
	SeenUID
	SeenGID
	SeenCapEff
	SeenCapPrm
	SeenNSpid
)

// ParseStatus parses /proc/<pid>/status. Unknown keys are ignored; a known
// key with a bad value is an error. Name, Tgid, PPid and Uid are required.
func ParseStatus(b []byte) (Status, error) {
	var s Status
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		var err error
		switch string(k) {
		case "Name":
			// The kernel escapes '\n' and '\\' in names; keep them as written.
			s.Name = string(v)
			s.Seen |= SeenName
		case "Tgid":
			s.Tgid, err = parseU32(v)
			s.Seen |= SeenTgid
		case "PPid":
			s.PPid, err = parseU32(v)
			s.Seen |= SeenPPid
		case "Uid":
			err = parseIDs(v, &s.UID)
			s.Seen |= SeenUID
		case "Gid":
			err = parseIDs(v, &s.GID)
			s.Seen |= SeenGID
		case "CapEff":
			s.CapEff, err = strconv.ParseUint(string(v), 16, 64)
			s.Seen |= SeenCapEff
		case "CapPrm":
			s.CapPrm, err = strconv.ParseUint(string(v), 16, 64)
			s.Seen |= SeenCapPrm
		case "NSpid":
			s.NSpid = s.NSpid[:0]
			for _, f := range bytes.Fields(v) {
				if len(s.NSpid) >= 32 { // MAX_PID_NS_LEVEL
					break
				}
				var n uint32
				if n, err = parseU32(f); err != nil {
					break
				}
				s.NSpid = append(s.NSpid, n)
			}
			s.Seen |= SeenNSpid
		}
		if err != nil {
			return s, fmt.Errorf("status: %w: %s: %q", ErrMalformed, k, v)
		}
	}
	const need = SeenName | SeenTgid | SeenPPid | SeenUID
	if s.Seen&need != need {
		return s, fmt.Errorf("status: %w: missing Name, Tgid, PPid or Uid", ErrMalformed)
	}
	return s, nil
}

func parseU32(b []byte) (uint32, error) {
	n, err := strconv.ParseUint(string(b), 10, 32)
	return uint32(n), err
}

func parseIDs(v []byte, out *[4]uint32) error {
	f := bytes.Fields(v)
	if len(f) != 4 {
		return fmt.Errorf("want 4 ids, got %d", len(f))
	}
	for i := range f {
		n, err := parseU32(f[i])
		if err != nil {
			return err
		}
		out[i] = n
	}
	return nil
}

// CgroupEntry is one line of /proc/<pid>/cgroup: "hierarchy-id:controllers:path".
type CgroupEntry struct {
	Hierarchy   int
	Controllers string // "" for the v2 hierarchy
	Path        string
}

// Cgroups is a parsed /proc/<pid>/cgroup.
type Cgroups []CgroupEntry

// V2 returns the cgroup v2 path (the "0::" line).
func (c Cgroups) V2() (string, bool) {
	for _, e := range c {
		if e.Hierarchy == 0 && e.Controllers == "" {
			return e.Path, true
		}
	}
	return "", false
}

// MaxCgroupLines bounds ParseCgroup: a kernel has at most a few dozen
// hierarchies.
const MaxCgroupLines = 64

// ParseCgroup parses /proc/<pid>/cgroup.
func ParseCgroup(b []byte) (Cgroups, error) {
	var out Cgroups
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		if len(out) >= MaxCgroupLines {
			return nil, fmt.Errorf("cgroup: %w: more than %d lines", ErrMalformed, MaxCgroupLines)
		}
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("cgroup: %w: line %q has no ':'", ErrMalformed, line)
		}
		ctrl, path, ok := strings.Cut(rest, ":")
		if !ok {
			return nil, fmt.Errorf("cgroup: %w: line %q has one ':'", ErrMalformed, line)
		}
		h, err := strconv.Atoi(id)
		if err != nil || h < 0 {
			return nil, fmt.Errorf("cgroup: %w: hierarchy id %q", ErrMalformed, id)
		}
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("cgroup: %w: path %q is not absolute", ErrMalformed, path)
		}
		out = append(out, CgroupEntry{Hierarchy: h, Controllers: ctrl, Path: path})
	}
	return out, nil
}

// Mount is one line of /proc/<pid>/mountinfo.
type Mount struct {
	ID, Parent int
	// Root is the root of the mount within its file system.
	Root string
	// Point is the mount point.
	Point   string
	FSType  string
	Source  string
	Options string
}

// MaxMounts bounds ParseMountinfo.
const MaxMounts = 1 << 16

// ParseMountinfo parses /proc/<pid>/mountinfo (proc(5)), unescaping the
// octal escapes (\040 for space) in paths.
func ParseMountinfo(b []byte) ([]Mount, error) {
	var out []Mount
	for n, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		if len(out) >= MaxMounts {
			return nil, fmt.Errorf("mountinfo: %w: more than %d mounts", ErrMalformed, MaxMounts)
		}
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			return nil, fmt.Errorf("mountinfo: %w: line %d has no separator", ErrMalformed, n+1)
		}
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if len(f) < 6 || len(g) < 2 {
			return nil, fmt.Errorf("mountinfo: %w: line %d is short", ErrMalformed, n+1)
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo: %w: line %d ids %q %q", ErrMalformed, n+1, f[0], f[1])
		}
		m := Mount{ID: id, Parent: parent, Root: unescape(f[3]), Point: unescape(f[4]), FSType: g[0], Source: unescape(g[1])}
		if len(g) > 2 {
			m.Options = g[2]
		}
		out = append(out, m)
	}
	return out, nil
}

// CgroupV2Mount returns the mount point of the cgroup v2 hierarchy: on pure
// v2 hosts /sys/fs/cgroup, on hybrid hosts usually /sys/fs/cgroup/unified.
// Mounts of a sub-tree (root other than "/") are used only when no full
// mount exists.
func CgroupV2Mount(mounts []Mount) (string, bool) {
	sub := ""
	for _, m := range mounts {
		if m.FSType != "cgroup2" {
			continue
		}
		if m.Root == "/" {
			return m.Point, true
		}
		if sub == "" {
			sub = m.Point
		}
	}
	return sub, sub != ""
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			v := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }

// ParseNSLink parses a namespace link target such as "mnt:[4026531832]"
// and returns the inode number.
func ParseNSLink(s string) (uint32, error) {
	i := strings.IndexByte(s, '[')
	if i < 0 || !strings.HasSuffix(s, "]") {
		return 0, fmt.Errorf("ns link: %w: %q", ErrMalformed, s)
	}
	n, err := strconv.ParseUint(s[i+1:len(s)-1], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("ns link: %w: %q", ErrMalformed, s)
	}
	return uint32(n), nil
}

// SplitCmdline splits /proc/<pid>/cmdline (NUL-separated) into at most
// maxArgs arguments.
func SplitCmdline(b []byte, maxArgs int) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	var out []string
	for len(b) > 0 && len(out) < maxArgs {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out
}

// Mapping is one file-backed line of /proc/<pid>/maps.
type Mapping struct {
	// Dev and Inode identify the mapped file; Dev is in the encoding
	// stat(2) returns.
	Dev, Inode uint64
	// Start and End are the addresses mapped; Offset is the file offset
	// at Start.
	Start, End, Offset uint64
	// Perms is the protection and sharing, e.g. "r--s".
	Perms string
	// Path is the pathname as the kernel prints it (newlines escaped as
	// \012, " (deleted)" appended to unlinked files).
	Path string
}

// ParseMaps calls fn for every file-backed line of /proc/<pid>/maps (inode
// not zero), in order, until fn returns false. Anonymous and special
// mappings ([heap], [stack], [vdso]) are skipped.
func ParseMaps(b []byte, fn func(Mapping) bool) error {
	for n := 1; len(b) > 0; n++ {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		if len(line) == 0 {
			continue
		}
		var f [5][]byte
		rest := line
		for i := range f {
			rest = bytes.TrimLeft(rest, " ")
			j := bytes.IndexByte(rest, ' ')
			if j < 0 {
				j = len(rest)
			}
			f[i], rest = rest[:j], rest[j:]
		}
		if len(f[4]) == 0 {
			return fmt.Errorf("maps: %w: line %d is short", ErrMalformed, n)
		}
		ino, err := strconv.ParseUint(string(f[4]), 10, 64)
		if err != nil {
			return fmt.Errorf("maps: %w: line %d inode %q", ErrMalformed, n, f[4])
		}
		lo, hi, ok1 := bytes.Cut(f[0], []byte{'-'})
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		off, err3 := strconv.ParseUint(string(f[2]), 16, 64)
		if !ok1 || err1 != nil || err2 != nil || err3 != nil || end < start {
			return fmt.Errorf("maps: %w: line %d range %q offset %q", ErrMalformed, n, f[0], f[2])
		}
		maj, min, ok := bytes.Cut(f[3], []byte{':'})
		ma, err1 := strconv.ParseUint(string(maj), 16, 32)
		mi, err2 := strconv.ParseUint(string(min), 16, 32)
		if !ok || err1 != nil || err2 != nil {
			return fmt.Errorf("maps: %w: line %d device %q", ErrMalformed, n, f[3])
		}
		if ino == 0 {
			continue
		}
		path := bytes.TrimLeft(rest, " ")
		if len(path) == 0 || path[0] == '[' {
			continue
		}
		m := Mapping{Dev: unix.Mkdev(uint32(ma), uint32(mi)), Inode: ino, Start: start, End: end, Offset: off,
			Perms: string(f[1]), Path: string(path)}
		if !fn(m) {
			return nil
		}
	}
	return nil
}
