package main

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/config"
)

// TestRuntimeSockets: runtime sockets are known by their file, under any
// other name; a socket made after start is learned on its first lookup, a
// socket that is none of them is not, and misses do not re-read the files
// on every lookup.
func TestRuntimeSockets(t *testing.T) {
	dir := t.TempDir()
	listen := func(p string) *unix.Stat_t {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return &st
	}
	cri := filepath.Join(dir, "containerd", "containerd.sock")
	criSt := listen(cri)
	cfg := config.Default()
	cfg.Context.CRISocket = cri
	cfg.Detect.RuntimeSocketsExtra = []string{filepath.Join(dir, "*", "docker.sock")}
	clock := time.Now()
	r := newRuntimeSockets(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.now = func() time.Time { return clock }

	if p, known := r.RuntimeSocket(criSt.Dev, criSt.Ino); p != cri || !known {
		t.Errorf("CRI socket: %q known %v; want %q", p, known, cri)
	}
	// The server's own docker.sock in a container's directory: no glob
	// names it, so it is none of them.
	own := listen(filepath.Join(dir, "app", "x", "docker.sock"))
	clock = clock.Add(time.Second)
	if p, known := r.RuntimeSocket(own.Dev, own.Ino); p != "" || !known {
		t.Errorf("container's own socket: %q known %v; want none", p, known)
	}
	// A runtime socket made after start, found by the glob at its first lookup.
	late := filepath.Join(dir, "v32", "docker.sock")
	lateSt := listen(late)
	clock = clock.Add(time.Second)
	if p, _ := r.RuntimeSocket(lateSt.Dev, lateSt.Ino); p != late {
		t.Errorf("socket made after start: %q; want %q", p, late)
	}
	// A known miss is not re-read before runtimeSocketRecheck.
	clock = clock.Add(time.Second)
	r.RuntimeSocket(own.Dev, own.Ino)
	last := r.last
	clock = clock.Add(time.Second)
	r.RuntimeSocket(own.Dev, own.Ino)
	if r.last != last {
		t.Error("a repeated miss re-read the socket files")
	}
	clock = clock.Add(runtimeSocketRecheck)
	r.RuntimeSocket(own.Dev, own.Ino)
	if r.last == last {
		t.Error("a miss after runtimeSocketRecheck did not re-read the socket files")
	}
}
