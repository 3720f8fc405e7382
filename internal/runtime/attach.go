package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// attachAll attaches every loaded program from its ELF section name, in
// name order, so that programs added to bpf/ (net.bpf.h, ...) need no loader
// change. The syscall handlers and tail_ programs are not attached: they
// are tail-called. A non-optional program that does not attach fails the
// load.
func (s *Sensor) attachAll(spec *ebpf.CollectionSpec) error {
	names := make([]string, 0, len(s.coll.Programs))
	for name := range s.coll.Programs {
		if !isSyscallHandler(name) && !isTailTarget(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var cgroupRoot string
	for _, name := range names {
		ps := spec.Programs[name]
		if ps == nil {
			return fmt.Errorf("attach %s: no program spec", name)
		}
		if isCgroupType(ps.Type) && cgroupRoot == "" {
			root, err := cgroupV2Root("/proc/self/mountinfo")
			if err != nil {
				return fmt.Errorf("attach %s: %w", name, err)
			}
			cgroupRoot = root
		}
		l, err := attachOne(s.coll.Programs[name], ps, cgroupRoot)
		if err != nil {
			if strings.HasSuffix(name, optionalSuffix) {
				s.log.Warn("optional BPF program not attached", "program", name, "error", err)
				continue
			}
			caps, why := programCaps(ps.Type)
			return explainEPERM(fmt.Sprintf("attach %s (%s)", name, ps.SectionName), err, caps, why)
		}
		s.links = append(s.links, l)
		s.progs = append(s.progs, name)
		if testHookAttached != nil {
			if err := testHookAttached(name); err != nil {
				return err
			}
		}
	}
	return nil
}

func isCgroupType(t ebpf.ProgramType) bool {
	switch t {
	case ebpf.CGroupSKB, ebpf.CGroupSock, ebpf.CGroupSockAddr, ebpf.CGroupSockopt, ebpf.CGroupDevice,
		ebpf.CGroupSysctl, ebpf.SockOps:
		return true
	}
	return false
}

// attachOne attaches prog according to its section name.
func attachOne(prog *ebpf.Program, ps *ebpf.ProgramSpec, cgroupRoot string) (link.Link, error) {
	sec := ps.SectionName
	prefix, rest, _ := strings.Cut(sec, "/")
	switch {
	case prefix == "tp_btf" || prefix == "fentry" || prefix == "fexit":
		return link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ps.AttachType})
	case prefix == "raw_tp" || prefix == "raw_tracepoint":
		return link.AttachRawTracepoint(link.RawTracepointOptions{Name: rest, Program: prog})
	case prefix == "tracepoint" || prefix == "tp":
		// Classic tracepoints are found by id in tracefs, which a pod
		// without CAP_SYS_ADMIN can neither mount nor count on.
		return nil, fmt.Errorf("section %q: classic tracepoints need tracefs; use tp_btf or raw_tp", sec)
	case isCgroupType(ps.Type):
		return link.AttachCgroup(link.CgroupOptions{Path: cgroupRoot, Attach: ps.AttachType, Program: prog})
	}
	return nil, fmt.Errorf("section %q: no attach rule for this kind of program", sec)
}

// emptyPrograms replaces every program body with an immediate return, so the
// floor runs on exactly the sensor's hooks. Cgroup programs return 1 (allow).
// For syscalls the floor is the empty dispatcher on sys_enter and sys_exit:
// the price of running a program on every syscall, before any bitmap test.
func emptyPrograms(spec *ebpf.CollectionSpec) {
	for _, ps := range spec.Programs {
		var ret int64
		if isCgroupType(ps.Type) {
			ret = 1
		}
		ps.Instructions = asm.Instructions{asm.Mov.Imm(asm.R0, int32(ret)), asm.Return()}
	}
}

// cgroupV2Root returns the mount point of the cgroup v2 hierarchy listed in
// the given mountinfo file (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a
// hybrid host).
func cgroupV2Root(mountinfo string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", fmt.Errorf("find cgroup v2 root: %w", err)
	}
	defer f.Close()
	return parseCgroupV2Root(bufio.NewScanner(f))
}

func parseCgroupV2Root(sc *bufio.Scanner) (string, error) {
	// Inside a pod, the runtime's own cgroup2 mount shows the container's
	// cgroup namespace (its root is the pod's cgroup) and comes first; the
	// host's hierarchy is a hostPath. Programs attached to the former would
	// see only the sensor's processes: take the mount whose root directory
	// is the hierarchy's root, cgroup 1, else the first.
	first := ""
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		fstype, _, _ := strings.Cut(post, " ")
		if fstype != "cgroup2" {
			continue
		}
		fields := strings.Fields(pre)
		if len(fields) < 5 {
			continue
		}
		point := unescapeMountinfo(fields[4])
		var st unix.Stat_t
		if unix.Stat(point, &st) == nil && st.Ino == 1 {
			return point, nil
		}
		if first == "" {
			first = point
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	if first != "" {
		return first, nil
	}
	return "", errors.New("no cgroup2 mount in mountinfo: cgroup programs need the cgroup v2 hierarchy mounted")
}

// unescapeMountinfo undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
