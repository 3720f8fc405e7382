package config

import "fmt"

// MetricsConfig drives the Prometheus endpoint (internal/metrics).
type MetricsConfig struct {
	// Listen is the host:port of the /metrics endpoint; empty turns it off.
	// The default binds loopback only: the DaemonSet runs in the host's
	// network namespace, where ":2112" would publish the endpoint on every
	// interface of the node. Bind the pod IP (the node's address under
	// hostNetwork) when Prometheus scrapes it, e.g. with the flag
	// --metrics-listen=[$(POD_IP)]:2112.
	Listen string `yaml:"listen"`
	// BPFStats turns on the kernel's run-time statistics of BPF programs
	// (BPF_ENABLE_STATS) for as long as the sensor runs, so that per-program
	// run time and run counts are exported. It costs two clock reads per
	// program run, on every hooked syscall, and needs CAP_SYS_ADMIN; the
	// sysctl kernel.bpf_stats_enabled=1 does the same node-wide. When
	// statistics are on for either reason they are exported.
	BPFStats bool `yaml:"bpf_stats"`
}

// DefaultMetricsListen is the default address of the metrics endpoint.
const DefaultMetricsListen = "127.0.0.1:2112"

func defaultMetrics() MetricsConfig {
	return MetricsConfig{Listen: DefaultMetricsListen}
}

func (c *MetricsConfig) validate() error {
	if err := checkListen(c.Listen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return nil
}
