package cgroup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotFound is returned when no path is known for a cgroup id.
var ErrNotFound = errors.New("cgroup id not found")

// ResolverOptions tune a Resolver. The zero value gets defaults.
type ResolverOptions struct {
	// MaxEntries bounds the id → path index (default 65536). Learning
	// beyond it empties the index first (see Learn).
	MaxEntries int
	// MinRescan is the least time between two walks of the hierarchy
	// triggered by misses (default 1s), where the kernel cannot be asked
	// for one id's directory. A stream of unknown ids never turns into a
	// stream of walks.
	MinRescan time.Duration
	// Grace is how long the path of a removed cgroup stays known (default
	// 30s): the events of its last processes may still be queued behind
	// the removal.
	Grace time.Duration
	// RootID is the id (inode) of the hierarchy's root directory: 1 in
	// every cgroup v2 hierarchy (the default). Tests that stand a plain
	// directory tree in for the hierarchy set that tree's root inode.
	RootID uint64
	// Now is the clock (tests).
	Now func() time.Time
}

// Resolver maps cgroup ids (the kernfs node ids of cgroup v2 directories,
// which bpf_get_current_cgroup_id returns and stat reports as the inode) to
// paths from the root of the v2 hierarchy ("/kubepods.slice/…").
//
// The kernel is the source: the sensor's cgroup records (Learn, Forget) as
// cgroups are created, removed or first seen on a task, whatever cgroup
// namespace the sensor runs in. Where the hierarchy's root is mounted, the
// Resolver also walks it once, and asks the kernel for the directory of an id
// it does not hold (open_by_handle_at, which needs CAP_DAC_READ_SEARCH),
// walking again at most once per MinRescan where the kernel refuses that.
// A miss is never remembered: the next lookup tries again.
//
// It is safe for concurrent use.
type Resolver struct {
	opts ResolverOptions

	mu   sync.Mutex
	byID map[uint64]string
	// removed holds Forget calls in order, for expiry after Grace.
	removed []removal
	// root is the mount point of the hierarchy's root; "" when none is
	// mounted here or the mount shows only a sub-tree.
	root    string
	rootErr error
	checked bool
	// byHandle is set while ids can be looked up by file handle: root is
	// a cgroup2 mount and the kernel has not refused a lookup (handleErr
	// says why it did).
	byHandle  bool
	handleErr error
	walked    bool
	lastWalk  time.Time

	walks, misses, resets, learned, forgotten, handles atomic.Uint64
}

type removal struct {
	id uint64
	at time.Time
}

// NewResolver returns a Resolver for the cgroup v2 hierarchy mounted at
// root (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts); "" means
// none is mounted and paths come from Learn only. It does not touch the
// file system until the first lookup or CheckRoot.
func NewResolver(root string, opts *ResolverOptions) *Resolver {
	r := &Resolver{byID: map[uint64]string{}}
	if root != "" {
		r.root = filepath.Clean(root)
	}
	if opts != nil {
		r.opts = *opts
	}
	if r.opts.MaxEntries <= 0 {
		r.opts.MaxEntries = 65536
	}
	if r.opts.MinRescan <= 0 {
		r.opts.MinRescan = time.Second
	}
	if r.opts.Grace <= 0 {
		r.opts.Grace = 30 * time.Second
	}
	if r.opts.Now == nil {
		r.opts.Now = time.Now
	}
	if r.opts.RootID == 0 {
		r.opts.RootID = rootID
	}
	return r
}

// rootID is the id of the root of a cgroup v2 hierarchy: kernfs numbers its
// nodes from 1, and on 64-bit kernels the id is the inode number.
const rootID = 1

// CheckRoot reports why the mount given to NewResolver cannot be walked or
// asked for ids, or nil when it can. A mount that shows a sub-tree (a cgroup
// namespace's own cgroup2 mount) would give paths that are not from the root
// of the hierarchy, so it is not used; paths then come from Learn only.
func (r *Resolver) CheckRoot() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkLocked()
	return r.rootErr
}

func (r *Resolver) checkLocked() {
	if r.checked {
		return
	}
	r.checked = true
	if r.root == "" {
		r.rootErr = errors.New("no cgroup v2 mount")
		return
	}
	var st unix.Stat_t
	if err := unix.Stat(r.root, &st); err != nil {
		r.rootErr = fmt.Errorf("check cgroup v2 mount: %w", err)
		r.root = ""
		return
	}
	if st.Ino != r.opts.RootID {
		r.rootErr = fmt.Errorf("cgroup v2 mount %s shows a sub-tree of the hierarchy (its root is cgroup %d, not %d), as a cgroup namespace's own mount does", r.root, st.Ino, r.opts.RootID)
		r.root = ""
		return
	}
	// Lookups by handle need kernfs (a stand-in tree in tests is not).
	var sfs unix.Statfs_t
	if err := unix.Statfs(r.root, &sfs); err != nil || sfs.Type != unix.CGROUP2_SUPER_MAGIC {
		r.handleErr = fmt.Errorf("%s is not a cgroup2 mount", r.root)
		return
	}
	// Ask for the root itself, so that a refusal is known (and said) now.
	if _, err := r.byHandleLocked(r.opts.RootID); err != nil {
		r.handleErr = err
		return
	}
	r.byHandle = true
}

// HandleErr says why cgroup ids are not looked up by file handle (and a miss
// walks the hierarchy instead), or nil when they are.
func (r *Resolver) HandleErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkLocked()
	if r.root == "" {
		return r.rootErr
	}
	return r.handleErr
}

// Path returns the path of id, such as
// "/kubepods.slice/…/cri-containerd-<id>.scope", or ErrNotFound.
func (r *Resolver) Path(id uint64) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.byID[id]; ok {
		return p, nil
	}
	r.checkLocked()
	if r.root == "" || id == 0 {
		r.misses.Add(1)
		return "", ErrNotFound
	}
	if r.byHandle {
		p, err := r.byHandleLocked(id)
		switch {
		case err == nil:
			r.putLocked(id, p)
			return p, nil
		case errors.Is(err, ErrNotFound):
			r.misses.Add(1)
			return "", ErrNotFound
		}
		// Refused (no CAP_DAC_READ_SEARCH, or a kernel without kernfs
		// file handles): walk from now on.
		r.byHandle, r.handleErr = false, err
	}
	now := r.opts.Now()
	if r.walked && now.Sub(r.lastWalk) < r.opts.MinRescan {
		r.misses.Add(1)
		return "", ErrNotFound
	}
	r.lastWalk, r.walked = now, true
	if err := r.walkLocked(); err != nil {
		return "", err
	}
	if p, ok := r.byID[id]; ok {
		return p, nil
	}
	r.misses.Add(1)
	return "", ErrNotFound
}

// fileidKernfs is the handle type of kernfs file handles (FILEID_KERNFS):
// the 64-bit node id, which for a cgroup is its id.
const fileidKernfs = 0xfe

// byHandleLocked asks the kernel for the directory of cgroup id and returns
// its path below the mount. ErrNotFound means no such cgroup; another error
// means the kernel refused to look.
func (r *Resolver) byHandleLocked(id uint64) (string, error) {
	r.handles.Add(1)
	mfd, err := unix.Open(r.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) // not O_PATH: EBADF
	if err != nil {
		return "", fmt.Errorf("open cgroup mount: %w", err)
	}
	defer unix.Close(mfd)
	h := make([]byte, 8)
	binary.NativeEndian.PutUint64(h, id)
	fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(fileidKernfs, h), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ESTALE) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return "", ErrNotFound
		}
		return "", fmt.Errorf("open cgroup %d by handle: %w", id, err)
	}
	defer unix.Close(fd)
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", fmt.Errorf("read path of cgroup %d: %w", id, err)
	}
	if strings.HasSuffix(link, " (deleted)") {
		return "", ErrNotFound
	}
	rel, ok := r.relLocked(link)
	if !ok {
		return "", ErrNotFound
	}
	return rel, nil
}

// relLocked turns a path under the mount into a path from the root of the
// hierarchy.
func (r *Resolver) relLocked(p string) (string, bool) {
	if p == r.root {
		return "/", true
	}
	rest, ok := strings.CutPrefix(p, r.root)
	if !ok || (r.root != "/" && !strings.HasPrefix(rest, "/")) {
		return "", false
	}
	return filepath.Clean("/" + rest), true
}

// Learn records that cgroup id has path, from the root of the hierarchy, as
// the kernel reported it. It returns false when the index was full and was
// emptied to make room: whatever the caller marked as known to the index
// must then be unmarked, and is learned again as the kernel reports it.
func (r *Resolver) Learn(id uint64, path string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.learned.Add(1)
	r.expireLocked(r.opts.Now())
	return r.putLocked(id, path)
}

func (r *Resolver) putLocked(id uint64, path string) bool {
	if _, ok := r.byID[id]; !ok && len(r.byID) >= r.opts.MaxEntries {
		// Only cgroups removed while their record was lost stay
		// here forever; starting over drops them.
		clear(r.byID)
		r.removed = r.removed[:0]
		r.resets.Add(1)
		r.byID[id] = path
		return false
	}
	r.byID[id] = path
	return true
}

// Forget drops id once Grace has passed: the cgroup was removed.
func (r *Resolver) Forget(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	r.expireLocked(now)
	if _, ok := r.byID[id]; ok {
		r.removed = append(r.removed, removal{id: id, at: now})
	}
}

func (r *Resolver) expireLocked(now time.Time) {
	n := 0
	for n < len(r.removed) && now.Sub(r.removed[n].at) >= r.opts.Grace {
		delete(r.byID, r.removed[n].id)
		r.forgotten.Add(1)
		n++
	}
	if n > 0 {
		r.removed = append(r.removed[:0], r.removed[n:]...)
	}
}

// Walk indexes the hierarchy as it is now, once: later calls return at once.
// It is how cgroups that existed before the sensor's programs were attached
// become known. It returns CheckRoot's error where there is nothing to walk.
func (r *Resolver) Walk() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkLocked()
	if r.root == "" {
		return r.rootErr
	}
	if r.walked {
		return nil
	}
	r.lastWalk, r.walked = r.opts.Now(), true
	return r.walkLocked()
}

// Range calls fn for every id the index holds, outside the lock.
func (r *Resolver) Range(fn func(id uint64)) {
	r.mu.Lock()
	ids := make([]uint64, 0, len(r.byID))
	for id := range r.byID {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	for _, id := range ids {
		fn(id)
	}
}

// ResolverCounters are a Resolver's counts.
type ResolverCounters struct {
	// Entries is the size of the index now.
	Entries uint64
	// Learned and Forgotten count paths the kernel reported and removals
	// that expired.
	Learned, Forgotten uint64
	// Handles counts lookups of one id by file handle; Walks counts walks.
	Handles, Walks uint64
	// Misses counts lookups that found no path.
	Misses uint64
	// Resets counts times the index was full and emptied.
	Resets uint64
}

// Counters returns the Resolver's counts.
func (r *Resolver) Counters() ResolverCounters {
	r.mu.Lock()
	n := len(r.byID)
	r.mu.Unlock()
	return ResolverCounters{
		Entries: uint64(n), Learned: r.learned.Load(), Forgotten: r.forgotten.Load(),
		Handles: r.handles.Load(), Walks: r.walks.Load(), Misses: r.misses.Load(), Resets: r.resets.Load(),
	}
}

// walkLocked adds every directory under the root to the index, stopping at
// MaxEntries.
func (r *Resolver) walkLocked() error {
	r.walks.Add(1)
	err := filepath.WalkDir(r.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A cgroup removed during the walk: skip it, keep walking.
			if p == r.root {
				return err
			}
			return fs.SkipDir
		}
		if !d.IsDir() {
			return nil
		}
		if len(r.byID) >= r.opts.MaxEntries {
			return fs.SkipAll
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return fs.SkipDir
		}
		if rel, ok := r.relLocked(p); ok {
			r.byID[st.Ino] = rel
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk cgroup hierarchy %s: %w", r.root, err)
	}
	return nil
}
