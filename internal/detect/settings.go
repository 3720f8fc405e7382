package detect

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// Settings is the compiled detect configuration that rules read: regexes
// compiled once, name sets, destinations parsed, and the host namespaces.
// It is immutable after New and safe to share.
type Settings struct {
	// Config is the validated configuration it was compiled from.
	Config config.DetectConfig
	// HostNS holds the initial namespaces (from /proc/2/ns/*).
	HostNS event.Namespaces
	// Self is the sensor's own identity (Options.Self), for the SELF rules.
	Self SelfIdentity
	// Sockets is Options.Sockets, for ESC-006; nil when not given.
	Sockets RuntimeSockets

	umh             nameSet
	runtimeExtra    nameSet
	gpuAgentHost    nameSet
	inference       selector
	gpuAgent        selector
	gpuChild        []*regexp.Regexp
	nvHookChild     []*regexp.Regexp
	preload         []workloadRegexes
	imds            []workloadRegexes
	loader          []workloadRegexes
	gpuWorkload     []workloadRegexes
	egress          []workloadDests
	apiserver       []config.Destination
	imageAllow      map[string][]*regexp.Regexp
	hostLibDirs     []string
	hostBinDirs     []string
	writableDirs    []string
	rootsPlain      []string // model roots without "*": prefix match
	rootsGlob       []string // model roots with "*" components
	libHijackDirs   []string
	containerRootfs []string
}

// nameSet matches executables by exact path or, for entries without "/",
// by basename.
type nameSet struct {
	paths []string
	bases []string
}

func newNameSet(l []string) nameSet {
	var s nameSet
	for _, n := range l {
		if strings.Contains(n, "/") {
			s.paths = append(s.paths, n)
		} else {
			s.bases = append(s.bases, n)
		}
	}
	return s
}

func (s nameSet) has(exe string) bool {
	return in(exe, s.paths...) || in(baseName(exe), s.bases...)
}

// selector is a compiled config.Selector.
type selector struct {
	cgroup     []*regexp.Regexp
	namespaces []string
	images     []*regexp.Regexp
}

func compileSelector(key string, s config.Selector) (selector, error) {
	var out selector
	var err error
	if out.cgroup, err = compileAll(key+".cgroup_regex", s.CgroupRegex); err != nil {
		return out, err
	}
	if out.images, err = compileAll(key+".images", s.Images); err != nil {
		return out, err
	}
	out.namespaces = s.Namespaces
	return out, nil
}

func (s *selector) matches(c *event.Container) bool {
	if c == nil {
		return false
	}
	for _, r := range s.cgroup {
		if r.MatchString(c.CgroupPath) {
			return true
		}
	}
	if c.Namespace != "" && in(c.Namespace, s.namespaces...) {
		return true
	}
	if c.Image != "" && c.Image != event.Unknown {
		for _, r := range s.images {
			if r.MatchString(c.Image) {
				return true
			}
		}
	}
	return false
}

// workload is a compiled workload key of a workload-keyed map.
type workload struct {
	all, host bool
	namespace string
	image     *regexp.Regexp
	cgroup    *regexp.Regexp
}

func compileWorkload(k string) (workload, error) {
	switch {
	case k == "*":
		return workload{all: true}, nil
	case k == "host":
		return workload{host: true}, nil
	case strings.HasPrefix(k, "namespace="):
		return workload{namespace: strings.TrimPrefix(k, "namespace=")}, nil
	case strings.HasPrefix(k, "image="):
		r, err := regexp.Compile(strings.TrimPrefix(k, "image="))
		return workload{image: r}, err
	}
	r, err := regexp.Compile(k)
	return workload{cgroup: r}, err
}

func (w *workload) matches(c *event.Container) bool {
	switch {
	case w.all:
		return true
	case w.host:
		return c == nil
	case c == nil:
		return false
	case w.namespace != "":
		return c.Namespace == w.namespace
	case w.image != nil:
		return c.Image != "" && w.image.MatchString(c.Image)
	case w.cgroup != nil:
		return w.cgroup.MatchString(c.CgroupPath)
	}
	return false
}

type workloadRegexes struct {
	w  workload
	re []*regexp.Regexp
}

type workloadDests struct {
	w     workload
	dests []config.Destination
	// beyondLoopback is set when some destination is not a loopback one:
	// the operator said where the workload may send.
	beyondLoopback bool
}

func compileWorkloadRegexes(key string, m map[string][]string) ([]workloadRegexes, error) {
	var out []workloadRegexes
	for k, l := range m {
		w, err := compileWorkload(k)
		if err != nil {
			return nil, fmt.Errorf("%s: key %q: %w", key, k, err)
		}
		re, err := compileAll(key+"."+k, l)
		if err != nil {
			return nil, err
		}
		out = append(out, workloadRegexes{w: w, re: re})
	}
	return out, nil
}

func compileAll(key string, l []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(l))
	for i, s := range l {
		r, err := regexp.Compile(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %q is not a regex: %w", key, i, s, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func anyMatch(res []*regexp.Regexp, s string) bool {
	for _, r := range res {
		if r.MatchString(s) {
			return true
		}
	}
	return false
}

func matchWorkload(l []workloadRegexes, c *event.Container, s string) bool {
	for i := range l {
		if l[i].w.matches(c) && anyMatch(l[i].re, s) {
			return true
		}
	}
	return false
}

// NewSettings compiles cfg. It returns an error naming the key of the first
// bad value (config.Validate catches these first; this guards callers that
// build a DetectConfig by hand).
func NewSettings(cfg config.DetectConfig, hostNS event.Namespaces) (*Settings, error) {
	s := &Settings{
		Config:       cfg,
		HostNS:       hostNS,
		umh:          newNameSet(cfg.UMHAllowlist),
		runtimeExtra: newNameSet(cfg.RuntimeBinariesExtra),
		gpuAgentHost: newNameSet(cfg.GPUAgentAllowlist.HostExe),
		hostLibDirs: []string{"/lib", "/lib64", "/lib32", "/usr/lib", "/usr/lib64", "/usr/lib32",
			"/usr/local/lib", "/usr/local/nvidia/lib", "/usr/local/nvidia/lib64", "/usr/local/cuda/lib64"},
		hostBinDirs: []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin",
			"/usr/libexec", "/usr/lib", "/usr/lib64", "/lib", "/lib64", "/opt"},
		writableDirs: []string{"/tmp", "/var/tmp", "/dev/shm", "/run/shm", "/proc/self/cwd", "/home", "/root"},
		// Toolchains (rustup, conda, venvs) put LD_LIBRARY_PATH under home
		// directories; only scratch space and the cwd count for the loader.
		libHijackDirs: []string{"/tmp", "/var/tmp", "/dev/shm", "/run/shm", "/proc/self/cwd"},
		containerRootfs: []string{"/rootfs/", "/overlay2/", "/io.containerd.snapshotter.v1.overlayfs/snapshots/",
			"/var/lib/containerd/", "/var/lib/docker/", "/run/containerd/io.containerd.runtime.v2.task/",
			"/var/lib/kubelet/pods/", "/var/lib/containers/storage/"},
		imageAllow: map[string][]*regexp.Regexp{},
	}
	for _, r := range cfg.ModelRoots {
		if strings.Contains(r, "*") {
			s.rootsGlob = append(s.rootsGlob, r)
		} else {
			s.rootsPlain = append(s.rootsPlain, strings.TrimSuffix(r, "/"))
		}
	}
	var err error
	if s.inference, err = compileSelector("inference_selector", cfg.InferenceSelector); err != nil {
		return nil, err
	}
	if s.gpuAgent, err = compileSelector("gpu_agent_allowlist", cfg.GPUAgentAllowlist.Selector()); err != nil {
		return nil, err
	}
	if s.gpuChild, err = compileAll("gpu_child_allowlist", cfg.GPUChildAllowlist); err != nil {
		return nil, err
	}
	if s.nvHookChild, err = compileAll("nv_hook_child_allowlist", cfg.NVHookChildAllowlist); err != nil {
		return nil, err
	}
	for _, m := range []struct {
		key string
		src map[string][]string
		dst *[]workloadRegexes
	}{
		{"preload_allowlist", cfg.PreloadAllowlist, &s.preload},
		{"imds_allowlist", cfg.IMDSAllowlist, &s.imds},
		{"loader_allowlist", cfg.LoaderAllowlist, &s.loader},
		{"gpu_workload_allowlist", cfg.GPUWorkloadAllowlist, &s.gpuWorkload},
	} {
		if *m.dst, err = compileWorkloadRegexes(m.key, m.src); err != nil {
			return nil, err
		}
	}
	for k, l := range cfg.EgressAllowlist {
		w, err := compileWorkload(k)
		if err != nil {
			return nil, fmt.Errorf("egress_allowlist: key %q: %w", k, err)
		}
		wd := workloadDests{w: w}
		for i, d := range l {
			dst, err := config.ParseDestination(d)
			if err != nil {
				return nil, fmt.Errorf("egress_allowlist.%s[%d]: %w", k, i, err)
			}
			wd.dests = append(wd.dests, dst)
			wd.beyondLoopback = wd.beyondLoopback || !dst.Prefix.Addr().IsLoopback()
		}
		s.egress = append(s.egress, wd)
	}
	for i, d := range cfg.APIServerEndpoints {
		dst, err := config.ParseDestination(d)
		if err != nil {
			return nil, fmt.Errorf("apiserver_endpoints[%d]: %w", i, err)
		}
		s.apiserver = append(s.apiserver, dst)
	}
	for k, l := range cfg.ContainerImageAllowlist {
		re, err := compileAll("container_image_allowlist."+k, l)
		if err != nil {
			return nil, err
		}
		s.imageAllow[k] = re
	}
	return s, nil
}

// IsRuntime reports whether exe is a container runtime binary (runtime(p)):
// runc, crun, youki, containerd, containerd-shim*, conmon, crio, dockerd,
// docker-init, kubelet, or runtime_binaries_extra.
func (s *Settings) IsRuntime(exe string) bool {
	if exe == "" {
		return false
	}
	switch b := baseName(exe); b {
	case "runc", "crun", "youki", "containerd", "conmon", "crio", "dockerd", "docker-init", "kubelet":
		return true
	default:
		if strings.HasPrefix(b, "containerd-shim") {
			return true
		}
	}
	return s.runtimeExtra.has(exe)
}

// IsNVHook reports whether exe is an NVIDIA Container Toolkit hook or CLI.
func IsNVHook(exe string) bool {
	if exe == "" {
		return false
	}
	switch baseName(exe) {
	case "nvidia-container-runtime-hook", "nvidia-container-toolkit", "nvidia-container-cli",
		"nvidia-ctk", "nvidia-cdi-hook", "nvidia-container-runtime":
		return true
	}
	return false
}

// IsUMHAllowed reports whether exe is on umh_allowlist.
func (s *Settings) IsUMHAllowed(exe string) bool { return s.umh.has(exe) }

// IsGPUAgent reports whether the actor is an allowlisted GPU monitoring
// agent: a host process with an exe on host_exe, or a container matching the
// gpu_agent_allowlist selector.
func (s *Settings) IsGPUAgent(p *event.Process, c *event.Container) bool {
	if c == nil {
		return p != nil && s.gpuAgentHost.has(p.Exe)
	}
	return s.gpuAgent.matches(c)
}

// MatchesInferenceSelector reports whether c matches inference_selector.
func (s *Settings) MatchesInferenceSelector(c *event.Container) bool { return s.inference.matches(c) }

// IsGPUChildAllowed reports whether the process matches gpu_child_allowlist.
func (s *Settings) IsGPUChildAllowed(p *event.Process) bool {
	return p != nil && anyMatch(s.gpuChild, baseCmdline(p))
}

// gpuChildAllowedBuf is IsGPUChildAllowed without allocating: the command
// line is built in *buf, which the caller keeps for the next call.
func (s *Settings) gpuChildAllowedBuf(buf *[]byte, p *event.Process) bool {
	if len(s.gpuChild) == 0 || p == nil {
		return false
	}
	b := append((*buf)[:0], actorName(p)...)
	for i := 1; i < len(p.Args); i++ {
		b = append(b, ' ')
		b = append(b, p.Args[i]...)
	}
	*buf = b
	for _, re := range s.gpuChild {
		if re.Match(b) {
			return true
		}
	}
	return false
}

// IsNVHookChildAllowed reports whether the process matches nv_hook_child_allowlist.
func (s *Settings) IsNVHookChildAllowed(p *event.Process) bool {
	return p != nil && anyMatch(s.nvHookChild, baseCmdline(p))
}

// IsPreloadAllowed reports whether an LD_PRELOAD value is allowlisted for c.
func (s *Settings) IsPreloadAllowed(c *event.Container, value string) bool {
	return matchWorkload(s.preload, c, value)
}

// IsIMDSAllowed reports whether exe may contact the metadata service from c.
func (s *Settings) IsIMDSAllowed(c *event.Container, exe string) bool {
	return matchWorkload(s.imds, c, exe)
}

// IsLoaderAllowed reports whether the exe path may read model files in c
// without owning a GPU (loader_allowlist). The comm is not consulted: any
// process can set its own.
func (s *Settings) IsLoaderAllowed(c *event.Container, exe string) bool {
	return matchWorkload(s.loader, c, exe)
}

// IsGPUWorkloadAllowed reports whether exe may own GPU memory in c.
func (s *Settings) IsGPUWorkloadAllowed(c *event.Container, exe string) bool {
	return matchWorkload(s.gpuWorkload, c, exe)
}

// EgressAllowed reports whether c (nil for the host) may send to addr:port
// (allowed(c,d,port) of the catalog). It does not allocate.
func (s *Settings) EgressAllowed(c *event.Container, addr netip.Addr, port uint16) bool {
	for i := range s.egress {
		if !s.egress[i].w.matches(c) {
			continue
		}
		for _, d := range s.egress[i].dests {
			if d.Contains(addr, port) {
				return true
			}
		}
	}
	return false
}

// EgressConfigured reports whether egress_allowlist says where c (nil for
// the host) may send beyond loopback: some key that matches c lists a
// destination that is not a loopback one. The default config allows
// loopback only, which says nothing about where a workload talks to.
func (s *Settings) EgressConfigured(c *event.Container) bool {
	for i := range s.egress {
		if s.egress[i].beyondLoopback && s.egress[i].w.matches(c) {
			return true
		}
	}
	return false
}

// IsAPIServer reports whether addr:port is a configured API server endpoint.
func (s *Settings) IsAPIServer(addr netip.Addr, port uint16) bool {
	for _, d := range s.apiserver {
		if d.Contains(addr, port) {
			return true
		}
	}
	return false
}

// InHostLibDir reports whether p lies under a host library directory.
func (s *Settings) InHostLibDir(p string) bool { return underAny(p, s.hostLibDirs) }

// InHostBinDir reports whether p lies under a host binary directory.
func (s *Settings) InHostBinDir(p string) bool { return underAny(p, s.hostBinDirs) }

// InWritableDir reports whether p lies in a world- or user-writable
// directory (tmp, shm, home) or a model root.
func (s *Settings) InWritableDir(p string) bool {
	return underAny(p, s.writableDirs) || s.InModelRoot(p)
}

// InModelRoot reports whether p lies under a configured model root ("*"
// matches one path component).
func (s *Settings) InModelRoot(p string) bool {
	if underAny(p, s.rootsPlain) {
		return true
	}
	for _, r := range s.rootsGlob {
		if globDirPrefix(p, r) {
			return true
		}
	}
	return false
}

// InContainerRootfs reports whether the host path p lies in a container
// runtime's storage (a container filesystem seen from the host).
func (s *Settings) InContainerRootfs(p string) bool {
	for _, d := range s.containerRootfs {
		if strings.Contains(p, d) {
			return true
		}
	}
	return false
}

// globDirPrefix reports whether p lies under the directory pattern pat,
// where a "*" component matches any one component.
func globDirPrefix(p, pat string) bool {
	for {
		pat = strings.TrimPrefix(pat, "/")
		p = strings.TrimPrefix(p, "/")
		if pat == "" {
			return true
		}
		var pc, xc string
		if i := strings.IndexByte(pat, '/'); i >= 0 {
			pc, pat = pat[:i], pat[i:]
		} else {
			pc, pat = pat, ""
		}
		if i := strings.IndexByte(p, '/'); i >= 0 {
			xc, p = p[:i], p[i:]
		} else {
			xc, p = p, ""
		}
		if xc == "" || (pc != "*" && pc != xc) {
			return false
		}
	}
}
