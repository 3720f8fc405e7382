package main

import (
	"log/slog"
	"maps"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kestrel-sec/kestrel/internal/config"
)

// wellKnownRuntimeSockets are the API sockets of docker, containerd,
// CRI-O, podman, cri-dockerd and the kubelet's pod-resources, besides
// config.DefaultCRISockets.
var wellKnownRuntimeSockets = []string{
	"/run/docker.sock", "/var/run/docker.sock", "/run/containerd/containerd.sock.ttrpc",
	"/run/podman/podman.sock", "/var/run/cri-dockerd.sock", "/run/dockershim.sock", "/var/run/dockershim.sock",
	"/var/lib/kubelet/pod-resources/kubelet.sock",
}

// hostRoot is the host's root directory as seen from the sensor's mount
// namespace (kthreadd's root; PID 1's may be unreadable).
const hostRoot = "/proc/2/root"

// A miss re-reads the socket files at most once per runtimeSocketRefresh,
// and for an identity that missed before only once per runtimeSocketRecheck;
// at most runtimeSocketMisses such identities are remembered.
const (
	runtimeSocketRefresh = 100 * time.Millisecond
	runtimeSocketRecheck = 10 * time.Second
	runtimeSocketMisses  = 4096
)

// runtimeSockets answers detect.RuntimeSockets: which socket files (device,
// inode) are the container runtime's API sockets on the host. It stats the
// configured and well-known paths (globs allowed), directly and through
// hostRoot, since the sensor may run in its own mount namespace with only
// some host paths mounted. A lookup of a socket file not seen before
// re-reads them (rate-limited), so that a socket made after start or re-made
// by a restarted runtime (a new inode) is learned before it is judged.
type runtimeSockets struct {
	patterns []string
	log      *slog.Logger
	now      func() time.Time

	mu     sync.Mutex
	byID   map[[2]uint64]string
	missed map[[2]uint64]struct{} // identities that were none of them at the last refresh
	last   time.Time
}

func newRuntimeSockets(cfg *config.Config, log *slog.Logger) *runtimeSockets {
	var pats []string
	if s := cfg.Context.CRISocket; s != "" && s != config.CRIOff {
		pats = append(pats, s)
	}
	pats = append(append(append(pats, config.DefaultCRISockets...), wellKnownRuntimeSockets...), cfg.Detect.RuntimeSocketsExtra...)
	r := &runtimeSockets{patterns: pats, log: log, now: time.Now, missed: map[[2]uint64]struct{}{}}
	r.mu.Lock()
	r.refresh()
	n := len(r.byID)
	r.mu.Unlock()
	if n == 0 {
		log.Warn("no container runtime socket found; ESC-006 decides on socket names alone (set detect.runtime_sockets_extra)",
			"tried", pats)
	} else {
		log.Info("container runtime sockets", "found", n)
	}
	return r
}

// refresh re-reads the socket files; r.mu is held.
func (r *runtimeSockets) refresh() {
	r.last = r.now()
	m := make(map[[2]uint64]string, len(r.byID))
	for _, p := range r.patterns {
		for _, root := range [2]string{"", hostRoot} {
			matches, _ := filepath.Glob(root + p) // patterns were checked by config
			for _, f := range matches {
				var st unix.Stat_t
				if unix.Stat(f, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
					continue
				}
				id := [2]uint64{st.Dev, st.Ino}
				if _, ok := m[id]; !ok {
					m[id] = f[len(root):]
				}
			}
		}
	}
	if !maps.Equal(m, r.byID) {
		clear(r.missed)
	}
	r.byID = m
}

// RuntimeSocket implements detect.RuntimeSockets.
func (r *runtimeSockets) RuntimeSocket(dev, ino uint64) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := [2]uint64{dev, ino}
	if p, ok := r.byID[id]; ok {
		return p, true
	}
	_, missed := r.missed[id]
	if since := r.now().Sub(r.last); since >= runtimeSocketRefresh && (!missed || since >= runtimeSocketRecheck) {
		r.refresh()
		if p, ok := r.byID[id]; ok {
			return p, true
		}
	}
	if len(r.missed) >= runtimeSocketMisses {
		clear(r.missed)
	}
	r.missed[id] = struct{}{}
	return "", len(r.byID) > 0
}
