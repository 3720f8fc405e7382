// Package cgroup turns cgroup ids and cgroup paths into container identity.
//
// A cgroup path (as in /proc/<pid>/cgroup, or found by walking the cgroup v2
// mount) names the container, the runtime and, under Kubernetes, the pod UID:
// containerd, CRI-O, docker and podman each have their own layout, under the
// systemd and the cgroupfs drivers, on cgroup v1 and v2. Parser knows those
// layouts; Resolver maps the cgroup ids that BPF programs report (the inode
// number of the cgroup v2 directory) to paths.
//
// Parsing is pure and never fails: a path that matches no layout is simply
// not a container.
package cgroup

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Runtime names, as in event.Container.Runtime.
const (
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimeDocker     = "docker"
	RuntimePodman     = "podman"
)

// Kubernetes QoS classes, from the kubepods hierarchy.
const (
	QoSGuaranteed = "guaranteed"
	QoSBurstable  = "burstable"
	QoSBestEffort = "besteffort"
)

// Info is what a cgroup path says about its processes.
type Info struct {
	// Container is true when the path is a container's cgroup (or a cgroup
	// inside one).
	Container bool
	// ID is the container id, or event.Unknown when the layout matched (a
	// pod cgroup) but no container id was found.
	ID string
	// Runtime is containerd, cri-o, docker, podman or event.Unknown.
	Runtime string
	// PodUID is the Kubernetes pod UID with dashes, or "".
	PodUID string
	// QoS is the Kubernetes QoS class, or "" outside kubepods.
	QoS string
}

// MaxPathLen bounds the paths Parse looks at; longer ones are not containers.
// Kernel cgroup paths are bounded by PATH_MAX.
const MaxPathLen = 4096

// Parser recognises container cgroup layouts. The zero value knows the
// built-in layouts only. A Parser is immutable and safe for concurrent use.
type Parser struct {
	extra []*regexp.Regexp
}

// NewParser returns a Parser that, beyond the built-in layouts, treats a
// cgroup path matching any of extra as a container whose id is the leaf
// directory name.
func NewParser(extra []string) (*Parser, error) {
	p := &Parser{}
	for i, s := range extra {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, fmt.Errorf("compile container_cgroup_regex[%d] %q: %w", i, s, err)
		}
		p.extra = append(p.extra, re)
	}
	return p, nil
}

// Parse reads container identity from a cgroup path such as
// "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope".
// The path may come from any hierarchy (v1 or v2).
func (p *Parser) Parse(path string) Info {
	if len(path) > MaxPathLen || path == "" {
		return Info{}
	}
	info := parseBuiltin(path)
	if info.Container || p == nil {
		return info
	}
	for _, re := range p.extra {
		if loc := re.FindStringIndex(path); loc != nil {
			id := matchedSegment(path, loc[1])
			if id == "" {
				id = event.Unknown
			}
			return Info{Container: true, ID: id, Runtime: event.Unknown}
		}
	}
	return Info{}
}

// matchedSegment returns the path segment in which a regex match ending at
// end ends: for '^/simctr-' and "/simctr-infer-a1/worker" that is
// "simctr-infer-a1", so the container's sub-cgroups stay one container. A
// match that ends on a '/' (or is empty) names the segment before it.
func matchedSegment(path string, end int) string {
	if end > 0 && (end == len(path) || path[end-1] == '/') {
		end--
	}
	for end > 0 && end < len(path) && path[end] == '/' {
		end--
	}
	start := strings.LastIndexByte(path[:end], '/') + 1
	stop := strings.IndexByte(path[start:], '/')
	if stop < 0 {
		return path[start:]
	}
	return path[start : start+stop]
}

// parseBuiltin scans the path from the leaf to the root: the deepest
// container segment wins (docker-in-docker, podman's "libpod-<id>.scope/container").
func parseBuiltin(path string) Info {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	var info Info
	idAt := -1
	for i := len(segs) - 1; i >= 0 && idAt < 0; i-- {
		if isConmon(segs[i]) {
			// conmon, the runtime's monitor, sits beside the container
			// on the host side: "crio-conmon-<id>.scope".
			return Info{}
		}
		if id, rt, ok := containerSegment(segs[i]); ok {
			info.ID, info.Runtime, idAt = id, rt, i
		}
	}
	// Kubernetes pod and QoS come from the segments above the container.
	top := len(segs)
	if idAt >= 0 {
		top = idAt
	}
	kube := false
	for i := 0; i <= top && i < len(segs); i++ {
		s := segs[i]
		if i == top {
			// The container segment itself can carry the pod in the
			// systemd-driver v1 form "kubepods-<qos>-pod<uid>.slice:cri-containerd:<id>".
			pre, _, found := strings.Cut(s, ":")
			if !found || !strings.HasPrefix(pre, "kubepods") {
				break
			}
			kube = true
			s = pre
			switch {
			case strings.HasPrefix(s, "kubepods-besteffort-"):
				info.QoS = QoSBestEffort
			case strings.HasPrefix(s, "kubepods-burstable-"):
				info.QoS = QoSBurstable
			default:
				info.QoS = QoSGuaranteed
			}
		}
		switch {
		case s == "kubepods" || s == "kubepods.slice":
			kube = true
			if info.QoS == "" {
				info.QoS = QoSGuaranteed
			}
		case kube && (s == "besteffort" || s == "kubepods-besteffort.slice"):
			info.QoS = QoSBestEffort
		case kube && (s == "burstable" || s == "kubepods-burstable.slice"):
			info.QoS = QoSBurstable
		case kube:
			if uid, ok := podSegment(s); ok {
				info.PodUID = uid
			}
		}
	}
	if !kube {
		info.QoS = ""
	}
	switch {
	case idAt >= 0:
		info.Container = true
		if info.Runtime == "" {
			info.Runtime = event.Unknown
			if idAt > 0 && segs[idAt-1] == "docker" {
				info.Runtime = RuntimeDocker
			}
		}
	case info.PodUID != "":
		// A process in the pod cgroup itself: a container of that pod,
		// but which one is unknown.
		info.Container, info.ID, info.Runtime = true, event.Unknown, event.Unknown
	default:
		return Info{}
	}
	return info
}

// scopePrefixes are the systemd-driver (and some cgroupfs-driver) leaf
// names: <prefix><id>[.scope].
var scopePrefixes = []struct {
	prefix, runtime string
}{
	{"cri-containerd-", RuntimeContainerd},
	{"nerdctl-", RuntimeContainerd},
	{"crio-", RuntimeCRIO},
	{"docker-", RuntimeDocker},
	{"libpod-", RuntimePodman},
}

func isConmon(s string) bool {
	return strings.HasPrefix(s, "crio-conmon-") || strings.HasPrefix(s, "libpod-conmon-")
}

// containerSegment reports whether the path segment s names a container.
func containerSegment(s string) (id, runtime string, ok bool) {
	// cgroup v1 with the systemd driver as written by some runtimes:
	// "kubepods-burstable-pod<uid>.slice:cri-containerd:<id>".
	if strings.Count(s, ":") == 2 {
		parts := strings.SplitN(s, ":", 3)
		if isHexID(parts[2]) {
			switch parts[1] {
			case "cri-containerd":
				return parts[2], RuntimeContainerd, true
			case "crio":
				return parts[2], RuntimeCRIO, true
			case "docker":
				return parts[2], RuntimeDocker, true
			}
			return parts[2], event.Unknown, true
		}
		return "", "", false
	}
	base := strings.TrimSuffix(s, ".scope")
	for _, sp := range scopePrefixes {
		rest, found := strings.CutPrefix(base, sp.prefix)
		if !found {
			continue
		}
		if isHexID(rest) {
			return rest, sp.runtime, true
		}
		return "", "", false
	}
	// cgroupfs driver: the leaf is the bare 64-hex id (".../pod<uid>/<id>",
	// "/docker/<id>").
	if len(s) == 64 && isHex(s) {
		return s, "", true
	}
	return "", "", false
}

// isHexID accepts the container ids runtimes write: 64 hex digits, or a
// shortened form of at least 32.
func isHexID(s string) bool {
	return len(s) >= 32 && len(s) <= 64 && isHex(s)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// podSegment reads the pod UID from "pod<uid>" (cgroupfs) or
// "kubepods[-<qos>]-pod<uid_with_underscores>.slice" (systemd).
func podSegment(s string) (string, bool) {
	var raw string
	switch {
	case strings.HasPrefix(s, "pod"):
		raw = s[3:]
	case strings.HasPrefix(s, "kubepods-") && strings.HasSuffix(s, ".slice"):
		i := strings.LastIndex(s, "-pod")
		if i < 0 {
			return "", false
		}
		raw = strings.TrimSuffix(s[i+4:], ".slice")
		raw = strings.ReplaceAll(raw, "_", "-")
	default:
		return "", false
	}
	if !isPodUID(raw) {
		return "", false
	}
	return raw, true
}

// isPodUID accepts an RFC 4122 UUID in lower case, or the 32-hex hash the
// kubelet uses as UID of static pods.
func isPodUID(s string) bool {
	if len(s) == 32 {
		return isHex(s)
	}
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
