package proc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Bounds on what is read from /proc for one process.
const (
	maxSmallFile = 64 << 10
	// MaxArgs and MaxArgBytes bound the argv read from /proc/<pid>/cmdline.
	MaxArgs     = 64
	MaxArgBytes = 4096
	// clockTicks is USER_HZ, which is 100 on every Linux ABI the sensor
	// supports (it is fixed by the ABI, not by CONFIG_HZ).
	clockTicks = 100
)

// FS reads processes from a procfs mount.
//
// It is safe for concurrent use.
type FS struct {
	root     string
	boot     time.Time
	cgroupV2 string
}

// NewFS returns an FS over the procfs mounted at root ("/proc").
func NewFS(root string) (*FS, error) {
	if _, err := os.Stat(filepath.Join(root, "self")); err != nil {
		return nil, fmt.Errorf("open procfs %s: %w", root, err)
	}
	return &FS{root: root, boot: BootTime()}, nil
}

// SetCgroupV2Root tells Process where the cgroup v2 hierarchy is mounted, so
// that it can fill Proc.CgroupID. Call it before sharing fs.
func (fs *FS) SetCgroupV2Root(path string) { fs.cgroupV2 = path }

// Root returns the procfs mount point.
func (fs *FS) Root() string { return fs.root }

// BootTime returns the wall-clock time of boot, as the kernel's
// CLOCK_BOOTTIME counts it (which is what /proc/<pid>/stat starttime uses).
func BootTime() time.Time {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Time{}
	}
	return now.Add(-time.Duration(ts.Nano()))
}

// PIDs lists the numeric entries of the procfs root (thread group ids).
func (fs *FS) PIDs() ([]uint32, error) {
	d, err := os.Open(fs.root)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	out := make([]uint32, 0, len(names))
	for _, n := range names {
		if p, err := strconv.ParseUint(n, 10, 32); err == nil && p > 0 {
			out = append(out, uint32(p))
		}
	}
	return out, nil
}

// Proc is one process as read from /proc.
type Proc struct {
	PID, PPID uint32
	Comm      string
	Exe       string
	Args      []string
	UID, EUID uint32
	CapEff    uint64
	CapPrm    uint64
	StartTime time.Time
	Kthread   bool
	ExeMemfd  bool
	NS        event.Namespaces
	// NSPID is the pid in its own PID namespace (the last NSpid); 0 when
	// the kernel did not say.
	NSPID      uint32
	Cgroups    Cgroups
	CgroupPath string // v2 path, "" if none
	// CgroupID is the inode of the v2 cgroup directory (what BPF reports
	// as the cgroup id), or 0 when unknown.
	CgroupID uint64
}

// Snapshot returns the event form of p, without lineage. The fork parent of
// a process found in /proc is unknown; its current parent stands in.
func (p *Proc) Snapshot() *event.Process {
	return &event.Process{
		PID: p.PID, TID: p.PID, PPID: p.PPID, ForkParent: p.PPID,
		UID: p.UID, EUID: p.EUID, Comm: p.Comm, Exe: p.Exe, Args: p.Args,
		StartTime: p.StartTime, CgroupID: p.CgroupID, NS: p.NS, NSPID: p.NSPID,
		CapEff: p.CapEff, CapPrm: p.CapPrm, ExeMemfd: p.ExeMemfd,
	}
}

// Process reads pid. Only stat and status are required; exe, cmdline,
// cgroup and namespaces are best effort (they can be unreadable, as for a
// restricted PID 1, or gone for a zombie).
func (fs *FS) Process(pid uint32) (*Proc, error) {
	dir := filepath.Join(fs.root, strconv.FormatUint(uint64(pid), 10))
	b, err := readFile(filepath.Join(dir, "stat"), maxSmallFile)
	if err != nil {
		return nil, fmt.Errorf("read process %d: %w", pid, err)
	}
	st, err := ParseStat(b)
	if err != nil {
		return nil, fmt.Errorf("read process %d: %w", pid, err)
	}
	b, err = readFile(filepath.Join(dir, "status"), maxSmallFile)
	if err != nil {
		return nil, fmt.Errorf("read process %d: %w", pid, err)
	}
	ss, err := ParseStatus(b)
	if err != nil {
		return nil, fmt.Errorf("read process %d: %w", pid, err)
	}
	p := &Proc{
		PID: pid, PPID: st.PPID, Comm: st.Comm,
		UID: ss.UID[0], EUID: ss.UID[1], CapEff: ss.CapEff, CapPrm: ss.CapPrm,
		Kthread: st.Flags&PFKthread != 0,
	}
	if len(ss.NSpid) > 0 {
		p.NSPID = ss.NSpid[len(ss.NSpid)-1]
	}
	if !fs.boot.IsZero() {
		p.StartTime = fs.boot.Add(time.Duration(st.StartTicks) * (time.Second / clockTicks))
	}
	if !p.Kthread {
		if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
			p.Exe = exe
			p.ExeMemfd = strings.HasPrefix(exe, "/memfd:")
		}
		if b, err := readFile(filepath.Join(dir, "cmdline"), MaxArgBytes); err == nil {
			p.Args = SplitCmdline(b, MaxArgs)
		}
	}
	p.Cgroups, p.CgroupPath, p.CgroupID, _ = fs.Cgroup(pid)
	p.NS, _ = fs.Namespaces(pid)
	return p, nil
}

// Cgroup reads /proc/<pid>/cgroup: every line, the v2 path, and the v2
// cgroup id (0 unless SetCgroupV2Root was called and the directory exists).
func (fs *FS) Cgroup(pid uint32) (cgs Cgroups, v2 string, id uint64, err error) {
	b, err := readFile(filepath.Join(fs.root, strconv.FormatUint(uint64(pid), 10), "cgroup"), maxSmallFile)
	if err != nil {
		return nil, "", 0, fmt.Errorf("read cgroup of %d: %w", pid, err)
	}
	if cgs, err = ParseCgroup(b); err != nil {
		return nil, "", 0, fmt.Errorf("read cgroup of %d: %w", pid, err)
	}
	v2, _ = cgs.V2()
	if fs.cgroupV2 != "" && v2 != "" {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(fs.cgroupV2, filepath.Clean("/"+v2)), &st) == nil {
			id = st.Ino
		}
	}
	return cgs, v2, id, nil
}

// Namespaces reads the namespace inodes of pid. Unreadable links are left
// zero; the error is the first failure.
func (fs *FS) Namespaces(pid uint32) (event.Namespaces, error) {
	return fs.namespaces(strconv.FormatUint(uint64(pid), 10))
}

// SelfNamespaces reads the namespace inodes of the reading process, as
// Namespaces does.
func (fs *FS) SelfNamespaces() (event.Namespaces, error) {
	return fs.namespaces("self")
}

func (fs *FS) namespaces(pid string) (event.Namespaces, error) {
	var ns event.Namespaces
	var first error
	dir := filepath.Join(fs.root, pid, "ns")
	for _, n := range []struct {
		name string
		dst  *uint32
	}{
		{"mnt", &ns.Mnt}, {"pid", &ns.PID}, {"net", &ns.Net}, {"user", &ns.User},
		{"uts", &ns.UTS}, {"ipc", &ns.IPC}, {"cgroup", &ns.Cgroup},
	} {
		l, err := os.Readlink(filepath.Join(dir, n.name))
		if err == nil {
			*n.dst, err = ParseNSLink(l)
		}
		if err != nil && first == nil {
			first = fmt.Errorf("read namespaces of %s: %w", pid, err)
		}
	}
	return ns, first
}

// CgroupV2Mount finds the cgroup v2 mount point from <root>/self/mountinfo.
func (fs *FS) CgroupV2Mount() (string, error) {
	b, err := readFile(filepath.Join(fs.root, "self", "mountinfo"), 4<<20)
	if err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	mounts, err := ParseMountinfo(b)
	if err != nil {
		return "", err
	}
	// The mount that shows the whole hierarchy: its root directory is the
	// root cgroup, id 1. Inside a cgroup namespace mountinfo gives every
	// cgroup2 mount a root relative to that namespace ("/.."), so the root
	// field cannot tell; nor can it when a host mount covers a namespace's.
	for _, m := range mounts {
		var st unix.Stat_t
		if m.FSType == "cgroup2" && unix.Stat(m.Point, &st) == nil && st.Ino == 1 {
			return m.Point, nil
		}
	}
	p, ok := CgroupV2Mount(mounts)
	if !ok {
		return "", errors.New("no cgroup2 mount in mountinfo")
	}
	return p, nil
}

// readFile reads at most limit bytes of a /proc file.
func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}
