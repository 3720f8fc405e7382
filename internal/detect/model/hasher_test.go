package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openWatch reports every open of the files it watches (inotify IN_OPEN; an
// O_PATH descriptor raises none, a real open does).
type openWatch struct {
	fd    int
	names map[int]string
}

func newOpenWatch(t *testing.T, paths ...string) *openWatch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	w := &openWatch{fd: fd, names: map[int]string{}}
	for _, p := range paths {
		wd, err := unix.InotifyAddWatch(fd, p, unix.IN_OPEN|unix.IN_ACCESS|unix.IN_DONT_FOLLOW)
		if err != nil {
			t.Fatalf("watch %s: %v", p, err)
		}
		w.names[wd] = p
	}
	return w
}

// opened returns the watched paths opened or read since the watch began.
func (w *openWatch) opened() []string {
	var out []string
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(w.fd, buf)
		if n <= 0 || err != nil {
			return out
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			wd := int(int32(le32(buf[off:])))
			nameLen := int(le32(buf[off+12:]))
			out = append(out, w.names[wd])
			off += unix.SizeofInotifyEvent + nameLen
		}
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// The files these tests watch are named *.dat, which no sensor watches by
// default: other sensors running on the same host must not register and
// hash them (their opens would show in the inotify watch).

// TestHasherStaysInContainerRoot: a container's model path that is a
// symlink to a host file or device, or that is itself a device node or
// FIFO, is never opened by the hasher, even when the observed identity is
// the host file's (what a plain open of /proc/<pid>/root/<path> followed).
func TestHasherStaysInContainerRoot(t *testing.T) {
	dir := t.TempDir()
	hostDir := filepath.Join(dir, "host")
	os.MkdirAll(hostDir, 0o755)
	hostFile, hostObs, _ := writeModel(t, hostDir, "secret.dat", 1<<16)
	hostFifo := filepath.Join(hostDir, "device.dat")
	if err := unix.Mkfifo(hostFifo, 0o600); err != nil {
		t.Fatal(err)
	}

	// A fake procfs: <proc>/4242/root is the container's root directory.
	const pid = 4242
	proc := filepath.Join(dir, "proc")
	root := filepath.Join(proc, "4242", "root")
	models := filepath.Join(root, "models")
	os.MkdirAll(models, 0o755)
	link := func(name, target string) string {
		p := filepath.Join(models, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return "/models/" + name
	}
	ctrFifo := filepath.Join(models, "fifo.dat")
	if err := unix.Mkfifo(ctrFifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ctrFifoObs := observe(t, ctrFifo)

	tests := []struct {
		name    string
		path    string      // as the container process saw it
		obs     Observation // identity the kernel reported
		host    bool        // a host loader (root "/")
		watch   string
		wantErr string
	}{
		{"absolute symlink to a host file", link("abs.dat", hostFile), hostObs, false, hostFile, "no such file"},
		{"relative symlink climbing out of the root", link("rel.dat", strings.Repeat("../", 12)+hostFile[1:]), hostObs, false, hostFile, "no such file"},
		{"absolute symlink to a host FIFO (a device stand-in)", link("dev.dat", hostFifo), observe(t, hostFifo), false, hostFifo, "no such file"},
		{"FIFO in the container", "/models/fifo.dat", ctrFifoObs, false, ctrFifo, "not a regular file"},
		{"magic link through /proc/self/root", "/proc/self/root" + hostFile, hostObs, true, hostFile, "too many levels of symbolic links"},
	}
	if os.Geteuid() == 0 {
		dev := filepath.Join(models, "null.dat")
		if err := unix.Mknod(dev, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatalf("mknod: %v", err)
		}
		tests = append(tests, struct {
			name    string
			path    string
			obs     Observation
			host    bool
			watch   string
			wantErr string
		}{"character device in the container", "/models/null.dat", observe(t, dev), false, dev, "not a regular file"})
	} else {
		t.Log("not root: the character-device case is left out (mknod); the FIFO cases stand in")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newOpenWatch(t, tt.watch)
			r := newTestRegistry(t, &RegistryOptions{HashRate: 1 << 30, ProcRoot: proc})
			runHasher(t, r)
			o := tt.obs
			o.Path, o.RawPath, o.PID, o.ContainerID = tt.path, tt.path, pid, "c1"
			if tt.host {
				o.PID, o.ContainerID = 0, ""
			}
			r.Observe(o)
			e := waitHash(t, r, KeyOf(o.Dev, o.Inode, o.Path), hashed)
			if e.SHA256 != "" || !strings.Contains(e.HashError, tt.wantErr) {
				t.Fatalf("got sha256 %q, error %q; want no hash and %q", e.SHA256, e.HashError, tt.wantErr)
			}
			if got := w.opened(); len(got) > 0 {
				t.Fatalf("the hasher opened %v", got)
			}
		})
	}

	// Symlinks that stay inside the root are followed (the Hugging Face
	// cache links snapshots to blobs), and the file is hashed.
	_, blobObs, want := writeModel(t, models, "blob", 1<<16)
	o := blobObs
	o.Path = link("snapshot.dat", "/models/blob")
	o.RawPath, o.PID, o.ContainerID = o.Path, pid, "c1"
	r := newTestRegistry(t, &RegistryOptions{HashRate: 1 << 30, ProcRoot: proc})
	runHasher(t, r)
	r.Observe(o)
	if e := waitHash(t, r, KeyOf(o.Dev, o.Inode, o.Path), hashed); e.SHA256 != want {
		t.Fatalf("in-root symlink: got sha256 %q, error %q; want %s", e.SHA256, e.HashError, want)
	}
}

// Without openat2 (kernels before 5.6) the hasher refuses: there is no
// fallback that would follow a container's links.
func TestHasherRefusesWithoutOpenat2(t *testing.T) {
	defer func(f func(int, string, *unix.OpenHow) (int, error)) { openat2 = f }(openat2)
	openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, unix.ENOSYS }
	dir := t.TempDir()
	p, o, _ := writeModel(t, dir, "m.dat", 4096)
	w := newOpenWatch(t, p)
	r := newTestRegistry(t, &RegistryOptions{HashRate: 1 << 30})
	runHasher(t, r)
	r.Observe(o)
	e := waitHash(t, r, KeyOf(o.Dev, o.Inode, o.Path), hashed)
	if e.SHA256 != "" || !strings.Contains(e.HashError, "refusing") {
		t.Fatalf("got sha256 %q, error %q; want a refusal naming openat2", e.SHA256, e.HashError)
	}
	if got := w.opened(); len(got) > 0 {
		t.Fatalf("the hasher opened %v", got)
	}
}
