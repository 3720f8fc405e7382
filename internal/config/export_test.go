package config

import (
	"strings"
	"testing"
	"time"
)

func TestExportDefaults(t *testing.T) {
	c := Default().Export
	if c.UnixSocket != "/run/kestrel/sensor.sock" {
		t.Errorf("unix_socket: got %q; want /run/kestrel/sensor.sock", c.UnixSocket)
	}
	if c.TCPListen != "" {
		t.Errorf("tcp_listen: got %q; want empty (TCP is opt-in)", c.TCPListen)
	}
	if c.RingSize < MinRingSize {
		t.Errorf("ring_size: got %d", c.RingSize)
	}
	if c.File.Format != FormatJSON {
		t.Errorf("file.format: got %q; want json", c.File.Format)
	}
	if err := c.validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestExportParse(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string // substring; "" means success
		check   func(t *testing.T, c ExportConfig)
	}{
		{
			name: "full mTLS and file",
			yaml: `
export:
  ring_size: 1024
  unix_socket: /tmp/k/s.sock
  tcp_listen: ":8443"
  health_listen: ":9876"
  tls: {cert: /etc/k/tls.crt, key: /etc/k/tls.key, client_ca: /etc/k/ca.crt, client_names: [siem]}
  subscriber_deadline: 2s
  heartbeat_interval: 1s
  max_subscribers: 4
  file: {path: /var/log/k/events.jsonl, format: ocsf, max_bytes: 1048576, keep: 3}
`,
			check: func(t *testing.T, c ExportConfig) {
				if c.RingSize != 1024 || c.TCPListen != ":8443" || c.HealthListen != ":9876" || c.TLS.ClientCA != "/etc/k/ca.crt" {
					t.Errorf("got %+v", c)
				}
				if c.SubscriberDeadline.D() != 2*time.Second || c.HeartbeatInterval.D() != time.Second {
					t.Errorf("durations: got %s, %s", c.SubscriberDeadline.D(), c.HeartbeatInterval.D())
				}
				if c.File.Format != FormatOCSF || c.File.Keep != 3 || c.File.MaxBytes != 1<<20 {
					t.Errorf("file: got %+v", c.File)
				}
				if len(c.TLS.ClientNames) != 1 || c.TLS.ClientNames[0] != "siem" {
					t.Errorf("client_names: got %v", c.TLS.ClientNames)
				}
			},
		},
		{name: "tcp without tls", yaml: "export: {tcp_listen: ':8443'}", wantErr: "export.tcp_listen: TCP is served only with mutual TLS"},
		{name: "tcp with cert but no client ca", yaml: "export: {tcp_listen: ':8443', tls: {cert: /a, key: /b}}", wantErr: "mutual TLS"},
		{name: "tcp not host:port", yaml: "export: {tcp_listen: '8443', tls: {cert: /a, key: /b, client_ca: /c}}", wantErr: "export.tcp_listen: \"8443\" is not host:port"},
		{name: "health not host:port", yaml: "export: {health_listen: '9876'}", wantErr: "export.health_listen"},
		{name: "health on the mTLS port", yaml: "export: {health_listen: ':8443', tcp_listen: ':8443', tls: {cert: /a, key: /b, client_ca: /c}}", wantErr: "also tcp_listen"},
		{name: "relative cert", yaml: "export: {tls: {cert: a.crt}}", wantErr: "export.tls.cert"},
		{name: "ring too small", yaml: "export: {ring_size: 3}", wantErr: "export.ring_size: 3"},
		{name: "ring too big", yaml: "export: {ring_size: 100000000}", wantErr: "export.ring_size"},
		{name: "relative socket", yaml: "export: {unix_socket: run/s.sock}", wantErr: "export.unix_socket"},
		{name: "no listener", yaml: "export: {unix_socket: ''}", wantErr: "no gRPC listener"},
		{name: "zero deadline", yaml: "export: {subscriber_deadline: 0s}", wantErr: "export.subscriber_deadline"},
		{name: "bad duration", yaml: "export: {heartbeat_interval: soon}", wantErr: "not a duration"},
		{name: "status interval too short", yaml: "export: {status_interval: 10ms}", wantErr: "export.status_interval: 10ms is not 0 (none) or between 1s and 24h"},
		{name: "status interval too long", yaml: "export: {status_interval: 25h}", wantErr: "export.status_interval: 25h0m0s"},
		{name: "zero subscribers", yaml: "export: {max_subscribers: 0}", wantErr: "export.max_subscribers"},
		{name: "bad format", yaml: "export: {file: {path: /x, format: xml}}", wantErr: "export.file.format: \"xml\""},
		{name: "relative file", yaml: "export: {file: {path: x.jsonl}}", wantErr: "export.file.path"},
		{name: "tiny file", yaml: "export: {file: {path: /x, max_bytes: 10}}", wantErr: "export.file.max_bytes"},
		{name: "keep zero", yaml: "export: {file: {path: /x, keep: 0}}", wantErr: "export.file.keep"},
		{name: "unknown key", yaml: "export: {ringsize: 10}", wantErr: "ringsize"},
		{name: "empty client name", yaml: "export: {tls: {client_names: ['']}}", wantErr: "export.tls.client_names[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse(strings.NewReader(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.check != nil {
				tt.check(t, cfg.Export)
			}
		})
	}
}
