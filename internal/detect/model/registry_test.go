package model

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// writeModel writes size random bytes to dir/name and returns the path, the
// observation of opening it, and its sha256.
func writeModel(t *testing.T, dir, name string, size int) (string, Observation, string) {
	t.Helper()
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return p, observe(t, p), hex.EncodeToString(sum[:])
}

func observe(t *testing.T, p string) Observation {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return Observation{Time: t0, Path: p, RawPath: p, Size: st.Size, Dev: uint64(st.Dev), Inode: st.Ino,
		PID: uint32(os.Getpid()), Exe: "/usr/bin/python3"}
}

func newTestRegistry(t testing.TB, o *RegistryOptions) *Registry {
	t.Helper()
	r, err := NewRegistry(o)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return r
}

// runHasher starts r.Run and stops it when the test ends.
func runHasher(t *testing.T, r *Registry) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// waitHash waits until the entry for k has a hash or a hash error.
func waitHash(t *testing.T, r *Registry, k Key, cond func(Entry) bool) Entry {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if e, ok := r.Get(k); ok && cond(e) {
			return e
		}
		time.Sleep(5 * time.Millisecond)
	}
	e, _ := r.Get(k)
	t.Fatalf("timed out waiting for %s: %+v", k, e)
	return e
}

func hashed(e Entry) bool { return e.SHA256 != "" || e.HashError != "" }

func TestRegistryHash(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		mutate func(*Observation)
	}{
		{"host", func(o *Observation) {}},
		// A container process: the hasher goes through /proc/<pid>/root.
		{"container", func(o *Observation) { o.ContainerID = "c1" }},
		// The kernel's MKDEV device encoding, as BPF reads it from the superblock.
		{"kernel dev encoding", func(o *Observation) {
			major, minor := (o.Dev>>8)&0xfff, o.Dev&0xff|(o.Dev>>12)&^0xff
			o.Dev = major<<20 | minor
		}},
		// No inode: keyed by path.
		{"path key", func(o *Observation) { o.Dev, o.Inode = 0, 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRegistry(t, &RegistryOptions{HashRate: 1 << 30})
			runHasher(t, r)
			_, o, want := writeModel(t, dir, strings.ReplaceAll(tc.name, " ", "_")+".safetensors", 3<<20+17)
			tc.mutate(&o)
			r.Observe(o)
			e := waitHash(t, r, KeyOf(o.Dev, o.Inode, o.Path), hashed)
			if e.SHA256 != want || e.HashError != "" {
				t.Fatalf("got sha256 %q (error %q); want %s", e.SHA256, e.HashError, want)
			}
			if e.Size != 3<<20+17 {
				t.Errorf("got size %d; want %d", e.Size, 3<<20+17)
			}
			if c := r.Counters(); c.Hashed != 1 || c.HashedBytes != 3<<20+17 {
				t.Errorf("counters %+v; want Hashed 1, HashedBytes %d", c, 3<<20+17)
			}
		})
	}
}

func TestRegistryHashRefusesWrongFile(t *testing.T) {
	dir := t.TempDir()
	r := newTestRegistry(t, &RegistryOptions{HashRate: 1 << 30})
	runHasher(t, r)

	_, o, _ := writeModel(t, dir, "a.gguf", 2<<20)
	o.Inode += 1 << 40 // the path now names a different file than the kernel reported
	r.Observe(o)
	e := waitHash(t, r, KeyOf(o.Dev, o.Inode, o.Path), hashed)
	if e.SHA256 != "" || !strings.Contains(e.HashError, "identity") {
		t.Fatalf("got sha256 %q, error %q; want no hash and an identity error", e.SHA256, e.HashError)
	}

	fifo := filepath.Join(dir, "fifo.safetensors")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	fo := observe(t, fifo)
	r.Observe(fo)
	e = waitHash(t, r, KeyOf(fo.Dev, fo.Inode, fo.Path), hashed)
	if !strings.Contains(e.HashError, "not a regular file") {
		t.Fatalf("got error %q; want not a regular file", e.HashError)
	}
	if c := r.Counters(); c.HashErrors != 2 {
		t.Errorf("HashErrors = %d; want 2", c.HashErrors)
	}
}

func TestRegistryRehashAfterWrite(t *testing.T) {
	dir := t.TempDir()
	r := newTestRegistry(t, &RegistryOptions{HashRate: 1 << 30})
	runHasher(t, r)
	p, o, first := writeModel(t, dir, "m.pt", 2<<20)
	r.Observe(o)
	k := KeyOf(o.Dev, o.Inode, o.Path)
	waitHash(t, r, k, func(e Entry) bool { return e.SHA256 == first })

	// Overwrite in place (same inode), then report the write open.
	data := make([]byte, 2<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	second := hex.EncodeToString(sum[:])
	w := o
	w.Write, w.Size = true, -1
	r.Observe(w)
	waitHash(t, r, k, func(e Entry) bool { return e.SHA256 == second })

	// A size change seen on a later open also re-hashes.
	data = append(data, 1, 2, 3)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum = sha256.Sum256(data)
	third := hex.EncodeToString(sum[:])
	o.Size = int64(len(data))
	r.Observe(o)
	e := waitHash(t, r, k, func(e Entry) bool { return e.SHA256 == third })
	if e.Size != int64(len(data)) {
		t.Errorf("size %d; want %d", e.Size, len(data))
	}
}

// TestRegistryRateLimit measures the hasher against HashRate: 4 MiB at
// 8 MiB/s with a 256 KiB burst takes at least ~0.47 s.
func TestRegistryRateLimit(t *testing.T) {
	dir := t.TempDir()
	const rate = 8 << 20
	r := newTestRegistry(t, &RegistryOptions{HashRate: rate})
	var keys []Key
	var want []string
	for i := 0; i < 2; i++ {
		_, o, sum := writeModel(t, dir, fmt.Sprintf("shard-%d.safetensors", i), 2<<20)
		r.Observe(o)
		keys = append(keys, KeyOf(o.Dev, o.Inode, o.Path))
		want = append(want, sum)
	}
	start := time.Now()
	runHasher(t, r)
	for i, k := range keys {
		if e := waitHash(t, r, k, hashed); e.SHA256 != want[i] {
			t.Fatalf("file %d: got %q (%q); want %s", i, e.SHA256, e.HashError, want[i])
		}
	}
	elapsed := time.Since(start)
	const total = 4 << 20
	minimum := time.Duration(float64(total-defaultChunkSize) / rate * float64(time.Second))
	t.Logf("hashed %d bytes in %v at a limit of %d B/s (floor %v)", total, elapsed, rate, minimum)
	if elapsed < minimum*9/10 {
		t.Errorf("hashed %d bytes in %v; the limit allows no less than %v", total, elapsed, minimum)
	}
	if elapsed > 10*minimum {
		t.Errorf("hashed %d bytes in %v; want well under %v", total, elapsed, 10*minimum)
	}
}

// TestRegistryBounded floods the registry with 100k distinct files, as a
// container opening everything would, and checks that it stays within
// MaxFiles and the hash queue, counting every eviction and drop.
func TestRegistryBounded(t *testing.T) {
	const n, max, qlen = 100_000, 1000, 64
	r := newTestRegistry(t, &RegistryOptions{MaxFiles: max, QueueLen: qlen})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		o := Observation{Time: t0.Add(time.Duration(i)), Path: fmt.Sprintf("/models/c/f%06d.safetensors", i),
			Size: 2 << 20, Dev: 42, Inode: uint64(i + 1), PID: uint32(1000 + i%50), ContainerID: "c"}
		if i%2 == 1 {
			o.Inode = 0 // half are keyed by path
		}
		r.Observe(o)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := r.Len(); got != max {
		t.Errorf("Len() = %d; want %d", got, max)
	}
	c := r.Counters()
	if c.Added != n || c.Evicted != n-max || c.Observed != n {
		t.Errorf("counters %+v; want Added %d, Evicted %d, Observed %d", c, n, n-max, n)
	}
	if c.HashQueued != qlen || c.HashDropped != n-qlen {
		t.Errorf("HashQueued %d, HashDropped %d; want %d, %d", c.HashQueued, c.HashDropped, qlen, n-qlen)
	}
	// The most recent files survive; the first are gone.
	if _, ok := r.Get(KeyOf(42, 1, "")); ok {
		t.Error("first file still registered")
	}
	last := fmt.Sprintf("/models/c/f%06d.safetensors", n-1)
	if _, ok := r.Get(KeyOf(0, 0, last)); !ok {
		t.Errorf("last file %s not registered", last)
	}
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap held after %d distinct files: %d KiB (%d files kept)", n, held/1024, r.Len())
	if held > 8<<20 {
		t.Errorf("registry holds %d bytes of heap for %d files; want under 8 MiB", held, max)
	}
	runtime.KeepAlive(r)
}

func TestRegistryQueueDropRetried(t *testing.T) {
	dir := t.TempDir()
	r := newTestRegistry(t, &RegistryOptions{QueueLen: 1, HashRate: 1 << 30})
	_, a, wantA := writeModel(t, dir, "a.gguf", 2<<20)
	_, b, wantB := writeModel(t, dir, "b.gguf", 2<<20)
	r.Observe(a)
	r.Observe(b) // queue full: dropped, counted
	if c := r.Counters(); c.HashDropped != 1 {
		t.Fatalf("HashDropped = %d; want 1", c.HashDropped)
	}
	runHasher(t, r)
	ka, kb := KeyOf(a.Dev, a.Inode, a.Path), KeyOf(b.Dev, b.Inode, b.Path)
	waitHash(t, r, ka, func(e Entry) bool { return e.SHA256 == wantA })
	if e, _ := r.Get(kb); e.SHA256 != "" {
		t.Fatal("b hashed although its job was dropped")
	}
	r.Observe(b) // the next open queues it again
	waitHash(t, r, kb, func(e Entry) bool { return e.SHA256 == wantB })
}

func TestRegistryOwners(t *testing.T) {
	r := newTestRegistry(t, &RegistryOptions{NoHash: true, MaxUsers: 3})
	w := Observation{Time: t0, Path: "/models/llama/model.safetensors", Size: 5 << 30, Dev: 1, Inode: 10}
	k := KeyOf(1, 10, "")

	// The init container downloads and verifies: a loader, not an owner.
	dl := w
	dl.PID, dl.Exe, dl.ContainerID = 100, "/usr/bin/python3", "init"
	r.Observe(dl)
	// The server opens the weights before it creates its CUDA context.
	srv := w
	srv.Time, srv.PID, srv.Exe, srv.ContainerID = t0.Add(time.Minute), 200, "/usr/bin/python3", "server"
	r.Observe(srv)
	if r.IsOwner(k, 200, "server") {
		t.Fatal("owner before any GPU ownership")
	}
	if n := r.MarkOwner(200, "server", t0.Add(2*time.Minute)); n != 1 {
		t.Fatalf("MarkOwner promoted %d files; want 1", n)
	}
	if n := r.MarkOwner(200, "server", t0.Add(3*time.Minute)); n != 0 {
		t.Fatalf("second MarkOwner promoted %d files; want 0", n)
	}
	// A GPU owner in another container opens it directly.
	gpu := w
	gpu.PID, gpu.ContainerID, gpu.GPUOwner = 300, "other", true
	r.Observe(gpu)

	e, ok := r.Get(k)
	if !ok {
		t.Fatal("file not registered")
	}
	if e.FirstLoader.PID != 100 || e.FirstLoader.ContainerID != "init" || !e.FirstSeen.Equal(t0) {
		t.Errorf("first loader %+v at %v; want pid 100 of init at %v", e.FirstLoader, e.FirstSeen, t0)
	}
	if len(e.Owners) != 2 || e.Owners[0].PID != 200 || e.Owners[1].PID != 300 {
		t.Errorf("owners %+v; want pids 200, 300", e.Owners)
	}
	for _, tc := range []struct {
		pid  uint32
		ctr  string
		want bool
	}{
		{200, "server", true}, {0, "server", true}, {100, "init", false}, {0, "init", false}, {300, "other", true},
		{300, "server", false},
	} {
		if got := r.IsOwner(k, tc.pid, tc.ctr); got != tc.want {
			t.Errorf("IsOwner(%d, %q) = %t; want %t", tc.pid, tc.ctr, got, tc.want)
		}
	}
	if fs := r.FilesOf(200, "server"); len(fs) != 1 || fs[0].Path != w.Path || fs[0].FirstLoader != 100 {
		t.Errorf("FilesOf(200) = %+v; want the one file, first loader 100", fs)
	}
	if fs := r.FilesOf(999, "server"); len(fs) != 0 {
		t.Errorf("FilesOf(999) = %+v; want none", fs)
	}
	// Users stay bounded, and what is pushed out is counted.
	for pid := uint32(400); pid < 405; pid++ {
		o := w
		o.PID = pid
		r.Observe(o)
	}
	e, _ = r.Get(k)
	if len(e.Loaders) != 3 || e.Loaders[2].PID != 404 {
		t.Errorf("loaders %+v; want the newest 3 ending with 404", e.Loaders)
	}
	if c := r.Counters(); c.UsersDropped == 0 {
		t.Error("UsersDropped = 0; want the pushed-out loaders counted")
	}
}

func TestRegistryPaths(t *testing.T) {
	r := newTestRegistry(t, &RegistryOptions{NoHash: true, MaxPaths: 2})
	blob := "/hf/hub/models--a--b/blobs/0123456789abcdef0123456789abcdef01234567"
	for _, raw := range []string{"/hf/hub/models--a--b/snapshots/r/model.safetensors", "relative.safetensors",
		"/proc/self/fd/9"} {
		r.Observe(Observation{Time: t0, Path: blob, RawPath: raw, Size: 2 << 20, Dev: 1, Inode: 7})
	}
	e, _ := r.Get(KeyOf(1, 7, ""))
	want := []string{blob, "/hf/hub/models--a--b/snapshots/r/model.safetensors"}
	if strings.Join(e.Paths, ",") != strings.Join(want, ",") {
		t.Errorf("paths %q; want %q", e.Paths, want)
	}
	if c := r.Counters(); c.PathsDropped != 0 {
		t.Errorf("PathsDropped = %d; want 0", c.PathsDropped)
	}
	r.Observe(Observation{Time: t0, Path: blob, RawPath: "/elsewhere/link", Size: 2 << 20, Dev: 1, Inode: 7})
	if c := r.Counters(); c.PathsDropped != 1 {
		t.Errorf("PathsDropped = %d; want 1", c.PathsDropped)
	}
	if e.Opens != 3 {
		t.Errorf("Opens = %d; want 3", e.Opens)
	}
	files := r.Files()
	if len(files) != 1 || files[0].Path != blob || files[0].Size != 2<<20 || files[0].Inode != 7 {
		t.Errorf("Files() = %+v", files)
	}
	for p, want := range map[string]bool{blob: true, "/hf/hub/models--a--b/snapshots/r/model.safetensors": true,
		"/elsewhere/link": false, "relative.safetensors": false, "": false} {
		if got := r.HasPath(p); got != want {
			t.Errorf("HasPath(%q) = %v; want %v", p, got, want)
		}
	}
}

func TestNewRegistryRejectsNegative(t *testing.T) {
	for _, o := range []RegistryOptions{{MaxFiles: -1}, {QueueLen: -1}, {HashRate: -5}, {MaxPaths: -1}, {MaxUsers: -2}} {
		if _, err := NewRegistry(&o); err == nil || !strings.Contains(err.Error(), "want a positive value") {
			t.Errorf("NewRegistry(%+v): got %v; want an error", o, err)
		}
	}
	if _, err := NewRegistry(nil); err != nil {
		t.Errorf("NewRegistry(nil): %v", err)
	}
}

func TestObservationOf(t *testing.T) {
	ev := &event.Event{Kind: event.KindOpen, Time: t0,
		Process:   &event.Process{PID: 7, Exe: "/bin/tar", GPUOwner: true},
		Container: &event.Container{ID: "abc"},
		File: &event.File{Path: "/models/x.gguf", RawPath: "x.gguf", Flags: event.OWronly | event.OTrunc,
			Result: 3, Size: -1, Inode: 9, Dev: 2}}
	o, ok := ObservationOf(ev)
	want := Observation{Time: t0, Path: "/models/x.gguf", RawPath: "x.gguf", Size: -1, Dev: 2, Inode: 9, PID: 7,
		Exe: "/bin/tar", ContainerID: "abc", GPUOwner: true, Write: true}
	if !ok || o != want {
		t.Errorf("ObservationOf = %+v, %t; want %+v", o, ok, want)
	}
	ev.File.Result = -13
	if _, ok := ObservationOf(ev); ok {
		t.Error("failed open accepted")
	}
	if _, ok := ObservationOf(&event.Event{Kind: event.KindExec}); ok {
		t.Error("exec accepted")
	}
}

// TestRegistryConcurrent runs the engine, the hasher and inventory readers
// together; run it with -race.
func TestRegistryConcurrent(t *testing.T) {
	dir := t.TempDir()
	r := newTestRegistry(t, &RegistryOptions{MaxFiles: 64, QueueLen: 16, HashRate: 1 << 30})
	var obs []Observation
	var sums = map[Key]string{}
	for i := 0; i < 8; i++ {
		_, o, s := writeModel(t, dir, fmt.Sprintf("m%d.gguf", i), 64<<10)
		obs = append(obs, o)
		sums[KeyOf(o.Dev, o.Inode, o.Path)] = s
	}
	runHasher(t, r)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(3)
	go func() { // engine
		defer wg.Done()
		for i := 0; i < 20000; i++ {
			o := obs[i%len(obs)]
			o.PID = uint32(100 + i%7)
			o.GPUOwner = i%5 == 0
			if i%3 == 0 {
				o = Observation{Time: t0, Path: fmt.Sprintf("/nowhere/%d.pt", i), Size: 2 << 20, PID: 1}
			}
			r.Observe(o)
		}
		close(stop)
	}()
	go func() { // GPU sampler
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r.MarkOwner(uint32(100+i%7), "", t0)
		}
	}()
	go func() { // inventory
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, e := range r.Entries() {
				r.Get(e.Key)
				r.IsOwner(e.Key, 0, "")
			}
			r.Files()
			r.FilesOf(100, "")
			r.Counters()
		}
	}()
	wg.Wait()
	for k, s := range sums {
		r.Observe(obs[0]) // keep the real files recent
		if e, ok := r.Get(k); ok && e.SHA256 != "" && e.SHA256 != s {
			t.Errorf("%s: sha256 %s; want %s", k, e.SHA256, s)
		}
	}
	if r.Len() > 64 {
		t.Errorf("Len() = %d; want ≤ 64", r.Len())
	}
}

func BenchmarkObserve(b *testing.B) {
	b.Run("existing", func(b *testing.B) {
		r := newTestRegistry(b, &RegistryOptions{NoHash: true})
		o := Observation{Time: t0, Path: "/models/llama/model-00001-of-00004.safetensors", Size: 5 << 30,
			Dev: 1, Inode: 2, PID: 10, ContainerID: "c"}
		r.Observe(o)
		b.ReportAllocs()
		for b.Loop() {
			r.Observe(o)
		}
	})
	b.Run("new_with_eviction", func(b *testing.B) {
		r := newTestRegistry(b, &RegistryOptions{MaxFiles: 1024, NoHash: true})
		o := Observation{Time: t0, Path: "/models/x.safetensors", Size: 5 << 30, Dev: 1, PID: 10, ContainerID: "c"}
		b.ReportAllocs()
		i := uint64(0)
		for b.Loop() {
			i++
			o.Inode = i
			r.Observe(o)
		}
	})
}

// TestRegistryRevalidate changes a hashed file behind the registry's back
// (no write open observed) and expects the periodic stat to re-hash it.
func TestRegistryRevalidate(t *testing.T) {
	dir := t.TempDir()
	r := newTestRegistry(t, &RegistryOptions{HashRate: 1 << 30, RevalidateEvery: 20 * time.Millisecond})
	runHasher(t, r)
	p, o, first := writeModel(t, dir, "m.onnx", 1<<20)
	r.Observe(o)
	k := KeyOf(o.Dev, o.Inode, o.Path)
	waitHash(t, r, k, func(e Entry) bool { return e.SHA256 == first })

	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tampered"), 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	second := hex.EncodeToString(sum[:])
	waitHash(t, r, k, func(e Entry) bool { return e.SHA256 == second })
	if c := r.Counters(); c.Revalidated != 1 || c.Hashed != 2 {
		t.Errorf("Revalidated %d, Hashed %d; want 1, 2", c.Revalidated, c.Hashed)
	}
}

// TestRegistryRetryWithNewLoader: the only loader exited before the hash, so
// its /proc/<pid>/root is gone; a later opener gives the hasher a way in.
func TestRegistryRetryWithNewLoader(t *testing.T) {
	dir := t.TempDir()
	r := newTestRegistry(t, &RegistryOptions{HashRate: 1 << 30})
	runHasher(t, r)
	_, o, want := writeModel(t, dir, "w.safetensors", 1<<20)
	o.ContainerID, o.PID = "c", 1<<22+12345 // above pid_max: no such process
	r.Observe(o)
	k := KeyOf(o.Dev, o.Inode, o.Path)
	e := waitHash(t, r, k, hashed)
	if e.SHA256 != "" || !strings.Contains(e.HashError, "no such file") {
		t.Fatalf("got %q, error %q; want a failure to open through the dead loader", e.SHA256, e.HashError)
	}
	r.Observe(o) // the same loader again: no retry
	if c := r.Counters(); c.HashQueued != 1 {
		t.Errorf("HashQueued = %d; want 1 (no retry for a known loader)", c.HashQueued)
	}
	o.PID = uint32(os.Getpid())
	r.Observe(o)
	if e := waitHash(t, r, k, func(e Entry) bool { return e.SHA256 != "" }); e.SHA256 != want || e.HashError != "" {
		t.Fatalf("got %q, error %q; want %s", e.SHA256, e.HashError, want)
	}
}

// TestRegistryWriteDuringHash: a write open observed while a slow hash runs
// stops that hash early, and the file is hashed again with its new content.
func TestRegistryWriteDuringHash(t *testing.T) {
	dir := t.TempDir()
	const size, rate = 4 << 20, 8 << 20
	r := newTestRegistry(t, &RegistryOptions{HashRate: rate})
	p, o, _ := writeModel(t, dir, "big.gguf", size)
	r.Observe(o)
	runHasher(t, r)
	for deadline := time.Now().Add(10 * time.Second); r.Counters().HashedBytes == 0; {
		if time.Now().After(deadline) {
			t.Fatal("hasher did not start")
		}
		time.Sleep(time.Millisecond)
	}

	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	w := o
	w.Write = true
	r.Observe(w)
	waitHash(t, r, KeyOf(o.Dev, o.Inode, o.Path), func(e Entry) bool { return e.SHA256 != "" })
	e, _ := r.Get(KeyOf(o.Dev, o.Inode, o.Path))
	if e.SHA256 != want {
		t.Fatalf("got %s; want the new content's %s", e.SHA256, want)
	}
	c := r.Counters()
	if c.HashStale != 1 || c.Hashed != 1 {
		t.Errorf("HashStale %d, Hashed %d; want 1, 1", c.HashStale, c.Hashed)
	}
	// Without the early stop the hasher would read the file twice.
	if c.HashedBytes >= 2*size-(1<<20) {
		t.Errorf("hasher read %d bytes; want the first pass cut short (< %d)", c.HashedBytes, 2*size-(1<<20))
	}
	t.Logf("read %d bytes for a %d-byte file written during its hash", c.HashedBytes, size)
}
