package model

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

func keyOfFile(t *testing.T, p string) Key {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return Key{Dev: uint64(st.Dev), Inode: st.Ino}
}

// TestWalk: the walk finds the model files under literal and glob roots,
// by the matcher's rules (size gate, metadata names, extension-less files
// under a root), and returns their device and inode.
func TestWalk(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 2<<20)
	write := func(rel string, data []byte) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	blob := write("models/llama/blob", big)                         // extension-less under a root
	st := write("home/alice/.cache/huggingface/w.safetensors", big) // under a glob root
	write("models/llama/config.json", []byte("{}"))                 // metadata
	write("models/llama/tiny.safetensors", []byte("x"))             // under the size gate
	write("elsewhere/x.safetensors", big)                           // outside every root
	if err := os.Symlink(blob, filepath.Join(dir, "models/llama/link")); err != nil {
		t.Fatal(err)
	}
	m, err := NewMatcher([]string{filepath.Join(dir, "models"), filepath.Join(dir, "home/*/.cache/huggingface"),
		filepath.Join(dir, "absent")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, stats, err := Walk(context.Background(), m, m.Roots(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []Key{keyOfFile(t, blob), keyOfFile(t, st)}
	slices.SortFunc(keys, func(a, b Key) int { return int(a.Inode) - int(b.Inode) })
	slices.SortFunc(want, func(a, b Key) int { return int(a.Inode) - int(b.Inode) })
	if !slices.Equal(keys, want) || stats.Roots != 2 || stats.Models != 2 || stats.Limited {
		t.Errorf("keys %v stats %+v; want %v from 2 roots", keys, stats, want)
	}
	keys, stats, _ = Walk(context.Background(), m, m.Roots(), "", 1)
	if len(keys) != 1 || !stats.Limited {
		t.Errorf("limit 1: %v %+v", keys, stats)
	}
	// A container's view: the same roots under a prefix.
	m2, _ := NewMatcher([]string{"/models"}, nil)
	keys, _, _ = Walk(context.Background(), m2, m2.Roots(), dir, 100)
	if len(keys) != 1 || keys[0] != keyOfFile(t, blob) {
		t.Errorf("under prefix %s: %v", dir, keys)
	}
}

// TestRegistryIdentity: every file with an inode the registry adds or
// evicts is told to OnIdentity; path-keyed files are not.
func TestRegistryIdentity(t *testing.T) {
	var added, removed []Key
	r := newTestRegistry(t, &RegistryOptions{MaxFiles: 2, NoHash: true, OnIdentity: func(a, rm []Key) {
		added = append(added, a...)
		removed = append(removed, rm...)
	}})
	obs := func(i int, inode uint64) {
		r.Observe(Observation{Time: t0.Add(time.Duration(i)), Path: fmt.Sprintf("/models/f%d.safetensors", i),
			Size: 2 << 20, Dev: 7, Inode: inode, PID: 10})
	}
	obs(1, 101)
	obs(1, 101) // again: nothing new
	obs(2, 0)   // keyed by path
	obs(3, 103) // evicts 101
	if want := []Key{{Dev: 7, Inode: 101}, {Dev: 7, Inode: 103}}; !slices.Equal(added, want) {
		t.Errorf("added %v; want %v", added, want)
	}
	if want := []Key{{Dev: 7, Inode: 101}}; !slices.Equal(removed, want) {
		t.Errorf("removed %v; want %v", removed, want)
	}
}
