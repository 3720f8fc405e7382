package config

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// OTLP transports and log bodies.
const (
	OTLPProtocolGRPC = "grpc"
	OTLPProtocolHTTP = "http/protobuf"

	OTLPBodyOCSF = "ocsf"
	OTLPBodyJSON = "json"
)

// OTLPExport is the OpenTelemetry logs exporter (internal/export/otlp): every
// event and finding as one log record, sent to an OpenTelemetry Collector
// over OTLP/gRPC or OTLP/HTTP.
//
// Its queue is its cursor in the export ring: an exporter that falls more
// than export.ring_size events behind (a slow or unreachable collector)
// loses the oldest events, and a batch the collector refuses after the
// retries is lost too; both are counted ("otlp" in the metrics' losses and
// GetStatus) and logged, never dropped silently.
type OTLPExport struct {
	// Endpoint is the collector's host:port (4317 for gRPC, 4318 for HTTP
	// by convention); empty disables the exporter.
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc or http/protobuf.
	Protocol string `yaml:"protocol"`
	// URLPath is the HTTP path of the logs endpoint (http/protobuf only).
	URLPath string `yaml:"url_path"`
	// Insecure sends in plain text. Only for a collector on the node
	// itself (loopback or a node-local agent); otherwise set TLS.
	Insecure bool `yaml:"insecure"`
	// TLS names the PEM files of the connection: the CA that signs the
	// collector's certificate (empty: the system roots) and an optional
	// client certificate and key for mutual TLS.
	TLS OTLPTLS `yaml:"tls"`
	// Headers are sent with every request (e.g. a tenant id). Keep secrets
	// out of the config map: the SDK also reads
	// OTEL_EXPORTER_OTLP_LOGS_HEADERS / OTEL_EXPORTER_OTLP_HEADERS from the
	// environment, which a Kubernetes Secret can fill.
	Headers map[string]string `yaml:"headers"`
	// Compression is gzip or none.
	Compression string `yaml:"compression"`
	// Body is the log record's body: ocsf (the OCSF event as JSON text;
	// events without an OCSF class are counted and skipped) or json (the
	// --tail -o json line).
	Body string `yaml:"body"`
	// ClusterName is the k8s.cluster.name resource attribute.
	ClusterName string `yaml:"cluster_name"`
	// Kinds, when set, sends only these event kinds (e.g. [finding, lost]).
	Kinds []string `yaml:"kinds"`
	// MaxBatch is the most records one export request carries.
	MaxBatch int `yaml:"max_batch"`
	// Timeout bounds one export request, retries included.
	Timeout Duration `yaml:"timeout"`
}

// OTLPTLS names the PEM files of the OTLP connection.
type OTLPTLS struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Bounds of the OTLP exporter.
const (
	MaxOTLPBatch = 8192
)

func defaultOTLP() OTLPExport {
	return OTLPExport{
		Protocol:    OTLPProtocolGRPC,
		URLPath:     "/v1/logs",
		Compression: "gzip",
		Body:        OTLPBodyOCSF,
		MaxBatch:    512,
		Timeout:     Duration(10e9),
	}
}

// Enabled reports whether the exporter is configured.
func (o *OTLPExport) Enabled() bool { return o.Endpoint != "" }

// Validate checks the OTLP settings on their own (the exporter calls it when
// built outside a full Config).
func (o *OTLPExport) Validate() error { return o.validate() }

func (o *OTLPExport) validate() error {
	switch o.Protocol {
	case OTLPProtocolGRPC, OTLPProtocolHTTP:
	default:
		return fmt.Errorf("otlp.protocol: %q is not one of grpc, http/protobuf", o.Protocol)
	}
	switch o.Body {
	case OTLPBodyOCSF, OTLPBodyJSON:
	default:
		return fmt.Errorf("otlp.body: %q is not one of ocsf, json", o.Body)
	}
	switch o.Compression {
	case "gzip", "none":
	default:
		return fmt.Errorf("otlp.compression: %q is not one of gzip, none", o.Compression)
	}
	for i, k := range o.Kinds {
		if _, ok := event.ParseKind(k); !ok {
			return fmt.Errorf("otlp.kinds[%d]: %q is not an event kind", i, k)
		}
	}
	if o.MaxBatch < 1 || o.MaxBatch > MaxOTLPBatch {
		return fmt.Errorf("otlp.max_batch: %d is outside [1, %d]", o.MaxBatch, MaxOTLPBatch)
	}
	if o.Timeout.D() <= 0 {
		return fmt.Errorf("otlp.timeout: must be positive")
	}
	for k := range o.Headers {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return fmt.Errorf("otlp.headers: %q is not a header name", k)
		}
	}
	if o.Endpoint == "" {
		return nil
	}
	if strings.Contains(o.Endpoint, "://") {
		return fmt.Errorf("otlp.endpoint: %q: want host:port without a scheme (TLS unless otlp.insecure)", o.Endpoint)
	}
	_, port, err := net.SplitHostPort(o.Endpoint)
	if err != nil {
		return fmt.Errorf("otlp.endpoint: %q is not host:port: %v", o.Endpoint, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("otlp.endpoint: port %q of %q is not a number in [1, 65535]", port, o.Endpoint)
	}
	if o.Protocol == OTLPProtocolHTTP && !strings.HasPrefix(o.URLPath, "/") {
		return fmt.Errorf("otlp.url_path: %q does not start with /", o.URLPath)
	}
	tlsSet := o.TLS.CA != "" || o.TLS.Cert != "" || o.TLS.Key != ""
	if o.Insecure && tlsSet {
		return fmt.Errorf("otlp.insecure: set together with otlp.tls; choose one")
	}
	if (o.TLS.Cert == "") != (o.TLS.Key == "") {
		return fmt.Errorf("otlp.tls: cert and key go together (mutual TLS)")
	}
	for _, f := range [...]struct{ name, path string }{{"ca", o.TLS.CA}, {"cert", o.TLS.Cert}, {"key", o.TLS.Key}} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			return fmt.Errorf("otlp.tls.%s: %q is not an absolute path", f.name, f.path)
		}
	}
	return nil
}

// KindSet returns the configured kinds as event kinds (nil: every kind).
func (o *OTLPExport) KindSet() []event.Kind {
	var ks []event.Kind
	for _, k := range o.Kinds {
		if kind, ok := event.ParseKind(k); ok && !slices.Contains(ks, kind) {
			ks = append(ks, kind)
		}
	}
	return ks
}
