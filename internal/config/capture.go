package config

import "fmt"

// CaptureConfig drives the kernel side: ring buffer sizing and the in-kernel
// path filters that decide which opens cross into user space.
type CaptureConfig struct {
	// RingBufferBytes is the size of the event ring buffer (power of two).
	RingBufferBytes int `yaml:"ring_buffer_bytes"`
	// PollInterval is how often user space drains the ring buffer when no
	// wakeup arrived (events are submitted without a per-event wakeup).
	PollInterval Duration `yaml:"poll_interval"`
	// EgressReportInterval is how often per-socket byte counters are reported.
	EgressReportInterval Duration `yaml:"egress_report_interval"`
	// WatchPrefixes are absolute path prefixes whose opens are reported.
	WatchPrefixes []string `yaml:"watch_prefixes"`
	// WatchSuffixes are path suffixes (case-insensitive) whose opens are reported.
	WatchSuffixes []string `yaml:"watch_suffixes"`
	// WatchNames are exact basenames whose opens are reported (release_agent, core_pattern ...).
	WatchNames []string `yaml:"watch_names"`
}

func defaultCapture() CaptureConfig {
	return CaptureConfig{
		RingBufferBytes:      8 << 20,
		PollInterval:         Duration(50e6),
		EgressReportInterval: Duration(2e9),
	}
}

func (c *CaptureConfig) validate() error {
	if c.RingBufferBytes < 4096 || c.RingBufferBytes&(c.RingBufferBytes-1) != 0 {
		return fmt.Errorf("ring_buffer_bytes: %d is not a power of two >= 4096", c.RingBufferBytes)
	}
	if c.PollInterval <= 0 {
		return fmt.Errorf("poll_interval: must be positive")
	}
	if c.EgressReportInterval <= 0 {
		return fmt.Errorf("egress_report_interval: must be positive")
	}
	return nil
}
