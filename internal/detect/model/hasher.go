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
)

// Run hashes queued files until ctx is done, reading at most HashRate bytes
// per second across all files. Call it once, from its own goroutine; it is
// the only place the registry does file I/O. It returns nil when ctx is done.
//
// A file is opened through /proc/<pid>/root of a process that opened it, so
// container paths resolve in the container's mount namespace, and accepted
// only when its inode (and device) match what the kernel reported.
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
// first), then directly for host loaders, and returns the first regular file
// whose identity matches.
func (r *Registry) open(j hashJob) (*os.File, os.FileInfo, error) {
	var cands []string
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
				cands = append(cands, filepath.Join(root, p))
			}
		}
	}
	if host {
		for _, p := range j.paths {
			if filepath.IsAbs(p) {
				cands = append(cands, p)
			}
		}
	}
	if len(cands) == 0 {
		return nil, nil, errors.New("open model file: no absolute path to open")
	}
	var first error
	for _, c := range cands {
		f, fi, err := openVerified(c, j.dev, j.inode)
		if err == nil {
			return f, fi, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, nil, first
}

func openVerified(name string, dev, inode uint64) (*os.File, os.FileInfo, error) {
	// O_NONBLOCK: a FIFO named like a model must not hang the hasher.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open model file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat model file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("open model file %s: not a regular file", name)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && inode != 0 {
		if uint64(st.Ino) != inode || dev != 0 && !devMatch(dev, uint64(st.Dev)) {
			f.Close()
			return nil, nil, fmt.Errorf("open model file %s: identity %d:%d is not the observed %d:%d",
				name, st.Dev, st.Ino, dev, inode)
		}
	}
	return f, fi, nil
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
