package config

import (
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits and defaults of the detect section.
const (
	// DetectMaxStateSize bounds state_size, the capacity of each per-process
	// and per-container table the rules keep.
	DetectMaxStateSize = 1 << 20
	// DetectMinStateSize is the smallest useful state_size.
	DetectMinStateSize = 64
	// DetectMaxWindow bounds every window and grace duration.
	DetectMaxWindow = 24 * time.Hour
)

// DefaultUMHAllowlist is the catalog's umh_allowlist: the programs the kernel
// legitimately runs as usermode helpers (ESC-003 in docs/rules.md).
var DefaultUMHAllowlist = []string{
	"/sbin/modprobe", "/usr/sbin/modprobe", "/sbin/request-key", "/usr/sbin/request-key",
	"/sbin/poweroff", "/usr/sbin/poweroff", "/sbin/reboot", "/usr/sbin/reboot",
	"/usr/lib/systemd/systemd-coredump", "/lib/systemd/systemd-coredump",
	"/usr/share/apport/apport", "/usr/lib/systemd/systemd-cgroups-agent", "/lib/systemd/systemd-cgroups-agent",
	"/sbin/bridge-stp", "/usr/sbin/bridge-stp", "/sbin/nfsdcltrack", "/usr/sbin/nfsdcltrack", "/sbin/hotplug",
}

// DefaultModelRoots are the default model roots (docs/detection.md#model-files). A "*"
// matches one path component.
var DefaultModelRoots = []string{
	"/models", "/mnt/models", "/opt/ml/model", "/data/models", "/workspace/models", "/opt/nim/.cache",
	"/root/.cache/huggingface", "/home/*/.cache/huggingface", "/usr/share/ollama/.ollama/models",
	"/root/.ollama/models",
}

// DefaultGPUChildAllowlist holds regexes over "<exe basename> <args...>" for
// children an inference process may spawn (GPU-001): multiprocessing workers,
// the CUDA/Triton toolchain, ldconfig -p, nvidia-smi queries and uname.
var DefaultGPUChildAllowlist = []string{
	`^python[0-9.]* (-[A-Za-z]+ )*-c from multiprocessing`,
	`^(gcc|g\+\+|cc|c\+\+|ld|ld\.bfd|ld\.gold|ptxas|nvcc|cicc|fatbinary|nvlink|cuobjdump|nvdisasm)( |$)`,
	`^ldconfig(\.real)? -p`,
	`^nvidia-smi (--query|-q|-L)`,
	`^uname( |$)`,
}

// DefaultNVHookChildAllowlist holds regexes over "<exe basename> <args...>"
// for the children NVIDIA hooks legitimately start (NVT-002).
var DefaultNVHookChildAllowlist = []string{
	`^nvidia-container-cli( |$)`,
	`^ldconfig(\.real)?( |$)`,
	`^nvidia-modprobe( |$)`,
	`^modprobe (-[a-z]+ )*nvidia`,
	`^nvidia-ctk( |$)`,
	`^nvidia-cdi-hook( |$)`,
}

// DefaultPreloadAllowlist are LD_PRELOAD values allowed everywhere
// (EXE-001): allocator preloads common in inference images.
var DefaultPreloadAllowlist = []string{
	`^/usr/lib(64)?(/[a-z0-9_-]+-linux-gnu)?/lib(jemalloc|tcmalloc(_minimal)?|mimalloc)\.so(\.[0-9]+)*$`,
}

// DetectConfig turns rules on and off, overrides severities and holds the
// allowlists and tunables described in docs/detection.md#knobs.
//
// Workload-keyed maps (model_updaters, loader_allowlist, egress_allowlist,
// imds_allowlist, gpu_workload_allowlist, preload_allowlist) take as key
// "*" (every process), "host" (processes outside containers), "image=<regex>"
// (container image), "namespace=<name>" (pod namespace) or otherwise a regex
// over the container's cgroup path.
//
// In YAML:
//
//	detect:
//	  rules:                          # per rule id; unknown ids are rejected
//	    ESC-010: {enabled: false}
//	    EXE-003: {severity: medium, allow_exe: ['^/usr/bin/tmux$'], allow_cgroup: ['^/kubepods/.*debug']}
//	  aggregate_window: 60s           # bursts of one (rule, container, key) collapse into one finding + follow-ups
//	  aggregate_idle: 2s              # a follow-up with the count is emitted once a burst pauses this long
//	  max_aggregates: 4096
//	  state_size: 16384               # capacity of each per-process / per-container table
//	  container_image_allowlist: {ESC-004: ['^docker.io/calico/'], '*': []}
//	  inference_selector: {cgroup_regex: '^/simctr-infer-', namespaces: [serving], images: ['vllm']}
//	  gpu_agent_allowlist: {cgroup_regex: '^/simctr-agent-', host_exe: [nvidia-smi, nv-hostengine, dcgm-exporter]}
//	  gpu_workload_allowlist: {'namespace=notebooks': ['.*']}
//	  gpu_child_allowlist: ['^uname( |$)']
//	  nv_hook_child_allowlist: ['^ldconfig( |$)']
//	  runtime_binaries_extra: ['/opt/bin/runc']
//	  runtime_sockets_extra: ['/run/k0s/containerd.sock']
//	  umh_allowlist: [/sbin/modprobe]
//	  model_roots: [/models]
//	  model_min_bytes: 1048576
//	  model_updaters: {'^/simctr-build-': [curl], host: ['python3 */mkmodel.py']}
//	  loader_allowlist: {'image=tritonserver': ['triton_python_backend_stub']}
//	  egress_allowlist: {'^/simctr-infer-': ['10.200.1.0/24'], '*': ['127.0.0.0/8', '10.96.0.10/32:53']}
//	  imds_allowlist: {'image=aws-sdk-sidecar': ['.*']}
//	  preload_allowlist: {'*': ['^/usr/lib/x86_64-linux-gnu/libjemalloc\.so\.2$']}
//	  apiserver_endpoints: ['10.96.0.1/32:443']
//	  exfil_window: 600s
//	  promote_grace: 300s
//	  startup_grace: 600s
//	  exfil_bytes_threshold: 268435456
type DetectConfig struct {
	// Rules holds per-rule settings keyed by rule id.
	Rules map[string]RuleConfig `yaml:"rules"`
	// AggregateWindow is how long repeats of one finding are counted before
	// a follow-up with the count is emitted.
	AggregateWindow Duration `yaml:"aggregate_window"`
	// AggregateIdle is how long a burst must pause before its pending
	// repeats are reported in a follow-up (the window stays open, so the
	// finding is not emitted again before aggregate_window ends).
	AggregateIdle Duration `yaml:"aggregate_idle"`
	// MaxAggregates bounds the open aggregation windows; the oldest is
	// closed (and its follow-up emitted) when full.
	MaxAggregates int `yaml:"max_aggregates"`
	// StateSize bounds each per-process and per-container table.
	StateSize int `yaml:"state_size"`

	// ContainerImageAllowlist maps a rule id, or "*" for every rule, to
	// regexes over container images whose findings are dropped (counted).
	ContainerImageAllowlist map[string][]string `yaml:"container_image_allowlist"`
	// InferenceSelector says which containers serve models (inference(c)),
	// besides those that own or were allocated a GPU.
	InferenceSelector Selector `yaml:"inference_selector"`
	// GPUAgentAllowlist names the GPU monitoring agents (GPU-003, GPU-007).
	GPUAgentAllowlist AgentAllowlist `yaml:"gpu_agent_allowlist"`
	// GPUWorkloadAllowlist maps a workload key to exe regexes allowed to own
	// GPU memory (GPU-002).
	GPUWorkloadAllowlist map[string][]string `yaml:"gpu_workload_allowlist"`
	// GPUChildAllowlist holds regexes over "<exe basename> <args>" of
	// children an inference process may spawn (GPU-001).
	GPUChildAllowlist []string `yaml:"gpu_child_allowlist"`
	// NVHookChildAllowlist holds regexes over "<exe basename> <args>" of
	// children NVIDIA hooks may spawn (NVT-002).
	NVHookChildAllowlist []string `yaml:"nv_hook_child_allowlist"`
	// RuntimeBinariesExtra are more container-runtime executables (exact
	// paths, or basenames when they hold no "/") besides runc, crun,
	// containerd-shim*, conmon, crio, dockerd and kubelet.
	RuntimeBinariesExtra []string `yaml:"runtime_binaries_extra"`
	// RuntimeSocketsExtra are more container-runtime API sockets on the
	// host (absolute paths, shell globs allowed) besides the CRI socket and
	// the well-known docker, containerd, CRI-O and podman ones. ESC-006
	// decides on the socket file a container reached, not on its name.
	RuntimeSocketsExtra []string `yaml:"runtime_sockets_extra"`
	// UMHAllowlist are the programs the kernel may run as usermode helpers
	// (exact paths, or basenames when they hold no "/") (ESC-003).
	UMHAllowlist []string `yaml:"umh_allowlist"`
	// ModelRoots are directories whose files count as model files.
	ModelRoots []string `yaml:"model_roots"`
	// ModelMinBytes is the size under which a file is not model weights.
	ModelMinBytes int64 `yaml:"model_min_bytes"`
	// ModelUpdaters maps a workload key to processes allowed to write model
	// files: globs over "<name> <args>" (GPU-005), where the name is
	// argv[0]'s basename only when the exe the kernel ran is that program
	// (python3 -> python3.11), else the exe's basename; only system
	// binaries qualify, not ones written in the container.
	ModelUpdaters map[string][]string `yaml:"model_updaters"`
	// LoaderAllowlist maps a workload key to regexes over the exe path
	// (the kernel's, not comm or argv[0]) allowed to read model files
	// without owning a GPU (EXF-001).
	LoaderAllowlist map[string][]string `yaml:"loader_allowlist"`
	// EgressAllowlist maps a workload key to allowed destinations,
	// "CIDR" or "CIDR:port" ("[v6CIDR]:port" for IPv6 with a port).
	EgressAllowlist map[string][]string `yaml:"egress_allowlist"`
	// IMDSAllowlist maps a workload key to exe regexes allowed to contact
	// the cloud metadata service (CRED-002).
	IMDSAllowlist map[string][]string `yaml:"imds_allowlist"`
	// PreloadAllowlist maps a workload key to regexes over LD_PRELOAD values
	// that are not loader hijacks (EXE-001).
	PreloadAllowlist map[string][]string `yaml:"preload_allowlist"`
	// APIServerEndpoints are Kubernetes API server destinations
	// ("CIDR[:port]") besides KUBERNETES_SERVICE_HOST (CRED-001).
	APIServerEndpoints []string `yaml:"apiserver_endpoints"`
	// ExfilWindow is how long model-read taint lasts (EXF-001).
	ExfilWindow Duration `yaml:"exfil_window"`
	// PromoteGrace is how long a weight reader may take to become a GPU
	// owner and so count as a loader, not a thief (EXF-001).
	PromoteGrace Duration `yaml:"promote_grace"`
	// StartupGrace is the quiet period after a container starts (EXE-002,
	// EXE-004, CRED-002).
	StartupGrace Duration `yaml:"startup_grace"`
	// ExfilBytesThreshold is the outbound volume per (container,
	// destination) per window that is exfiltration (EXF-003).
	ExfilBytesThreshold int64 `yaml:"exfil_bytes_threshold"`
}

// RuleConfig is the per-rule part of the detect section.
type RuleConfig struct {
	// Enabled turns the rule off when false; absent means on.
	Enabled *bool `yaml:"enabled"`
	// Severity overrides the rule's severity (info, low, medium, high,
	// critical); it pins every finding of the rule, escalations included.
	Severity string `yaml:"severity"`
	// AllowExe holds regexes over the actor's exe path whose findings of
	// this rule are dropped (and counted).
	AllowExe []string `yaml:"allow_exe"`
	// AllowCgroup holds regexes over the actor's container cgroup path whose
	// findings of this rule are dropped (and counted).
	AllowCgroup []string `yaml:"allow_cgroup"`
}

// Selector picks containers by cgroup path, pod namespace or image.
// A container matches when any of the lists matches; an empty selector
// matches nothing.
type Selector struct {
	// CgroupRegex holds regexes over the container's cgroup path. A single
	// string is accepted for one regex.
	CgroupRegex Patterns `yaml:"cgroup_regex"`
	// Namespaces are pod namespaces, compared exactly.
	Namespaces []string `yaml:"namespaces"`
	// Images holds regexes over the container image.
	Images Patterns `yaml:"images"`
}

// AgentAllowlist names GPU monitoring agents: containers by Selector, host
// processes by exe (exact path, or basename when it holds no "/").
type AgentAllowlist struct {
	CgroupRegex Patterns `yaml:"cgroup_regex"`
	Namespaces  []string `yaml:"namespaces"`
	Images      Patterns `yaml:"images"`
	HostExe     []string `yaml:"host_exe"`
}

// Selector returns the container part of a.
func (a AgentAllowlist) Selector() Selector {
	return Selector{CgroupRegex: a.CgroupRegex, Namespaces: a.Namespaces, Images: a.Images}
}

// Patterns is a list of regexes that also reads a single YAML string.
type Patterns []string

// UnmarshalYAML accepts a string or a list of strings.
func (p *Patterns) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := n.Decode(&s); err != nil {
			return fmt.Errorf("line %d: want a regex or a list of regexes", n.Line)
		}
		*p = Patterns{s}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return fmt.Errorf("line %d: want a regex or a list of regexes", n.Line)
	}
	*p = l
	return nil
}

func defaultDetect() DetectConfig {
	return DetectConfig{
		AggregateWindow: Duration(60 * time.Second),
		AggregateIdle:   Duration(2 * time.Second),
		MaxAggregates:   4096,
		StateSize:       16384,
		GPUAgentAllowlist: AgentAllowlist{HostExe: []string{
			"nvidia-smi", "nv-hostengine", "dcgm-exporter", "nvidia-device-plugin", "gpu-feature-discovery",
			"nvidia-persistenced", "nvidia-mig-parted", "nvidia-validator",
		}},
		GPUChildAllowlist:    append([]string(nil), DefaultGPUChildAllowlist...),
		NVHookChildAllowlist: append([]string(nil), DefaultNVHookChildAllowlist...),
		UMHAllowlist:         append([]string(nil), DefaultUMHAllowlist...),
		ModelRoots:           append([]string(nil), DefaultModelRoots...),
		ModelMinBytes:        1 << 20,
		EgressAllowlist:      map[string][]string{"*": {"127.0.0.0/8", "::1/128"}},
		PreloadAllowlist:     map[string][]string{"*": append([]string(nil), DefaultPreloadAllowlist...)},
		ExfilWindow:          Duration(600 * time.Second),
		PromoteGrace:         Duration(300 * time.Second),
		StartupGrace:         Duration(600 * time.Second),
		ExfilBytesThreshold:  256 << 20,
	}
}

var ruleIDRe = regexp.MustCompile(`^[A-Z][A-Z0-9]*-[0-9]{3}$`)

// IsRuleID reports whether s has the shape of a rule id (ESC-001).
func IsRuleID(s string) bool { return ruleIDRe.MatchString(s) }

func (c *DetectConfig) validate() error {
	for _, id := range slices.Sorted(maps.Keys(c.Rules)) {
		rc := c.Rules[id]
		if !IsRuleID(id) {
			return fmt.Errorf("rules: %q is not a rule id (want e.g. ESC-001)", id)
		}
		if rc.Severity != "" {
			switch rc.Severity {
			case "info", "low", "medium", "high", "critical":
			default:
				return fmt.Errorf("rules.%s.severity: %q is not one of info, low, medium, high, critical", id, rc.Severity)
			}
		}
		if err := detectCheckRegexes("rules."+id+".allow_exe", rc.AllowExe); err != nil {
			return err
		}
		if err := detectCheckRegexes("rules."+id+".allow_cgroup", rc.AllowCgroup); err != nil {
			return err
		}
	}
	if c.AggregateWindow <= 0 || c.AggregateWindow.D() > DetectMaxWindow {
		return fmt.Errorf("aggregate_window: %s is not in (0, %s]", c.AggregateWindow.D(), DetectMaxWindow)
	}
	if c.AggregateIdle <= 0 || c.AggregateIdle > c.AggregateWindow {
		return fmt.Errorf("aggregate_idle: %s is not in (0, aggregate_window=%s]", c.AggregateIdle.D(), c.AggregateWindow.D())
	}
	if c.MaxAggregates < 1 || c.MaxAggregates > DetectMaxStateSize {
		return fmt.Errorf("max_aggregates: %d is not in [1, %d]", c.MaxAggregates, DetectMaxStateSize)
	}
	if c.StateSize < DetectMinStateSize || c.StateSize > DetectMaxStateSize {
		return fmt.Errorf("state_size: %d is not in [%d, %d]", c.StateSize, DetectMinStateSize, DetectMaxStateSize)
	}
	for _, k := range slices.Sorted(maps.Keys(c.ContainerImageAllowlist)) {
		if k != "*" && !IsRuleID(k) {
			return fmt.Errorf("container_image_allowlist: key %q is neither a rule id nor \"*\"", k)
		}
		if err := detectCheckRegexes("container_image_allowlist."+k, c.ContainerImageAllowlist[k]); err != nil {
			return err
		}
	}
	if err := c.InferenceSelector.validate("inference_selector"); err != nil {
		return err
	}
	if err := c.GPUAgentAllowlist.Selector().validate("gpu_agent_allowlist"); err != nil {
		return err
	}
	if err := detectCheckNames("gpu_agent_allowlist.host_exe", c.GPUAgentAllowlist.HostExe); err != nil {
		return err
	}
	for _, l := range []struct {
		key string
		v   []string
	}{
		{"gpu_child_allowlist", c.GPUChildAllowlist},
		{"nv_hook_child_allowlist", c.NVHookChildAllowlist},
	} {
		if err := detectCheckRegexes(l.key, l.v); err != nil {
			return err
		}
	}
	if err := detectCheckNames("runtime_binaries_extra", c.RuntimeBinariesExtra); err != nil {
		return err
	}
	for i, p := range c.RuntimeSocketsExtra {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("runtime_sockets_extra[%d]: %q is not an absolute path", i, p)
		}
		if _, err := filepath.Match(p, ""); err != nil {
			return fmt.Errorf("runtime_sockets_extra[%d]: %q: %w", i, p, err)
		}
	}
	if err := detectCheckNames("umh_allowlist", c.UMHAllowlist); err != nil {
		return err
	}
	for i, r := range c.ModelRoots {
		if !strings.HasPrefix(r, "/") {
			return fmt.Errorf("model_roots[%d]: %q is not an absolute path", i, r)
		}
	}
	if c.ModelMinBytes < 0 {
		return fmt.Errorf("model_min_bytes: %d is negative", c.ModelMinBytes)
	}
	for _, m := range []struct {
		key     string
		v       map[string][]string
		isRegex bool
	}{
		{"gpu_workload_allowlist", c.GPUWorkloadAllowlist, true},
		{"model_updaters", c.ModelUpdaters, false},
		{"loader_allowlist", c.LoaderAllowlist, true},
		{"imds_allowlist", c.IMDSAllowlist, true},
		{"preload_allowlist", c.PreloadAllowlist, true},
	} {
		for _, k := range slices.Sorted(maps.Keys(m.v)) {
			if err := CheckWorkloadKey(k); err != nil {
				return fmt.Errorf("%s: %w", m.key, err)
			}
			if m.isRegex {
				if err := detectCheckRegexes(m.key+"."+k, m.v[k]); err != nil {
					return err
				}
			} else if err := detectCheckNames(m.key+"."+k, m.v[k]); err != nil {
				return err
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.EgressAllowlist)) {
		if err := CheckWorkloadKey(k); err != nil {
			return fmt.Errorf("egress_allowlist: %w", err)
		}
		for i, d := range c.EgressAllowlist[k] {
			if _, err := ParseDestination(d); err != nil {
				return fmt.Errorf("egress_allowlist.%s[%d]: %w", k, i, err)
			}
		}
	}
	for i, d := range c.APIServerEndpoints {
		if _, err := ParseDestination(d); err != nil {
			return fmt.Errorf("apiserver_endpoints[%d]: %w", i, err)
		}
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"exfil_window", c.ExfilWindow},
		{"promote_grace", c.PromoteGrace},
		{"startup_grace", c.StartupGrace},
	} {
		if d.v < 0 || d.v.D() > DetectMaxWindow {
			return fmt.Errorf("%s: %s is not in [0, %s]", d.key, d.v.D(), DetectMaxWindow)
		}
	}
	if c.ExfilWindow == 0 {
		return fmt.Errorf("exfil_window: must be positive")
	}
	if c.ExfilBytesThreshold <= 0 {
		return fmt.Errorf("exfil_bytes_threshold: %d is not positive", c.ExfilBytesThreshold)
	}
	return nil
}

func (s Selector) validate(key string) error {
	if err := detectCheckRegexes(key+".cgroup_regex", s.CgroupRegex); err != nil {
		return err
	}
	if err := detectCheckRegexes(key+".images", s.Images); err != nil {
		return err
	}
	return detectCheckNames(key+".namespaces", s.Namespaces)
}

// CheckWorkloadKey validates a key of a workload-keyed map: "*", "host",
// "image=<regex>", "namespace=<name>" or a regex over the cgroup path.
func CheckWorkloadKey(k string) error {
	switch {
	case k == "*" || k == "host":
		return nil
	case strings.HasPrefix(k, "namespace="):
		if k == "namespace=" {
			return fmt.Errorf("key %q: empty namespace", k)
		}
		return nil
	case strings.HasPrefix(k, "image="):
		if _, err := regexp.Compile(strings.TrimPrefix(k, "image=")); err != nil {
			return fmt.Errorf("key %q: bad image regex: %v", k, err)
		}
		return nil
	case k == "":
		return fmt.Errorf("empty key (want \"*\", \"host\", \"image=<regex>\", \"namespace=<name>\" or a cgroup regex)")
	}
	if _, err := regexp.Compile(k); err != nil {
		return fmt.Errorf("key %q: bad cgroup regex: %v", k, err)
	}
	return nil
}

// Destination is an allowed egress destination: a prefix and an optional
// port (0 = any).
type Destination struct {
	Prefix netip.Prefix
	Port   uint16
}

// Contains reports whether addr:port is inside d.
func (d Destination) Contains(addr netip.Addr, port uint16) bool {
	return d.Prefix.Contains(addr.Unmap()) && (d.Port == 0 || d.Port == port)
}

// ParseDestination parses "CIDR", "CIDR:port", "addr", "addr:port" or
// "[v6CIDR]:port". A bare address is a host prefix (/32 or /128).
func ParseDestination(s string) (Destination, error) {
	var d Destination
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		i := strings.Index(s, "]")
		if i < 0 {
			return d, fmt.Errorf("%q: missing ']'", s)
		}
		host = s[1:i]
		rest := s[i+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return d, fmt.Errorf("%q: want [addr]:port", s)
			}
			port = rest[1:]
		}
	} else if strings.Count(s, ":") == 1 {
		i := strings.LastIndex(s, ":")
		host, port = s[:i], s[i+1:]
	}
	if port != "" {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			return d, fmt.Errorf("%q: port %q is not in 1..65535", s, port)
		}
		d.Port = uint16(p)
	}
	// ParseCIDROrAddr unmaps IPv4-mapped forms, as Contains unmaps the
	// address it is asked about.
	p, err := ParseCIDROrAddr(host)
	if err != nil {
		return d, fmt.Errorf("%q is not a CIDR[:port]: %v", s, err)
	}
	d.Prefix = p
	return d, nil
}

func detectCheckRegexes(key string, l []string) error {
	for i, r := range l {
		if _, err := regexp.Compile(r); err != nil {
			return fmt.Errorf("%s[%d]: %q is not a regex: %v", key, i, r, err)
		}
	}
	return nil
}

func detectCheckNames(key string, l []string) error {
	for i, n := range l {
		if strings.TrimSpace(n) == "" {
			return fmt.Errorf("%s[%d]: empty entry", key, i)
		}
	}
	return nil
}
