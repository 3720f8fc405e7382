package model

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Registry defaults.
const (
	DefaultMaxFiles   = 4096
	DefaultQueueLen   = 256
	DefaultHashRate   = 64 << 20 // bytes per second
	DefaultMaxPaths   = 4
	DefaultMaxUsers   = 8
	DefaultRevalidate = 10 * time.Minute
	maxHashAttempts   = 3
	defaultChunkSize  = 256 << 10
)

// Key identifies a model file: by device and inode when the kernel reported
// them, else by path.
type Key struct {
	Dev   uint64
	Inode uint64
	// Path is set only when Inode is zero.
	Path string
}

// KeyOf returns the key of a file with the given identity.
func KeyOf(dev, inode uint64, path string) Key {
	if inode != 0 {
		return Key{Dev: dev, Inode: inode}
	}
	return Key{Path: path}
}

// String renders k as "dev:inode" or as its path.
func (k Key) String() string {
	if k.Inode != 0 {
		return strconv.FormatUint(k.Dev, 10) + ":" + strconv.FormatUint(k.Inode, 10)
	}
	return k.Path
}

// Observation is one open of a model file, as the engine saw it.
type Observation struct {
	// Time is the event time (not the wall clock).
	Time time.Time
	// Path is the resolved absolute path; RawPath is what the process passed.
	Path, RawPath string
	// Size is the file size, or -1 when unknown.
	Size       int64
	Dev, Inode uint64
	// PID is the host tgid of the opener; Exe its executable.
	PID uint32
	Exe string
	// ContainerID is "" for host processes.
	ContainerID string
	// GPUOwner is set when the opener owns GPU memory: it becomes an owner
	// of the file.
	GPUOwner bool
	// Write is set for opens that write, create or truncate: the file's hash
	// is stale.
	Write bool
}

// ObservationOf builds the Observation of an open event. It returns false
// for events that are not successful opens.
func ObservationOf(ev *event.Event) (Observation, bool) {
	if ev == nil || ev.Kind != event.KindOpen || ev.File == nil || ev.File.Result < 0 {
		return Observation{}, false
	}
	f := ev.File
	o := Observation{
		Time: ev.Time, Path: f.Path, RawPath: f.RawPath, Size: f.Size, Dev: f.Dev, Inode: f.Inode,
		Write: f.IsWrite(),
	}
	if p := ev.Process; p != nil {
		o.PID, o.Exe, o.GPUOwner = p.PID, p.Exe, p.GPUOwner
	}
	if c := ev.Container; c != nil {
		o.ContainerID = c.ID
	}
	return o, true
}

// User is a process that opened or owns a model file.
type User struct {
	PID         uint32
	Exe         string
	ContainerID string
	// Time is when it first opened the file (loaders) or became an owner.
	Time time.Time
}

// Entry is a snapshot of one registered model file.
type Entry struct {
	Key Key
	// Paths are the distinct paths the file was opened by, first first.
	Paths      []string
	Size       int64
	Dev, Inode uint64
	FirstSeen  time.Time
	LastSeen   time.Time
	Opens      uint64
	// FirstLoader is the first process seen opening the file.
	FirstLoader User
	// Owners are the GPU-owning processes that used the file.
	Owners []User
	// Loaders are the most recent distinct openers, newest last.
	Loaders []User
	// SHA256 is hex, or "" while the hash is pending or failed.
	SHA256   string
	HashedAt time.Time
	// HashError says why the last hash attempt failed, or "".
	HashError string
}

// ModelFile returns e in the event vocabulary.
func (e *Entry) ModelFile() event.ModelFile {
	mf := event.ModelFile{Size: e.Size, Inode: e.Inode, Dev: e.Dev, SHA256: e.SHA256,
		FirstLoader: e.FirstLoader.PID, FirstSeen: e.FirstSeen}
	if len(e.Paths) > 0 {
		mf.Path = e.Paths[0]
	}
	return mf
}

// RegistryOptions are the optional settings of a Registry. Zero fields select
// the defaults.
type RegistryOptions struct {
	// MaxFiles bounds the number of files kept; the least recently opened is
	// evicted beyond it.
	MaxFiles int
	// QueueLen bounds the hash queue; observations that find it full are
	// counted as hash drops and retried on the file's next open.
	QueueLen int
	// HashRate is the hasher's read budget in bytes per second.
	HashRate int64
	// MaxPaths and MaxUsers bound the paths, owners and loaders kept per file.
	MaxPaths, MaxUsers int
	// NoHash disables hashing: Run returns at once.
	NoHash bool
	// RevalidateEvery is how often the hasher stats the files it hashed, to
	// catch changes it did not see opened for writing (a writer that opened
	// the file before the sensor started, say). Zero selects
	// DefaultRevalidate; a negative value turns revalidation off.
	RevalidateEvery time.Duration
	// ProcRoot is where procfs is mounted (default /proc); the hasher opens
	// container files through <ProcRoot>/<pid>/root.
	ProcRoot string
	// Logger receives hash failures at debug level; nil means slog.Default().
	Logger *slog.Logger
	// OnIdentity, when set, is told of every file with a device and inode
	// that the registry adds (add) or evicts (remove), outside its lock
	// and on the goroutine that observed it: the sensor keeps the kernel's
	// set of model files by identity from it, so that a hard link, a
	// rename or a bind mount of a registered file is still reported.
	OnIdentity func(add, remove []Key)
}

// Counters are the Registry's running totals.
type Counters struct {
	Observed     uint64 // Observe calls
	Added        uint64 // files registered
	Evicted      uint64 // files evicted by the LRU limit
	HashQueued   uint64 // hash jobs enqueued
	HashDropped  uint64 // hash jobs dropped because the queue was full
	HashStale    uint64 // hash jobs whose file was evicted or changed before hashing
	Revalidated  uint64 // hashed files found changed by revalidation
	Hashed       uint64 // hashes completed
	HashErrors   uint64 // hash attempts that failed
	HashedBytes  uint64 // bytes read by the hasher
	PathsDropped uint64 // paths not kept because a file had MaxPaths already
	UsersDropped uint64 // owners and loaders pushed out by MaxUsers
}

// Map returns c as named counters for event.Status, prefixed "model_".
func (c Counters) Map() map[string]uint64 {
	return map[string]uint64{
		"model_observed": c.Observed, "model_added": c.Added, "model_evicted": c.Evicted,
		"model_hash_queued": c.HashQueued, "model_hash_dropped": c.HashDropped, "model_hash_stale": c.HashStale,
		"model_revalidated": c.Revalidated,
		"model_hashed":      c.Hashed, "model_hash_errors": c.HashErrors, "model_hashed_bytes": c.HashedBytes,
		"model_paths_dropped": c.PathsDropped, "model_users_dropped": c.UsersDropped,
	}
}

type hashState uint8

const (
	hashPending hashState = iota // needs a hash
	hashDone
	hashFailed
)

// entry is the registry's record; prev and next link the LRU list (head is
// the most recently used).
type entry struct {
	Entry
	prev, next *entry
	state      hashState
	queued     bool
	gen        uint64 // bumped whenever the content may have changed
	attempts   int
	// hashedSize and hashedMtime are the file's stat when it was hashed.
	hashedSize  int64
	hashedMtime time.Time
}

// Registry keeps the model files this node has seen opened.
//
// Observe is cheap and never blocks on I/O: hashing happens in Run, which
// reads at most HashRate bytes per second. The registry is bounded by
// MaxFiles with least-recently-opened eviction.
//
// It is safe for concurrent use by multiple goroutines.
type Registry struct {
	opts  RegistryOptions
	log   *slog.Logger
	queue chan Key

	mu         sync.Mutex
	files      map[Key]*entry
	head, tail *entry

	c struct {
		observed, added, evicted, hashQueued, hashDropped, hashStale, revalidated, hashed, hashErrors, hashedBytes,
		pathsDropped, usersDropped atomic.Uint64
	}
}

// NewRegistry returns an empty Registry. opts may be nil.
func NewRegistry(opts *RegistryOptions) (*Registry, error) {
	var o RegistryOptions
	if opts != nil {
		o = *opts
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max_files", int64(o.MaxFiles)}, {"queue_len", int64(o.QueueLen)}, {"hash_rate", o.HashRate},
		{"max_paths", int64(o.MaxPaths)}, {"max_users", int64(o.MaxUsers)},
	} {
		if f.v < 0 {
			return nil, fmt.Errorf("model registry: %s is %d; want a positive value or 0 for the default", f.name, f.v)
		}
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.MaxFiles, DefaultMaxFiles)
	def(&o.QueueLen, DefaultQueueLen)
	def(&o.MaxPaths, DefaultMaxPaths)
	def(&o.MaxUsers, DefaultMaxUsers)
	if o.HashRate == 0 {
		o.HashRate = DefaultHashRate
	}
	if o.RevalidateEvery == 0 {
		o.RevalidateEvery = DefaultRevalidate
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	r := &Registry{opts: o, log: o.Logger, queue: make(chan Key, o.QueueLen), files: make(map[Key]*entry)}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r, nil
}

// Observe records an open of a model file. It takes a short lock, enqueues a
// hash job without waiting (a full queue is counted and retried on the next
// open), and allocates only when the file or one of its users is new.
func (r *Registry) Observe(o Observation) {
	r.c.observed.Add(1)
	k := KeyOf(o.Dev, o.Inode, o.Path)
	if k.Inode == 0 && k.Path == "" {
		k.Path = o.RawPath
		if k.Path == "" {
			return
		}
	}
	r.mu.Lock()
	e := r.files[k]
	if e == nil {
		evicted := r.makeRoom()
		e = r.insert(k, o)
		r.observe(e, o)
		r.mu.Unlock()
		if f := r.opts.OnIdentity; f != nil {
			var added []Key
			if k.Inode != 0 {
				added = []Key{k}
			}
			if len(added) > 0 || len(evicted) > 0 {
				f(added, evicted)
			}
		}
		return
	}
	r.moveToFront(e)
	r.observe(e, o)
	r.mu.Unlock()
}

// observe records o on e, under r.mu.
func (r *Registry) observe(e *entry, o Observation) {
	e.Opens++
	if o.Time.After(e.LastSeen) {
		e.LastSeen = o.Time
	}
	r.addPath(e, o.Path)
	// A raw path names the file too (a Hugging Face snapshot name, say),
	// unless it is relative or a /proc alias of some process's fd or root.
	if len(o.RawPath) > 0 && o.RawPath[0] == '/' && !strings.HasPrefix(o.RawPath, "/proc/") {
		r.addPath(e, o.RawPath)
	}
	u := User{PID: o.PID, Exe: o.Exe, ContainerID: o.ContainerID, Time: o.Time}
	if r.addUser(&e.Loaders, u) && e.state == hashFailed {
		// A new opener is a new way in (its /proc/<pid>/root): try again.
		e.state, e.attempts = hashPending, 0
	}
	if o.GPUOwner {
		r.addUser(&e.Owners, u)
	}
	if o.Size >= 0 && o.Size != e.Size {
		if e.Size >= 0 {
			r.invalidate(e)
		}
		e.Size = o.Size
	}
	if o.Write {
		r.invalidate(e)
	}
	if e.state == hashPending && !e.queued && !r.opts.NoHash {
		r.enqueue(e)
	}
}

// makeRoom evicts the least recently opened files until one more fits,
// and returns the keys of those with an inode.
func (r *Registry) makeRoom() []Key {
	var gone []Key
	for len(r.files) >= r.opts.MaxFiles && r.tail != nil {
		old := r.tail
		r.unlink(old)
		delete(r.files, old.Key)
		r.c.evicted.Add(1)
		if old.Key.Inode != 0 {
			gone = append(gone, old.Key)
		}
	}
	return gone
}

func (r *Registry) insert(k Key, o Observation) *entry {
	e := &entry{}
	e.Key, e.Size, e.Dev, e.Inode = k, o.Size, o.Dev, o.Inode
	e.FirstSeen, e.LastSeen = o.Time, o.Time
	e.FirstLoader = User{PID: o.PID, Exe: o.Exe, ContainerID: o.ContainerID, Time: o.Time}
	e.Paths = make([]string, 0, 2)
	r.files[k] = e
	r.pushFront(e)
	r.c.added.Add(1)
	return e
}

func (r *Registry) invalidate(e *entry) {
	e.gen++
	e.attempts = 0
	if e.state != hashPending {
		e.state = hashPending
	}
}

func (r *Registry) enqueue(e *entry) {
	select {
	case r.queue <- e.Key:
		e.queued = true
		r.c.hashQueued.Add(1)
	default:
		r.c.hashDropped.Add(1)
	}
}

func (r *Registry) addPath(e *entry, p string) {
	if p == "" {
		return
	}
	for _, q := range e.Paths {
		if q == p {
			return
		}
	}
	if len(e.Paths) >= r.opts.MaxPaths {
		r.c.pathsDropped.Add(1)
		return
	}
	e.Paths = append(e.Paths, p)
}

// addUser adds u to list unless the same (pid, container) is there, and
// reports whether it did; the oldest is pushed out beyond MaxUsers.
func (r *Registry) addUser(list *[]User, u User) bool {
	for _, v := range *list {
		if v.PID == u.PID && v.ContainerID == u.ContainerID {
			return false
		}
	}
	if len(*list) >= r.opts.MaxUsers {
		copy(*list, (*list)[1:])
		*list = (*list)[:len(*list)-1]
		r.c.usersDropped.Add(1)
	}
	*list = append(*list, u)
	return true
}

func (r *Registry) pushFront(e *entry) {
	e.prev, e.next = nil, r.head
	if r.head != nil {
		r.head.prev = e
	}
	r.head = e
	if r.tail == nil {
		r.tail = e
	}
}

func (r *Registry) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		r.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		r.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (r *Registry) moveToFront(e *entry) {
	if r.head == e {
		return
	}
	r.unlink(e)
	r.pushFront(e)
}

// MarkOwner records that the process pid of container containerID owns GPU
// memory since at: every registered file it opened (among each file's recent
// loaders) and that it did not own yet gains it as an owner. It returns how
// many files did. Call it on
// a GPU owner start; it walks the whole registry.
func (r *Registry) MarkOwner(pid uint32, containerID string, at time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for e := r.head; e != nil; e = e.next {
		for _, l := range e.Loaders {
			if l.PID == pid && l.ContainerID == containerID {
				if !hasUser(e.Owners, pid, containerID) {
					r.addUser(&e.Owners, User{PID: pid, Exe: l.Exe, ContainerID: containerID, Time: at})
					n++
				}
				break
			}
		}
	}
	return n
}

// IsOwner reports whether the file k is owned by process pid, or by any
// process of containerID when pid is 0.
func (r *Registry) IsOwner(k Key, pid uint32, containerID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.files[k]
	if e == nil {
		return false
	}
	for _, o := range e.Owners {
		if o.ContainerID == containerID && (pid == 0 || o.PID == pid) {
			return true
		}
	}
	return false
}

// HasPath reports whether a registered file is known by path p (resolved
// or raw, as Observe recorded it). It walks the registry: call it on rare
// events only.
func (r *Registry) HasPath(p string) bool {
	if p == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for e := r.head; e != nil; e = e.next {
		if slices.Contains(e.Paths, p) || e.Key.Path == p {
			return true
		}
	}
	return false
}

// Get returns a snapshot of the file k.
func (r *Registry) Get(k Key) (Entry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.files[k]
	if e == nil {
		return Entry{}, false
	}
	return e.snapshot(), true
}

func (e *entry) snapshot() Entry {
	s := e.Entry
	s.Paths = slices.Clone(e.Paths)
	s.Owners = slices.Clone(e.Owners)
	s.Loaders = slices.Clone(e.Loaders)
	return s
}

// Len returns the number of registered files.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.files)
}

// Entries returns snapshots of every registered file, sorted by first path.
func (r *Registry) Entries() []Entry {
	r.mu.Lock()
	out := make([]Entry, 0, len(r.files))
	for e := r.head; e != nil; e = e.next {
		out = append(out, e.snapshot())
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(firstPath(a), firstPath(b)), cmp.Compare(a.Key.String(), b.Key.String()))
	})
	return out
}

func firstPath(e Entry) string {
	if len(e.Paths) > 0 {
		return e.Paths[0]
	}
	return ""
}

// Files returns every registered file in the event vocabulary, sorted by
// path.
func (r *Registry) Files() []event.ModelFile {
	es := r.Entries()
	out := make([]event.ModelFile, len(es))
	for i := range es {
		out[i] = es[i].ModelFile()
	}
	return out
}

// FilesOf returns the files that process pid of containerID opened or owns,
// sorted by path: the models of one owner in the AI bill of materials.
func (r *Registry) FilesOf(pid uint32, containerID string) []event.ModelFile {
	var out []event.ModelFile
	for _, e := range r.Entries() {
		if e.UsedBy(pid, containerID) {
			out = append(out, e.ModelFile())
		}
	}
	return out
}

// UsedBy reports whether process pid of containerID owns the file, loaded
// it, or opened it first.
func (e *Entry) UsedBy(pid uint32, containerID string) bool {
	return hasUser(e.Owners, pid, containerID) || hasUser(e.Loaders, pid, containerID) ||
		e.FirstLoader.PID == pid && e.FirstLoader.ContainerID == containerID
}

func hasUser(us []User, pid uint32, containerID string) bool {
	for _, u := range us {
		if u.PID == pid && u.ContainerID == containerID {
			return true
		}
	}
	return false
}

// Counters returns the running totals.
func (r *Registry) Counters() Counters {
	return Counters{
		Observed: r.c.observed.Load(), Added: r.c.added.Load(), Evicted: r.c.evicted.Load(),
		HashQueued: r.c.hashQueued.Load(), HashDropped: r.c.hashDropped.Load(), HashStale: r.c.hashStale.Load(),
		Revalidated: r.c.revalidated.Load(),
		Hashed:      r.c.hashed.Load(), HashErrors: r.c.hashErrors.Load(), HashedBytes: r.c.hashedBytes.Load(),
		PathsDropped: r.c.pathsDropped.Load(), UsersDropped: r.c.usersDropped.Load(),
	}
}

// ErrChanged is the hash error recorded when a file changed while it was
// being hashed more than a few times in a row.
var ErrChanged = errors.New("file changed while hashing")
