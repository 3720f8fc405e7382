package config

import (
	"fmt"
	"strings"
	"time"
)

// CaptureConfig drives the kernel side: ring buffer sizing and the in-kernel
// path filters that decide which opens cross into user space.
//
// A successful open of a model file the sensor knows, a kernel knob, a block
// device or kernel memory, or another namespace's file is reported whatever
// path reached it (the kernel decides on the file it opened; see
// bpf/open.bpf.h). Other opens, and every failed one, are decided on the
// path as passed: the filter reports one when any of these match:
//   - the path as passed starts with one of WatchPrefixes (absolute paths only;
//     end a directory with "/" so that "/models/" does not match "/models2");
//   - the path ends with one of WatchSuffixes, compared case-insensitively;
//   - the basename is one of WatchNames (a suffix "/name" in the kernel, which
//     also matches a bare relative "name");
//   - the path is /proc/<pid|self|thread-self>/[task/<tid>/]X and X starts
//     with one of WatchProcEntries, or the path names a numeric pid and X
//     starts with one of WatchProcPidEntries.
//
// A relative path is matched by suffix and name as passed, and by prefix
// after the kernel joins it with its base directory (the cwd or the dirfd's
// directory, whose path it caches per directory); ".." is not normalized.
// A reported open carries the absolute path of the file it opened.
type CaptureConfig struct {
	// RingBufferBytes is the size of the event ring buffer (power of two).
	RingBufferBytes int `yaml:"ring_buffer_bytes"`
	// PollInterval is how often user space drains the ring buffer when no
	// wakeup arrived (events are submitted without a per-event wakeup).
	PollInterval Duration `yaml:"poll_interval"`
	// WakeupBytes makes the kernel wake the reader early once the ring holds
	// this many bytes, so a burst is drained before the ring fills.
	WakeupBytes int `yaml:"wakeup_bytes"`
	// EgressReportInterval is how often per-socket byte counters are reported.
	EgressReportInterval Duration `yaml:"egress_report_interval"`
	// OpenRepeatWindow: a process image opening the same file with the same
	// access mode again within this window after a reported open is counted
	// in the kernel, not reported; the next report of that file carries the
	// count (repeats). A first open and a failed one are always reported.
	// 0 reports every open.
	OpenRepeatWindow Duration `yaml:"open_repeat_window"`
	// WatchPrefixes are absolute path prefixes whose opens are reported.
	WatchPrefixes []string `yaml:"watch_prefixes"`
	// WatchSuffixes are path suffixes (case-insensitive) whose opens are reported.
	WatchSuffixes []string `yaml:"watch_suffixes"`
	// WatchNames are exact basenames whose opens are reported (release_agent, core_pattern ...).
	WatchNames []string `yaml:"watch_names"`
	// WatchProcEntries are entries under /proc/<pid>/ whose opens are reported
	// ("ns/", "root", "mem", "environ" ...).
	WatchProcEntries []string `yaml:"watch_proc_entries"`
	// WatchProcPidEntries are entries under /proc/<numeric pid>/ only: a
	// process reading its own /proc/self/maps is routine, reading another
	// process's memory or environment is not.
	WatchProcPidEntries []string `yaml:"watch_proc_pid_entries"`
}

// Limits of the kernel filter tables (bpf/open.bpf.h).
const (
	// MaxWatchPrefix is the longest prefix the kernel compares, in bytes.
	MaxWatchPrefix = 64
	// MaxWatchSuffix is the longest suffix (or "/"+name), in bytes.
	MaxWatchSuffix = 32
	// MinWatchSuffix is the shortest suffix (or "/"+name), in bytes.
	MinWatchSuffix = 3
	// MaxWatchProcEntry is the longest /proc/<pid>/ entry, in bytes.
	MaxWatchProcEntry = 16
	// MaxWatchEntries bounds each table.
	MaxWatchEntries = 1024
	// MaxRingBufferBytes bounds the kernel ring buffer (locked kernel memory).
	MaxRingBufferBytes = 1 << 30
)

// DefaultWatchSuffixes are model-artifact extensions and sensitive file
// endings (docs/detection.md#model-files; ESC-006/008, CRED-003).
var DefaultWatchSuffixes = []string{
	// model weights and serialized models
	".safetensors", ".gguf", ".ggml", ".pt", ".pth", ".ckpt", ".onnx", ".onnx_data", ".onnx.data",
	".h5", ".hdf5", ".keras", ".tflite", ".engine", ".plan", ".trt", ".nemo", ".mar", ".llamafile",
	".msgpack", ".mlmodel", ".bin", ".pkl", ".pickle", ".joblib", ".npz", ".npy",
	// kernel modules
	".ko", ".ko.xz", ".ko.zst", ".ko.gz",
	// credentials that unlock model stores
	"/.aws/credentials", "/.cache/huggingface/token", "/.kube/config", "/.docker/config.json",
	"/.huggingface/token", "/.git-credentials",
	// runtime sockets wherever they are mounted
	"/docker.sock", "/containerd.sock", "/containerd.sock.ttrpc", "/crio.sock", "/podman.sock",
	"/cri-dockerd.sock", "/dockershim.sock",
}

// DefaultWatchNames are basenames reported wherever they are.
var DefaultWatchNames = []string{
	"release_agent", "notify_on_release", "core_pattern", "uevent_helper", "saved_model.pb",
	"ld.so.preload",
	// runtime and NVIDIA toolkit binaries (opened for write = overwrite, ESC-009)
	"runc", "crun", "nvidia-container-runtime", "nvidia-container-runtime-hook", "nvidia-container-toolkit",
	"nvidia-container-cli", "nvidia-ctk", "nvidia-cdi-hook",
}

// DefaultWatchPrefixes are model roots, devices, kernel knobs, loader
// configuration, secrets and runtime state (docs/detection.md).
var DefaultWatchPrefixes = []string{
	// model roots
	"/models/", "/mnt/models/", "/opt/ml/model", "/data/models/", "/workspace/models/", "/opt/nim/.cache/",
	"/root/.cache/huggingface/", "/usr/share/ollama/.ollama/models/", "/root/.ollama/models/",
	// GPU and raw devices, kernel memory
	"/dev/nvidia", "/dev/mem", "/dev/kmem", "/dev/port", "/proc/kcore", "/dev/sd", "/dev/nvme", "/dev/vd",
	"/dev/xvd", "/dev/dm-", "/dev/mapper/",
	// kernel usermode-helper knobs
	"/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sys/kernel/sysrq",
	"/proc/sys/kernel/core_pipe_limit", "/sys/kernel/uevent_helper", "/proc/sysrq-trigger",
	"/proc/sys/fs/binfmt_misc/",
	// dynamic loader hijack
	"/etc/ld.so.preload", "/etc/ld.so.conf", "/lib64/ld-linux", "/lib/ld-linux",
	"/lib/x86_64-linux-gnu/ld-linux", "/lib/aarch64-linux-gnu/ld-linux",
	// secrets and cluster credentials
	"/var/run/secrets/", "/run/secrets/", "/etc/kubernetes/", "/var/lib/kubelet/", "/etc/shadow",
	// runtime sockets and state
	"/run/containerd/", "/var/run/containerd/", "/run/docker.sock", "/var/run/docker.sock", "/run/crio/",
	"/var/run/crio/", "/run/podman/", "/run/nvidia-persistenced/", "/run/nvidia-container-devices",
	// host filesystem mounted into a container (ESC-005)
	"/host/", "/rootfs/", "/hostfs/", "/node/",
	// shared-memory staging of copied weights (EXF-001 taint propagation, EXF-004)
	"/dev/shm/",
}

// DefaultWatchProcEntries are /proc/<pid|self>/ entries used to reach host
// namespaces or filesystems, or to overwrite a runtime (ESC-004/005/009).
var DefaultWatchProcEntries = []string{"ns/", "root", "cwd", "exe", "map_files/", "fd/"}

// DefaultWatchProcPidEntries are /proc/<pid>/ entries that read another
// process's memory or secrets (GPU-004, CRED-003).
var DefaultWatchProcPidEntries = []string{"mem", "environ", "maps"}

func defaultCapture() CaptureConfig {
	return CaptureConfig{
		RingBufferBytes:      8 << 20,
		PollInterval:         Duration(50e6),
		WakeupBytes:          1 << 20,
		EgressReportInterval: Duration(2e9),
		OpenRepeatWindow:     Duration(1e9),
		WatchPrefixes:        append([]string(nil), DefaultWatchPrefixes...),
		WatchSuffixes:        append([]string(nil), DefaultWatchSuffixes...),
		WatchNames:           append([]string(nil), DefaultWatchNames...),
		WatchProcEntries:     append([]string(nil), DefaultWatchProcEntries...),
		WatchProcPidEntries:  append([]string(nil), DefaultWatchProcPidEntries...),
	}
}

func (c *CaptureConfig) validate() error {
	if c.RingBufferBytes < 4096 || c.RingBufferBytes > MaxRingBufferBytes || c.RingBufferBytes&(c.RingBufferBytes-1) != 0 {
		return fmt.Errorf("ring_buffer_bytes: %d is not a power of two in [4096, %d]", c.RingBufferBytes, MaxRingBufferBytes)
	}
	if err := checkDuration("poll_interval", c.PollInterval, time.Millisecond, 10*time.Second); err != nil {
		return err
	}
	if c.WakeupBytes <= 0 || c.WakeupBytes > c.RingBufferBytes {
		return fmt.Errorf("wakeup_bytes: %d is not between 1 and ring_buffer_bytes (%d)", c.WakeupBytes, c.RingBufferBytes)
	}
	if err := checkDuration("egress_report_interval", c.EgressReportInterval, 100*time.Millisecond, 10*time.Minute); err != nil {
		return err
	}
	if c.OpenRepeatWindow < 0 || c.OpenRepeatWindow.D() > time.Hour {
		return fmt.Errorf("open_repeat_window: %s is not between 0 (report every open) and 1h", c.OpenRepeatWindow.D())
	}
	for _, t := range []struct {
		key  string
		list []string
		max  int
		abs  bool
	}{
		{"watch_prefixes", c.WatchPrefixes, MaxWatchPrefix, true},
		{"watch_suffixes", c.WatchSuffixes, MaxWatchSuffix, false},
		{"watch_names", c.WatchNames, MaxWatchSuffix - 1, false},
		{"watch_proc_entries", c.WatchProcEntries, MaxWatchProcEntry, false},
		{"watch_proc_pid_entries", c.WatchProcPidEntries, MaxWatchProcEntry, false},
	} {
		if len(t.list) > MaxWatchEntries {
			return fmt.Errorf("%s: %d entries, at most %d", t.key, len(t.list), MaxWatchEntries)
		}
		for i, s := range t.list {
			switch {
			case s == "":
				return fmt.Errorf("%s[%d]: empty", t.key, i)
			case t.key == "watch_suffixes" && len(s) < MinWatchSuffix:
				return fmt.Errorf("%s[%d]: %q is shorter than %d bytes (the kernel gates on the last %d)", t.key, i, s, MinWatchSuffix, MinWatchSuffix)
			case t.key == "watch_names" && len(s) < MinWatchSuffix-1:
				return fmt.Errorf("%s[%d]: %q is shorter than %d bytes", t.key, i, s, MinWatchSuffix-1)
			case len(s) > t.max:
				return fmt.Errorf("%s[%d]: %q is longer than %d bytes (the kernel compares at most that)", t.key, i, s, t.max)
			case strings.IndexByte(s, 0) >= 0:
				return fmt.Errorf("%s[%d]: %q contains a NUL byte", t.key, i, s)
			case t.abs && s[0] != '/':
				return fmt.Errorf("%s[%d]: %q is not an absolute path", t.key, i, s)
			case t.key == "watch_names" && strings.IndexByte(s, '/') >= 0:
				return fmt.Errorf("%s[%d]: %q is a basename and must not contain '/'", t.key, i, s)
			}
		}
	}
	return nil
}
