package model

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// WalkStats counts what a Walk saw.
type WalkStats struct {
	Roots   int // root directories walked (globs expanded)
	Files   int // regular files looked at
	Models  int // of them model files
	Errors  int // directories or files that could not be read
	Limited bool
}

// Walk looks for model files under roots (model roots, globs allowed), as
// seen from the directory prefix (use "" for this process's view, or
// /proc/<pid>/root for a container's), and returns their keys: device and
// inode, the
// identity by which the kernel recognises them whatever name later reaches
// them (a hard link, a rename, a bind mount). The Matcher decides what a
// model file is, with each file's size; symlinks are not followed. At most
// limit keys are returned (Limited says so); ctx stops the walk.
func Walk(ctx context.Context, m *Matcher, roots []string, prefix string, limit int) ([]Key, WalkStats, error) {
	var st WalkStats
	var keys []Key
	for _, root := range roots {
		dirs := []string{prefix + root}
		if strings.ContainsAny(root, "*?[\\") {
			var err error
			if dirs, err = filepath.Glob(prefix + root); err != nil {
				continue // validated by the matcher: cannot happen
			}
		}
		for _, dir := range dirs {
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				continue
			}
			st.Roots++
			err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err != nil {
					st.Errors++
					return nil // an unreadable directory: skip it
				}
				if !d.Type().IsRegular() {
					return nil
				}
				st.Files++
				fi, err := d.Info()
				if err != nil {
					st.Errors++
					return nil
				}
				sys, ok := fi.Sys().(*syscall.Stat_t)
				if !ok {
					return nil
				}
				if ok, _ := m.IsModel("", strings.TrimPrefix(p, prefix), fi.Size()); !ok {
					return nil
				}
				if len(keys) >= limit {
					st.Limited = true
					return filepath.SkipAll
				}
				st.Models++
				keys = append(keys, Key{Dev: uint64(sys.Dev), Inode: sys.Ino})
				return nil
			})
			if err != nil && !errors.Is(err, filepath.SkipAll) {
				return keys, st, err
			}
			if st.Limited {
				return keys, st, nil
			}
		}
	}
	return keys, st, nil
}
