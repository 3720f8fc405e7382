package config

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/event"
)

func TestOpsDefaults(t *testing.T) {
	c := Default()
	if c.Metrics.Listen != "127.0.0.1:2112" {
		t.Errorf("metrics.listen: got %q; want loopback:2112 (a hostNetwork pod must not publish on every interface)", c.Metrics.Listen)
	}
	if c.Metrics.BPFStats {
		t.Errorf("metrics.bpf_stats: on by default; it costs every hooked syscall")
	}
	if c.LogFormat != LogFormatText {
		t.Errorf("log_format: got %q; want text", c.LogFormat)
	}
	if o := c.Export.OTLP; o.Enabled() || o.Protocol != OTLPProtocolGRPC || o.Body != OTLPBodyOCSF {
		t.Errorf("export.otlp: got %+v; want disabled, grpc, ocsf", o)
	}
}

func TestOpsParse(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string // substring; "" means success
		check   func(t *testing.T, c *Config)
	}{
		{
			name: "everything set",
			yaml: `
log_format: json
metrics: {listen: "10.0.0.5:9100", bpf_stats: true}
export:
  otlp:
    endpoint: otel-agent.observability:4317
    tls: {ca: /etc/k/ca.crt, cert: /etc/k/c.crt, key: /etc/k/c.key}
    headers: {x-scope-orgid: tenant-1}
    body: json
    cluster_name: prod-gpu
    kinds: [finding, lost, finding]
    max_batch: 100
    timeout: 3s
`,
			check: func(t *testing.T, c *Config) {
				if c.LogFormat != "json" || c.Metrics.Listen != "10.0.0.5:9100" || !c.Metrics.BPFStats {
					t.Errorf("got log_format %q, metrics %+v", c.LogFormat, c.Metrics)
				}
				o := c.Export.OTLP
				if !o.Enabled() || o.Body != OTLPBodyJSON || o.ClusterName != "prod-gpu" || o.MaxBatch != 100 ||
					o.Timeout.D() != 3*time.Second || o.Headers["x-scope-orgid"] != "tenant-1" || o.TLS.Key != "/etc/k/c.key" {
					t.Errorf("otlp: got %+v", o)
				}
				if ks := o.KindSet(); len(ks) != 2 || ks[0] != event.KindFinding || ks[1] != event.KindLost {
					t.Errorf("KindSet: got %v; want [finding lost] without the repeat", ks)
				}
			},
		},
		{name: "metrics off", yaml: "metrics: {listen: ''}", check: func(t *testing.T, c *Config) {
			if c.Metrics.Listen != "" {
				t.Errorf("listen: got %q; want empty (off)", c.Metrics.Listen)
			}
		}},
		{name: "otlp over http", yaml: "export: {otlp: {endpoint: 'localhost:4318', protocol: http/protobuf, insecure: true}}"},
		{name: "bad log format", yaml: "log_format: logfmt", wantErr: `log_format: "logfmt" is not one of text, json`},
		{name: "metrics without port", yaml: "metrics: {listen: '127.0.0.1'}", wantErr: "metrics.listen: \"127.0.0.1\" is not host:port"},
		{name: "metrics bad port", yaml: "metrics: {listen: ':http'}", wantErr: "metrics.listen: port \"http\""},
		{name: "metrics unknown key", yaml: "metrics: {port: 2112}", wantErr: "port"},
		{name: "otlp scheme", yaml: "export: {otlp: {endpoint: 'http://c:4317'}}", wantErr: "export.otlp.endpoint: \"http://c:4317\": want host:port without a scheme"},
		{name: "otlp no port", yaml: "export: {otlp: {endpoint: 'collector'}}", wantErr: "export.otlp.endpoint"},
		{name: "otlp port zero", yaml: "export: {otlp: {endpoint: 'c:0'}}", wantErr: "export.otlp.endpoint: port \"0\""},
		{name: "otlp protocol", yaml: "export: {otlp: {protocol: http/json}}", wantErr: "export.otlp.protocol: \"http/json\""},
		{name: "otlp body", yaml: "export: {otlp: {body: xml}}", wantErr: "export.otlp.body: \"xml\""},
		{name: "otlp compression", yaml: "export: {otlp: {compression: zstd}}", wantErr: "export.otlp.compression"},
		{name: "otlp kind", yaml: "export: {otlp: {kinds: [finding, alert]}}", wantErr: "export.otlp.kinds[1]: \"alert\""},
		{name: "otlp batch", yaml: "export: {otlp: {max_batch: 0}}", wantErr: "export.otlp.max_batch: 0"},
		{name: "otlp timeout", yaml: "export: {otlp: {timeout: 0s}}", wantErr: "export.otlp.timeout"},
		{name: "otlp header name", yaml: "export: {otlp: {headers: {'bad name': x}}}", wantErr: "export.otlp.headers: \"bad name\""},
		{name: "otlp insecure and tls", yaml: "export: {otlp: {endpoint: 'c:4317', insecure: true, tls: {ca: /ca.pem}}}", wantErr: "export.otlp.insecure"},
		{name: "otlp cert without key", yaml: "export: {otlp: {endpoint: 'c:4317', tls: {cert: /c.pem}}}", wantErr: "cert and key go together"},
		{name: "otlp relative ca", yaml: "export: {otlp: {endpoint: 'c:4317', tls: {ca: ca.pem}}}", wantErr: "export.otlp.tls.ca"},
		{name: "otlp url path", yaml: "export: {otlp: {endpoint: 'c:4318', protocol: http/protobuf, url_path: v1/logs}}", wantErr: "export.otlp.url_path"},
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
				tt.check(t, cfg)
			}
		})
	}
}

// deploy/sensor.yaml documents the defaults of the new sections: what it
// shows must be what the sensor runs with.
func TestDeployConfigShowsTheOpsDefaults(t *testing.T) {
	cfg, err := Load("../../deploy/sensor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if cfg.LogFormat != def.LogFormat || cfg.Metrics != def.Metrics {
		t.Errorf("log_format %q, metrics %+v; want the defaults %q, %+v", cfg.LogFormat, cfg.Metrics, def.LogFormat, def.Metrics)
	}
	if cfg.Capture.Flood != def.Capture.Flood || cfg.Export.StatusInterval != def.Export.StatusInterval {
		t.Errorf("capture.flood %+v, export.status_interval %s; want the defaults %+v, %s", cfg.Capture.Flood,
			cfg.Export.StatusInterval.D(), def.Capture.Flood, def.Export.StatusInterval.D())
	}
	got, want := cfg.Export.OTLP, def.Export.OTLP
	if len(got.Headers) != 0 || len(got.Kinds) != 0 {
		t.Errorf("otlp headers %v, kinds %v; want empty", got.Headers, got.Kinds)
	}
	got.Headers, got.Kinds, want.Headers, want.Kinds = nil, nil, nil, nil
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("export.otlp:\n got %+v\nwant %+v", got, want)
	}
}
