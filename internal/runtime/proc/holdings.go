package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// What a process holds: the regular files behind its descriptors and its
// file mappings, by the (device, inode) the kernel reports for them. Rules
// ask this at the moment a process sends data off the node, because an fd
// inherited at fork, passed over a unix socket, or opened before the sensor
// started leaves no open event of that process behind.

// Bounds of one Holdings call.
const (
	// MaxHeldFDs bounds the descriptors examined per process.
	MaxHeldFDs = 4096
	// MaxHeld bounds the files returned per process.
	MaxHeld = 1024
	// maxMapsBytes bounds the /proc/<pid>/maps read per process.
	maxMapsBytes = 4 << 20
)

// ErrTruncated is returned, wrapped, with a partial result when a process
// holds more than the bounds allow.
var ErrTruncated = errors.New("truncated")

// Held is one regular file a process holds.
type Held struct {
	// Dev and Inode are in the encoding stat(2) returns (which is what the
	// decoder gives for opens, too).
	Dev, Inode uint64
	// Size is the file size for a descriptor; for a mapping no descriptor
	// also holds, the furthest extent mapped (offset + length, rounded up
	// to a page): a lower bound that stat would need a walk into the
	// process's root to better.
	Size int64
	// Path is the descriptor's link or the mapping's path as the kernel
	// prints them: evidence, not identity.
	Path string
	// FD is the descriptor, or -1 for a mapping.
	FD int32
}

// Holdings lists the regular files pid holds, each (device, inode) once: a
// descriptor wins over a mapping of the same file. Past MaxHeldFDs
// descriptors or MaxHeld files, it returns what it has and an error
// wrapping ErrTruncated. Descriptors closed while it reads are skipped.
func (fs *FS) Holdings(pid uint32) ([]Held, error) {
	dir := filepath.Join(fs.root, strconv.FormatUint(uint64(pid), 10))
	d, err := os.Open(filepath.Join(dir, "fd"))
	if err != nil {
		return nil, fmt.Errorf("read descriptors of %d: %w", pid, err)
	}
	names, err := d.Readdirnames(MaxHeldFDs + 1)
	d.Close()
	if err != nil && len(names) == 0 {
		return nil, fmt.Errorf("read descriptors of %d: %w", pid, err)
	}
	var trunc error
	if len(names) > MaxHeldFDs {
		names = names[:MaxHeldFDs]
		trunc = fmt.Errorf("holdings of %d: %w: more than %d descriptors", pid, ErrTruncated, MaxHeldFDs)
	}
	type key struct{ dev, ino uint64 }
	seen := make(map[key]bool, len(names))
	var out []Held
	for _, n := range names {
		fd, err := strconv.ParseInt(n, 10, 32)
		if err != nil {
			continue
		}
		link := filepath.Join(dir, "fd", n)
		var st unix.Stat_t
		// stat follows the magic link to the open file itself, whichever
		// mount namespace it lives in.
		if unix.Stat(link, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		k := key{st.Dev, st.Ino}
		if seen[k] {
			continue
		}
		path, err := os.Readlink(link)
		if err != nil {
			continue
		}
		seen[k] = true
		out = append(out, Held{Dev: st.Dev, Inode: st.Ino, Size: st.Size, Path: path, FD: int32(fd)})
		if len(out) >= MaxHeld {
			return out, fmt.Errorf("holdings of %d: %w: more than %d files", pid, ErrTruncated, MaxHeld)
		}
	}
	b, err := readFile(filepath.Join(dir, "maps"), maxMapsBytes)
	if err != nil {
		return out, fmt.Errorf("read mappings of %d: %w", pid, err)
	}
	full := false
	mapped := map[key]int{} // index in out of files held by mapping only
	err = ParseMaps(b, func(m Mapping) bool {
		k := key{m.Dev, m.Inode}
		ext := int64(min(m.Offset+(m.End-m.Start), 1<<62))
		if i, ok := mapped[k]; ok {
			out[i].Size = max(out[i].Size, ext)
			return true
		}
		if seen[k] {
			return true
		}
		seen[k] = true
		mapped[k] = len(out)
		out = append(out, Held{Dev: m.Dev, Inode: m.Inode, Size: ext, Path: m.Path, FD: -1})
		full = len(out) >= MaxHeld
		return !full
	})
	switch {
	case err != nil:
		return out, fmt.Errorf("read mappings of %d: %w", pid, err)
	case full:
		return out, fmt.Errorf("holdings of %d: %w: more than %d files", pid, ErrTruncated, MaxHeld)
	}
	return out, trunc
}

// NamespacePIDs returns, for every live process whose own PID namespace is
// the one with inode pidNS, its pid in that namespace (the last NSpid of
// its status) mapped to its pid in the namespace of this procfs mount.
// Processes that exit while it reads are skipped.
func (fs *FS) NamespacePIDs(pidNS uint32) (map[uint32]uint32, error) {
	pids, err := fs.PIDs()
	if err != nil {
		return nil, err
	}
	out := map[uint32]uint32{}
	for _, pid := range pids {
		dir := filepath.Join(fs.root, strconv.FormatUint(uint64(pid), 10))
		l, err := os.Readlink(filepath.Join(dir, "ns", "pid"))
		if err != nil {
			continue
		}
		if ino, err := ParseNSLink(l); err != nil || ino != pidNS {
			continue
		}
		b, err := readFile(filepath.Join(dir, "status"), maxSmallFile)
		if err != nil {
			continue
		}
		st, err := ParseStatus(b)
		if err != nil || len(st.NSpid) == 0 {
			continue
		}
		out[st.NSpid[len(st.NSpid)-1]] = pid
	}
	return out, nil
}

// Identity is what tells two live processes' containers apart without a
// name: the cgroup and the namespaces the kernel has them in.
type Identity struct {
	// CgroupID is the inode of the v2 cgroup directory (0 unless
	// SetCgroupV2Root was called), which is the id BPF reports.
	CgroupID uint64
	NS       event.Namespaces
}

// Identity reads the cgroup id and namespaces of pid. Unreadable parts
// stay zero; the error is set only when pid is gone or nothing was
// readable.
func (fs *FS) Identity(pid uint32) (Identity, error) {
	var id Identity
	_, _, cg, cgErr := fs.Cgroup(pid)
	ns, nsErr := fs.Namespaces(pid)
	id.CgroupID, id.NS = cg, ns
	if cgErr != nil && ns == (event.Namespaces{}) {
		return id, fmt.Errorf("identify process %d: %w", pid, errors.Join(cgErr, nsErr))
	}
	return id, nil
}
