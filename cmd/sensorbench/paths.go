package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// realisticPaths writes to dir the list of paths the realistic storm opens
// and returns its name. They are the opens a Python inference server makes
// all day: its modules and their bytecode under site-packages, /etc files,
// its own /proc entries, /sys, /dev/null and shared libraries. Real files of
// this host are used where they exist, because the kernel filter's cost
// depends on the path's bytes; a host without Python gets a site-packages
// tree of the same shape under dir.
func realisticPaths(dir string) (string, error) {
	var py []string
	for _, root := range pythonRoots() {
		py = append(py, walkFiles(root, 400-len(py), func(p string) bool {
			return strings.HasSuffix(p, ".py") || strings.HasSuffix(p, ".pyc")
		})...)
		if len(py) >= 400 {
			break
		}
	}
	if len(py) == 0 {
		var err error
		if py, err = fakeSitePackages(dir); err != nil {
			return "", err
		}
	}
	var libs []string
	if m, _ := filepath.Glob("/usr/lib/*-linux-gnu/lib*.so.*"); len(m) > 0 {
		libs = m[:min(len(m), 40)]
	}
	system := existing(
		"/etc/passwd", "/etc/group", "/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf",
		"/etc/ld.so.cache", "/etc/localtime", "/etc/ssl/certs/ca-certificates.crt", "/etc/os-release",
		"/proc/self/stat", "/proc/self/status", "/proc/self/cgroup", "/proc/self/mountinfo",
		"/proc/meminfo", "/proc/stat", "/proc/cpuinfo",
		"/sys/devices/system/cpu/online", "/sys/devices/system/cpu/possible", "/sys/class/net/lo/mtu",
		"/sys/fs/cgroup/cpu.max", "/dev/null", "/dev/urandom",
	)
	// Interleave: a Python import or two, then a library, then a system file.
	var list []string
	for i := 0; i < len(py) || i < len(libs) || i < len(system); i++ {
		if i < len(py) {
			list = append(list, py[i])
		}
		if i < len(libs) {
			list = append(list, libs[i])
		}
		if i < len(system) {
			list = append(list, system[i])
		}
	}
	return writeList(dir, "realistic.txt", list)
}

// pythonRoots returns the module directories of the host's Pythons.
func pythonRoots() []string {
	var roots []string
	for _, pat := range []string{
		"/usr/local/lib/python3*/site-packages", "/usr/local/lib/python3*/dist-packages",
		"/usr/lib/python3/dist-packages", "/usr/lib/python3*",
	} {
		m, _ := filepath.Glob(pat)
		roots = append(roots, m...)
	}
	return roots
}

// walkFiles returns up to limit regular files under root for which keep
// holds, in walk order.
func walkFiles(root string, limit int, keep func(string) bool) []string {
	var out []string
	if limit <= 0 {
		return nil
	}
	errStop := errors.New("enough")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable subtree: skip it
		}
		if d.Type().IsRegular() && keep(p) {
			out = append(out, p)
			if len(out) >= limit {
				return errStop
			}
		}
		return nil
	})
	return out
}

func existing(paths ...string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// fakeSitePackages makes a small site-packages tree under dir.
func fakeSitePackages(dir string) ([]string, error) {
	var out []string
	for _, pkg := range []string{"torch/nn/modules", "numpy/core", "transformers/models/llama", "requests", "urllib3/util"} {
		d := filepath.Join(dir, "lib/python3.11/site-packages", pkg)
		if err := os.MkdirAll(filepath.Join(d, "__pycache__"), 0o755); err != nil {
			return nil, err
		}
		for _, name := range []string{"__init__", "utils", "functional", "config"} {
			for _, p := range []string{filepath.Join(d, name+".py"), filepath.Join(d, "__pycache__", name+".cpython-311.pyc")} {
				if err := os.WriteFile(p, []byte("#"), 0o644); err != nil {
					return nil, err
				}
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// distinctModels creates n distinct model files under dir/models and writes
// their list.
func distinctModels(dir string, n int) (string, error) {
	d := filepath.Join(dir, "models")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	list := make([]string, 0, n)
	for i := range n {
		p := filepath.Join(d, fmt.Sprintf("shard-%05d-of-%05d.safetensors", i+1, n))
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			return "", err
		}
		list = append(list, p)
	}
	return writeList(dir, "distinct.txt", list)
}

func writeList(dir, name string, list []string) (string, error) {
	if len(list) == 0 {
		return "", fmt.Errorf("write %s: no paths", name)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(list, "\n")+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return p, nil
}
