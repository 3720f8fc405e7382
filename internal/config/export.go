package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// ExportConfig drives the event ring, the gRPC listeners and the file
// exporter (docs/output.md, internal/export).
type ExportConfig struct {
	// RingSize is how many events the in-memory export ring keeps for
	// subscribers, replay and resume.
	RingSize int `yaml:"ring_size"`
	// UnixSocket is the path of the gRPC unix socket (mode 0600). Empty
	// disables the unix listener.
	UnixSocket string `yaml:"unix_socket"`
	// TCPListen is an optional host:port for a TCP listener. It is served
	// only with mutual TLS (see TLS); setting it without TLS is an error.
	TCPListen string `yaml:"tcp_listen"`
	// TLS holds the certificates of the TCP listener.
	TLS TLSConfig `yaml:"tls"`
	// HealthListen is an optional host:port serving only the plain-text
	// grpc.health.v1 service, for kubelet gRPC probes (which cannot present
	// client certificates). Nothing else is served there.
	HealthListen string `yaml:"health_listen"`
	// SubscriberDeadline is how long one stream send may stay blocked before
	// the subscriber is closed with RESOURCE_EXHAUSTED.
	SubscriberDeadline Duration `yaml:"subscriber_deadline"`
	// HeartbeatInterval is how often an idle subscriber gets a heartbeat.
	HeartbeatInterval Duration `yaml:"heartbeat_interval"`
	// MaxSubscribers bounds concurrent Subscribe streams.
	MaxSubscribers int `yaml:"max_subscribers"`
	// IdleTimeout: when every subscriber slot is taken, a subscriber that
	// has delivered nothing (heartbeats aside) for this long gives its slot
	// to a new one; it is told to resume with its cursor.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxFilters bounds the allow plus deny filters of one subscription.
	MaxFilters int `yaml:"max_filters"`
	// MaxFilterCost bounds what one subscription's filters cost per event:
	// the compiled size of its regexes plus one per filter and list entry.
	MaxFilterCost int `yaml:"max_filter_cost"`
	// MaxTotalFilterCost bounds the filter cost of all live subscriptions.
	MaxTotalFilterCost int `yaml:"max_total_filter_cost"`
	// MaxConnections bounds the open connections of each listener (unix,
	// TCP and health are bounded apart, so a flood on one never starves
	// another); connections over it are closed at once and counted.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerPeer bounds the TCP connections of one remote
	// address (0: no per-address bound).
	MaxConnectionsPerPeer int `yaml:"max_connections_per_peer"`
	// HandshakeTimeout bounds a new connection's TLS handshake and HTTP/2
	// preface: a peer that connects and never speaks is dropped after it.
	HandshakeTimeout Duration `yaml:"handshake_timeout"`
	// File is the optional JSON-lines file exporter.
	File FileExport `yaml:"file"`
	// OTLP is the optional OpenTelemetry logs exporter (otlp.go).
	OTLP OTLPExport `yaml:"otlp"`
}

// TLSConfig names the PEM files of the mutual-TLS TCP listener. The files
// are re-read when they change on disk, so a rotated Secret takes effect
// without a restart.
type TLSConfig struct {
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
	ClientCA string `yaml:"client_ca"`
	// ClientNames, when set, restricts clients to certificates whose common
	// name or a DNS/URI SAN is in the list.
	ClientNames []string `yaml:"client_names"`
}

// Enabled reports whether any TLS file is configured.
func (t TLSConfig) Enabled() bool { return t.Cert != "" || t.Key != "" || t.ClientCA != "" }

// File export formats.
const (
	FormatJSON = "json"
	FormatOCSF = "ocsf"
)

// FileExport is the JSON-lines file exporter with size-based rotation.
type FileExport struct {
	// Path of the live file; empty disables the exporter. Rotated files are
	// Path.1 (newest) .. Path.Keep (oldest).
	Path string `yaml:"path"`
	// Format is json (the --tail -o json contract) or ocsf.
	Format string `yaml:"format"`
	// MaxBytes is the size at which the file is rotated.
	MaxBytes int64 `yaml:"max_bytes"`
	// Keep is how many rotated files are kept.
	Keep int `yaml:"keep"`
}

// Bounds of the export section.
const (
	MinRingSize = 16
	MaxRingSize = 1 << 22
	minFileSize = 4096
	maxFileSize = 1 << 40
	maxKeep     = 100
)

func defaultExport() ExportConfig {
	return ExportConfig{
		RingSize:           65536,
		UnixSocket:         "/run/kestrel/sensor.sock",
		SubscriberDeadline: Duration(5e9),
		HeartbeatInterval:  Duration(10e9),
		MaxSubscribers:     32,
		IdleTimeout:        Duration(time.Minute),
		MaxFilters:         32,
		MaxFilterCost:      20000,
		MaxTotalFilterCost: 200000,
		MaxConnections:     128,
		// A SIEM behind one NAT address opens a few connections, not dozens.
		MaxConnectionsPerPeer: 16,
		HandshakeTimeout:      Duration(5 * time.Second),
		File: FileExport{
			Format:   FormatJSON,
			MaxBytes: 100 << 20,
			Keep:     5,
		},
		OTLP: defaultOTLP(),
	}
}

func (c *ExportConfig) validate() error {
	if c.RingSize < MinRingSize || c.RingSize > MaxRingSize {
		return fmt.Errorf("ring_size: %d is outside [%d, %d]", c.RingSize, MinRingSize, MaxRingSize)
	}
	if c.UnixSocket != "" && !filepath.IsAbs(c.UnixSocket) {
		return fmt.Errorf("unix_socket: %q is not an absolute path", c.UnixSocket)
	}
	if len(c.UnixSocket) > 107 {
		return fmt.Errorf("unix_socket: %q is longer than the 107 bytes a socket path may have", c.UnixSocket)
	}
	if err := c.validateListeners(); err != nil {
		return err
	}
	// In key order, so that the first problem reported does not vary.
	for _, f := range [...]struct{ name, path string }{{"cert", c.TLS.Cert}, {"key", c.TLS.Key}, {"client_ca", c.TLS.ClientCA}} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			return fmt.Errorf("tls.%s: %q is not an absolute path", f.name, f.path)
		}
	}
	for i, n := range c.TLS.ClientNames {
		if strings.TrimSpace(n) == "" {
			return fmt.Errorf("tls.client_names[%d]: empty name", i)
		}
	}
	for _, d := range []struct {
		key      string
		v        Duration
		min, max time.Duration
	}{
		{"subscriber_deadline", c.SubscriberDeadline, 10 * time.Millisecond, 10 * time.Minute},
		{"heartbeat_interval", c.HeartbeatInterval, 10 * time.Millisecond, time.Hour},
		{"idle_timeout", c.IdleTimeout, time.Second, 24 * time.Hour},
		{"handshake_timeout", c.HandshakeTimeout, 100 * time.Millisecond, 2 * time.Minute},
	} {
		if err := checkDuration(d.key, d.v, d.min, d.max); err != nil {
			return err
		}
	}
	for _, n := range []struct {
		key      string
		v        int
		min, max int
	}{
		{"max_subscribers", c.MaxSubscribers, 1, 1024},
		{"max_filters", c.MaxFilters, 1, 1024},
		{"max_filter_cost", c.MaxFilterCost, 1, 10_000_000},
		{"max_total_filter_cost", c.MaxTotalFilterCost, 1, 100_000_000},
		{"max_connections", c.MaxConnections, 2, 65536},
		{"max_connections_per_peer", c.MaxConnectionsPerPeer, 0, 65536},
	} {
		if n.v < n.min || n.v > n.max {
			return fmt.Errorf("%s: %d is outside [%d, %d]", n.key, n.v, n.min, n.max)
		}
	}
	if c.MaxFilterCost > c.MaxTotalFilterCost {
		return fmt.Errorf("max_filter_cost: %d is more than max_total_filter_cost %d", c.MaxFilterCost, c.MaxTotalFilterCost)
	}
	if c.MaxConnections <= c.MaxSubscribers {
		return fmt.Errorf("max_connections: %d leaves no room beside max_subscribers %d for status calls and probes", c.MaxConnections, c.MaxSubscribers)
	}
	if err := c.OTLP.validate(); err != nil {
		return err
	}
	return c.File.validate()
}

// Validate checks the file exporter settings on their own (the exporter
// calls it when built outside a full Config).
func (f *FileExport) Validate() error { return f.validate() }

func (f *FileExport) validate() error {
	switch f.Format {
	case FormatJSON, FormatOCSF:
	default:
		return fmt.Errorf("file.format: %q is not one of json, ocsf", f.Format)
	}
	if f.Path == "" {
		return nil
	}
	if !filepath.IsAbs(f.Path) {
		return fmt.Errorf("file.path: %q is not an absolute path", f.Path)
	}
	if f.MaxBytes < minFileSize || f.MaxBytes > maxFileSize {
		return fmt.Errorf("file.max_bytes: %d is outside [%d, %d]", f.MaxBytes, minFileSize, int64(maxFileSize))
	}
	if f.Keep < 1 || f.Keep > maxKeep {
		return fmt.Errorf("file.keep: %d is outside [1, %d]", f.Keep, maxKeep)
	}
	return nil
}

// validateListeners checks the gRPC and health listeners together: Validate
// calls it for the file, ApplyListenFlags again once the command line has set
// addresses over the file's.
func (c *ExportConfig) validateListeners() error {
	if c.UnixSocket == "" && c.TCPListen == "" {
		return fmt.Errorf("unix_socket: empty and no tcp_listen: the sensor would have no gRPC listener")
	}
	if c.TCPListen != "" {
		if err := checkListen(c.TCPListen); err != nil {
			return fmt.Errorf("tcp_listen: %w", err)
		}
		if c.TLS.Cert == "" || c.TLS.Key == "" || c.TLS.ClientCA == "" {
			return fmt.Errorf("tcp_listen: TCP is served only with mutual TLS: set export.tls.cert, export.tls.key and export.tls.client_ca")
		}
	}
	if c.HealthListen != "" {
		if err := checkListen(c.HealthListen); err != nil {
			return fmt.Errorf("health_listen: %w", err)
		}
		if c.TCPListen != "" && sameListener(c.HealthListen, c.TCPListen) {
			return fmt.Errorf("health_listen: %q is also tcp_listen (%q); use another port", c.HealthListen, c.TCPListen)
		}
	}
	return nil
}
