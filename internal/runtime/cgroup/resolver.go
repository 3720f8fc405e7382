package cgroup

import (
	"errors"
	"fmt"
	"io/fs"

	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrNotFound is returned when a cgroup id names no directory under the
// cgroup v2 mount.
var ErrNotFound = errors.New("cgroup id not found")

// ResolverOptions tune a Resolver. The zero value gets defaults.
type ResolverOptions struct {
	// MaxEntries bounds the id → path index (default 65536). A walk that
	// finds more directories stops there and counts the truncation.
	MaxEntries int
	// MinRescan is the least time between two walks triggered by misses
	// (default 1s), so that a stream of unknown ids cannot turn into a
	// stream of walks.
	MinRescan time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// Resolver maps cgroup ids (the inode numbers of cgroup v2 directories, as
// bpf_get_current_cgroup_id returns them) to cgroup paths relative to the v2
// mount ("/kubepods.slice/…"). It indexes the hierarchy by walking it, and
// walks again on a miss, at most once per MinRescan.
//
// It is safe for concurrent use.
type Resolver struct {
	root string
	opts ResolverOptions

	mu       sync.Mutex
	byID     map[uint64]string
	lastWalk time.Time

	walks, misses, truncated atomic.Uint64
}

// NewResolver returns a Resolver for the cgroup v2 hierarchy mounted at
// root (for example /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid
// hosts). It does not touch the file system until the first lookup.
func NewResolver(root string, opts *ResolverOptions) *Resolver {
	r := &Resolver{root: filepath.Clean(root), byID: map[uint64]string{}}
	if opts != nil {
		r.opts = *opts
	}
	if r.opts.MaxEntries <= 0 {
		r.opts.MaxEntries = 65536
	}
	if r.opts.MinRescan <= 0 {
		r.opts.MinRescan = time.Second
	}
	if r.opts.Now == nil {
		r.opts.Now = time.Now
	}
	return r
}

// Path returns the cgroup path of id, such as "/kubepods.slice/…/cri-containerd-<id>.scope",
// or ErrNotFound.
func (r *Resolver) Path(id uint64) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.byID[id]; ok {
		return p, nil
	}
	now := r.opts.Now()
	if !r.lastWalk.IsZero() && now.Sub(r.lastWalk) < r.opts.MinRescan {
		r.misses.Add(1)
		return "", ErrNotFound
	}
	r.lastWalk = now
	if err := r.walkLocked(); err != nil {
		return "", err
	}
	if p, ok := r.byID[id]; ok {
		return p, nil
	}
	r.misses.Add(1)
	return "", ErrNotFound
}

// Learn records that path (relative to the mount) has id, as found by the
// caller (for example from /proc/<pid>/cgroup and a stat), saving a walk.
func (r *Resolver) Learn(id uint64, path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.byID) >= r.opts.MaxEntries {
		if _, ok := r.byID[id]; !ok {
			r.truncated.Add(1)
			return
		}
	}
	r.byID[id] = path
}

// Counters returns walk, miss and truncation counts.
func (r *Resolver) Counters() (walks, misses, truncated uint64) {
	return r.walks.Load(), r.misses.Load(), r.truncated.Load()
}

func (r *Resolver) walkLocked() error {
	r.walks.Add(1)
	idx := make(map[uint64]string, len(r.byID))
	full := false
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
		if len(idx) >= r.opts.MaxEntries {
			full = true
			return fs.SkipAll
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return fs.SkipDir
		}
		rel := "/" + filepath.ToSlash(p[len(r.root):])
		rel = filepath.Clean(rel)
		idx[st.Ino] = rel
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk cgroup hierarchy %s: %w", r.root, err)
	}
	if full {
		r.truncated.Add(1)
	}
	r.byID = idx
	return nil
}
