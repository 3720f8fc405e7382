package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"
)

// GPU ownership sources (GPUConfig.Source).
const (
	// GPUSourceNVML samples the NVIDIA driver through libnvidia-ml.so.1.
	GPUSourceNVML = "nvml"
	// GPUSourceReplay reads ownership from GPUConfig.ReplayFile, a JSON file
	// that a test harness rewrites; for CPU-only hosts.
	GPUSourceReplay = "replay"
	// GPUSourceOff disables GPU ownership.
	GPUSourceOff = "off"
)

// Limits on the GPU section.
const (
	// GPUMinInterval and GPUMaxInterval bound gpu.interval: sampling faster
	// costs driver time for nothing, slower misses short-lived owners.
	GPUMinInterval = 100 * time.Millisecond
	GPUMaxInterval = 2 * time.Second
	// GPUMaxIndex bounds the GPU indexes in gpu.static_alloc.
	GPUMaxIndex = 1023
)

// DefaultPodResourcesSocket is where the kubelet serves the PodResources API.
const DefaultPodResourcesSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"

// GPUConfig drives the GPU ownership sampler and pod GPU assignments.
//
// In YAML:
//
//	gpu:
//	  source: nvml            # nvml | replay | off
//	  interval: 1s            # sampling period, 100ms..2s
//	  library_path: ""        # libnvidia-ml.so.1 to dlopen; "" = search (loader, /run/nvidia/driver, /host)
//	  replay_file: ""         # JSON ownership file, required when source is replay
//	  update_min_bytes: 67108864  # 64 MiB: smaller changes of a process's memory give no "update"
//	  podresources_socket: /var/lib/kubelet/pod-resources/kubelet.sock   # "" disables
//	  podresources_refresh: 10s
//	  static_alloc:           # cgroup-path regex -> GPU indexes (test harnesses)
//	    '^/simctr-infer-': [0]
//
// The replay file holds
//
//	{"processes": [{"gpu": 0, "pid": 1234, "used_bytes": 1073741824}],
//	 "gpus": [{"index": 0, "uuid": "GPU-...", "name": "..."}]}
//
// where "gpus" is optional.
type GPUConfig struct {
	// Source is nvml, replay or off.
	Source string `yaml:"source"`
	// Interval is the sampling period.
	Interval Duration `yaml:"interval"`
	// LibraryPath is the NVML library to load; empty means libnvidia-ml.so.1
	// from the dynamic loader's search path, then from the GPU operator's
	// driver container (/run/nvidia/driver) or the host's /usr at /host.
	LibraryPath string `yaml:"library_path"`
	// ReplayFile is the ownership file read when Source is replay.
	ReplayFile string `yaml:"replay_file"`
	// UpdateMinBytes is the smallest change in a process's used GPU memory,
	// relative to what was last reported, that yields an "update" event.
	UpdateMinBytes uint64 `yaml:"update_min_bytes"`
	// PodResourcesSocket is the kubelet PodResources unix socket; empty
	// disables pod GPU assignments from the kubelet.
	PodResourcesSocket string `yaml:"podresources_socket"`
	// PodResourcesRefresh is how often the assignments are re-listed.
	PodResourcesRefresh Duration `yaml:"podresources_refresh"`
	// StaticAlloc maps a regular expression over cgroup paths to the GPU
	// indexes assigned to matching containers. It stands in for the kubelet
	// where there is none (test harnesses). When several patterns match, the
	// lexically first pattern wins.
	StaticAlloc map[string][]int `yaml:"static_alloc"`
}

func defaultGPU() GPUConfig {
	return GPUConfig{
		Source:              GPUSourceNVML,
		Interval:            Duration(time.Second),
		UpdateMinBytes:      64 << 20,
		PodResourcesSocket:  DefaultPodResourcesSocket,
		PodResourcesRefresh: Duration(10 * time.Second),
	}
}

func (c *GPUConfig) validate() error {
	switch c.Source {
	case GPUSourceNVML, GPUSourceOff:
	case GPUSourceReplay:
		if c.ReplayFile == "" {
			return fmt.Errorf("replay_file: required when source is %q", GPUSourceReplay)
		}
	default:
		return fmt.Errorf("source: %q is not one of nvml, replay, off", c.Source)
	}
	if d := c.Interval.D(); d < GPUMinInterval || d > GPUMaxInterval {
		return fmt.Errorf("interval: %s is outside %s..%s", d, GPUMinInterval, GPUMaxInterval)
	}
	if c.PodResourcesSocket != "" {
		if d := c.PodResourcesRefresh.D(); d < time.Second || d > 10*time.Minute {
			return fmt.Errorf("podresources_refresh: %s is outside 1s..10m", d)
		}
	}
	// Sorted so that the error for a config with several bad keys is stable.
	for _, p := range slices.Sorted(maps.Keys(c.StaticAlloc)) {
		if p == "" {
			return fmt.Errorf("static_alloc: empty pattern")
		}
		if _, err := regexp.Compile(p); err != nil {
			return fmt.Errorf("static_alloc: pattern %q: %w", p, err)
		}
		for _, i := range c.StaticAlloc[p] {
			if i < 0 || i > GPUMaxIndex {
				return fmt.Errorf("static_alloc: pattern %q: GPU index %d is outside 0..%d", p, i, GPUMaxIndex)
			}
		}
	}
	return nil
}
