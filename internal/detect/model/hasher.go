package model

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Run hashes queued files until ctx is done, reading at most HashRate bytes
// per second across all files. Call it once, from its own goroutine; it is
// the only place the registry does file I/O. It returns nil when ctx is done.
//
// A file is opened through /proc/<pid>/root of a process that opened it, so
// container paths resolve in the container's mount namespace, resolved by
// the kernel inside that root (openInRoot), and read only when it is a
// regular file whose inode (and device) match what the kernel reported.
func (r *Registry) Run(ctx context.Context) error {
	if r.opts.NoHash {
		return nil
	}
	p := newPacer(float64(r.opts.HashRate), defaultChunkSize)
	buf := make([]byte, defaultChunkSize)
	var tick <-chan time.Time
	if r.opts.RevalidateEvery > 0 {
		t := time.NewTicker(r.opts.RevalidateEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case k := <-r.queue:
			r.hashOne(ctx, k, p, buf)
		case <-tick:
			r.revalidate(ctx)
		}
	}
}

// revalidate stats every hashed file and queues those whose size or mtime
// moved since they were hashed.
func (r *Registry) revalidate(ctx context.Context) {
	type check struct {
		k   Key
		job hashJob
		sz  int64
		mt  time.Time
	}
	var checks []check
	r.mu.Lock()
	for e := r.head; e != nil; e = e.next {
		if e.state == hashDone {
			checks = append(checks, check{k: e.Key, sz: e.hashedSize, mt: e.hashedMtime, job: hashJob{k: e.Key, e: e, gen: e.gen,
				paths: slices.Clone(e.Paths), loaders: slices.Clone(e.Loaders), dev: e.Dev, inode: e.Inode}})
		}
	}
	r.mu.Unlock()
	for _, c := range checks {
		if ctx.Err() != nil {
			return
		}
		f, fi, err := r.open(c.job)
		if err != nil {
			continue // gone or unreachable: keep the last hash
		}
		f.Close()
		if fi.Size() == c.sz && fi.ModTime().Equal(c.mt) {
			continue
		}
		r.mu.Lock()
		if e := r.files[c.k]; e == c.job.e && e.gen == c.job.gen && e.state == hashDone {
			r.c.revalidated.Add(1)
			r.invalidate(e)
			if !e.queued {
				r.enqueue(e)
			}
		}
		r.mu.Unlock()
	}
}

type hashJob struct {
	k          Key
	e          *entry
	gen        uint64
	paths      []string
	loaders    []User
	dev, inode uint64
}

func (r *Registry) hashOne(ctx context.Context, k Key, p *pacer, buf []byte) {
	r.mu.Lock()
	e := r.files[k]
	if e == nil {
		r.mu.Unlock()
		r.c.hashStale.Add(1)
		return
	}
	e.queued = false
	if e.state != hashPending {
		r.mu.Unlock()
		return
	}
	j := hashJob{k: k, e: e, gen: e.gen, paths: slices.Clone(e.Paths), loaders: slices.Clone(e.Loaders),
		dev: e.Dev, inode: e.Inode}
	r.mu.Unlock()

	sum, fi, err := r.hashFile(ctx, j, p, buf)
	if ctx.Err() != nil {
		return // stays pending; the next open queues it again
	}
	r.finish(k, j, sum, fi, err)
}

func (r *Registry) finish(k Key, j hashJob, sum string, fi os.FileInfo, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.files[k]
	if e != j.e {
		r.c.hashStale.Add(1) // evicted (and maybe re-added) meanwhile
		return
	}
	if e.gen != j.gen {
		r.c.hashStale.Add(1) // written or resized meanwhile: hash again
		if !e.queued {
			r.enqueue(e)
		}
		return
	}
	if err != nil {
		r.c.hashErrors.Add(1)
		e.attempts++
		if errors.Is(err, ErrChanged) && e.attempts < maxHashAttempts {
			if !e.queued {
				r.enqueue(e)
			}
			return
		}
		e.state = hashFailed
		e.HashError = err.Error()
		r.log.Debug("model hash failed", "key", k.String(), "paths", e.Paths, "err", err)
		return
	}
	r.c.hashed.Add(1)
	e.state = hashDone
	e.SHA256, e.HashedAt, e.HashError, e.Size, e.attempts = sum, time.Now(), "", fi.Size(), 0
	e.hashedSize, e.hashedMtime = fi.Size(), fi.ModTime()
}

// errSuperseded stops a hash whose file changed or left the registry.
var errSuperseded = errors.New("superseded")

// supersedeCheck is how many chunks the hasher reads between checks that
// its job is still current.
const supersedeCheck = 4

// current reports whether j's entry is still registered and unchanged.
func (r *Registry) current(j hashJob) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files[j.k] == j.e && j.e.gen == j.gen
}

// hashFile opens the job's file and returns its sha256 and its stat.
func (r *Registry) hashFile(ctx context.Context, j hashJob, p *pacer, buf []byte) (string, os.FileInfo, error) {
	f, before, err := r.open(j)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	h := sha256.New()
	var n int64
	for chunk := 1; ; chunk++ {
		// A multi-gigabyte file takes minutes: stop early when it was
		// written to or evicted meanwhile (finish then sorts it out).
		if chunk%supersedeCheck == 0 && !r.current(j) {
			return "", nil, errSuperseded
		}
		m, rerr := f.Read(buf)
		if m > 0 {
			h.Write(buf[:m])
			n += int64(m)
			r.c.hashedBytes.Add(uint64(m))
			if err := p.wait(ctx, m); err != nil {
				return "", nil, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", nil, fmt.Errorf("read %s: %w", f.Name(), rerr)
		}
	}
	after, err := f.Stat()
	if err != nil {
		return "", nil, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) || n != after.Size() {
		return "", nil, fmt.Errorf("%s: %w", f.Name(), ErrChanged)
	}
	return hex.EncodeToString(h.Sum(nil)), after, nil
}

// open tries the job's paths through the roots of its loaders (newest
// first), then in the sensor's own root for host loaders, and returns the
// first regular file whose identity matches (see openInRoot).
func (r *Registry) open(j hashJob) (*os.File, os.FileInfo, error) {
	type cand struct{ root, path string }
	var cands []cand
	host := len(j.loaders) == 0
	for i := len(j.loaders) - 1; i >= 0; i-- {
		l := j.loaders[i]
		if l.ContainerID == "" {
			host = true
		}
		if l.PID == 0 {
			continue
		}
		root := filepath.Join(r.opts.ProcRoot, strconv.FormatUint(uint64(l.PID), 10), "root")
		for _, p := range j.paths {
			if filepath.IsAbs(p) {
				cands = append(cands, cand{root, p})
			}
		}
	}
	if host {
		for _, p := range j.paths {
			if filepath.IsAbs(p) {
				cands = append(cands, cand{"/", p})
			}
		}
	}
	if len(cands) == 0 {
		return nil, nil, errors.New("open model file: no absolute path to open")
	}
	var first error
	for _, c := range cands {
		f, fi, err := openInRoot(c.root, c.path, j.dev, j.inode)
		if err == nil {
			return f, fi, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, nil, first
}

// ErrNoOpenat2 is returned, and nothing is opened, where the kernel has no
// openat2(2) (before 5.6, or hidden by a seccomp profile that answers
// ENOSYS): without RESOLVE_IN_ROOT a container's symlink could point the
// sensor at any file or device of the host, so there is no fallback.
var ErrNoOpenat2 = errors.New("openat2 with RESOLVE_IN_ROOT is unavailable (kernel before 5.6, or ENOSYS from seccomp): refusing to open files on behalf of a container without it")

// openat2 is unix.Openat2; tests replace it to play an old kernel.
var openat2 = unix.Openat2

// selfFD is where the hasher reopens a file it holds as an O_PATH
// descriptor: the sensor's own procfs, whatever ProcRoot says.
const selfFD = "/proc/self/fd/"

// openInRoot opens name, a path as the loader saw it, for reading inside the
// directory root (<proc>/<pid>/root of a loader, or / for the host), and
// returns the file only if it is a regular file with the observed identity.
//
// The path is resolved by the kernel with RESOLVE_IN_ROOT, so absolute
// symlinks and ".." stay inside root: a container cannot point the sensor
// at a host file. RESOLVE_NO_MAGICLINKS refuses /proc/<pid>/fd and
// /proc/<pid>/root links on the way, which would leave root. RESOLVE_NO_XDEV
// is not used: model volumes are mounts inside the container's root.
//
// The first open is O_PATH, which runs no driver code and generates no
// fsnotify event; the type and identity are checked on it with fstat, and
// only a regular file with the observed dev and inode is then reopened for
// reading through /proc/self/fd (the same inode, pinned by the O_PATH
// descriptor). A device node, FIFO or socket is therefore never opened.
func openInRoot(root, name string, dev, inode uint64) (*os.File, os.FileInfo, error) {
	display := filepath.Join(root, name)
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open model file: open root %s: %w", root, err)
	}
	defer unix.Close(rootFD)
	pathFD, err := openat2(rootFD, name, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	switch {
	case errors.Is(err, unix.ENOSYS):
		return nil, nil, fmt.Errorf("open model file %s: %w", display, ErrNoOpenat2)
	case err != nil:
		return nil, nil, fmt.Errorf("open model file %s: %w", display, err)
	}
	defer unix.Close(pathFD)
	var st unix.Stat_t
	if err := unix.Fstat(pathFD, &st); err != nil {
		return nil, nil, fmt.Errorf("stat model file %s: %w", display, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil, fmt.Errorf("open model file %s: not a regular file (mode %#o): not opened", display, st.Mode)
	}
	if err := checkIdentity(display, &st, dev, inode); err != nil {
		return nil, nil, err
	}
	// O_NONBLOCK and O_NOCTTY cost nothing on a regular file and keep the
	// open harmless should the inode ever not be one.
	fd, err := unix.Open(selfFD+strconv.Itoa(pathFD), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open model file %s: reopen for reading: %w", display, err)
	}
	f := os.NewFile(uintptr(fd), display)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat model file %s: %w", display, err)
	}
	if rst, ok := fi.Sys().(*syscall.Stat_t); !ok || rst.Ino != st.Ino || rst.Dev != st.Dev || !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("open model file %s: reopened descriptor is not the checked file", display)
	}
	return f, fi, nil
}

// checkIdentity accepts st when the kernel reported no identity (inode 0)
// or when it is the observed inode (and device, when one was observed).
func checkIdentity(name string, st *unix.Stat_t, dev, inode uint64) error {
	if inode == 0 {
		return nil
	}
	if st.Ino != inode || dev != 0 && !devMatch(dev, st.Dev) {
		return fmt.Errorf("open model file %s: identity %d:%d is not the observed %d:%d", name, st.Dev, st.Ino, dev, inode)
	}
	return nil
}

// devMatch compares an observed device number, in the user-space encoding of
// stat(2) or the kernel's internal MKDEV encoding (major<<20|minor, what a
// BPF program reads from the superblock), with st_dev.
func devMatch(observed, stDev uint64) bool {
	if observed == stDev {
		return true
	}
	major := (stDev>>8)&0xfff | (stDev>>32)&^0xfff
	minor := stDev&0xff | (stDev>>12)&^0xff
	return observed == major<<20|minor
}

// pacer is a token bucket over bytes: wait blocks until n more bytes fit the
// rate, allowing bursts of one chunk.
type pacer struct {
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

func newPacer(rate float64, burst int) *pacer {
	return &pacer{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

func (p *pacer) wait(ctx context.Context, n int) error {
	now := time.Now()
	p.tokens += now.Sub(p.last).Seconds() * p.rate
	if p.tokens > p.burst {
		p.tokens = p.burst
	}
	p.last = now
	p.tokens -= float64(n)
	if p.tokens >= 0 {
		return nil
	}
	d := time.Duration(-p.tokens / p.rate * float64(time.Second))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
