// Package otlp exports the sensor's events and findings as OpenTelemetry log
// records over OTLP (gRPC or HTTP/protobuf), the path a node agent takes to
// an OpenTelemetry Collector and the SIEM behind it.
//
// The Exporter follows the export ring like every other consumer: its queue
// is its cursor's lag in the ring, bounded by the ring's size, plus one
// batch in flight. Events it falls too far behind to read, and batches the
// collector refuses after the retries, are counted as lost (Stats.Lost,
// Stats.Failed), logged, and reported in-band where the body allows it; none
// is dropped silently.
package otlp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // the "gzip" compressor of otlp.compression

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export"
)

// ScopeName is the instrumentation scope of the records.
const ScopeName = "github.com/kestrel-sec/kestrel"

// ShutdownGrace is how long requests may go on once Run's context is done.
// It fits the DaemonSet's termination grace period with room to detach.
const ShutdownGrace = 3 * time.Second

// ServiceName is the service.name resource attribute.
const ServiceName = "kestrel-sensor"

// Options are the optional settings of an Exporter; nil is valid.
type Options struct {
	// NodeName is k8s.node.name (the DaemonSet's NODE_NAME); host.name is
	// always the host's name.
	NodeName string
	// Version is service.version and the OCSF product version.
	Version string
	// InstanceID is service.instance.id and prefixes OCSF uids (the ring's
	// InstanceID).
	InstanceID string
	// From is the sequence number of the first event Run sends (1: all the
	// ring holds); 0 starts at the ring's next event.
	From uint64
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Stats are an Exporter's counters.
type Stats struct {
	Sent     uint64 // records the collector accepted
	Skipped  uint64 // events with no OCSF class (ocsf body)
	Filtered uint64 // events of kinds not in otlp.kinds
	Failed   uint64 // records of batches the collector refused or never answered, after retries
	Lost     uint64 // events that fell out of the ring before being read
	Batches  uint64 // export requests that succeeded
}

// Exporter sends events to an OpenTelemetry Collector. Create it with New,
// run it with Run, stop it with Shutdown.
//
// Stats is safe for concurrent use; Run must be called once.
type Exporter struct {
	cfg      config.OTLPExport
	log      *slog.Logger
	exp      sdklog.Exporter
	provider *sdklog.LoggerProvider
	logger   otellog.Logger
	batch    *batchProcessor
	ocsf     *export.OCSFEncoder
	kinds    uint32 // bit per event.Kind; 0 = every kind
	from     uint64
	lastWarn time.Time // Run's goroutine only

	mu    sync.Mutex
	stats Stats
}

// New validates cfg and builds the exporter; it does not connect yet (the
// OTLP clients connect lazily and reconnect on their own).
func New(ctx context.Context, cfg config.OTLPExport, opts *Options) (*Exporter, error) {
	if opts == nil {
		opts = &Options{}
	}
	if !cfg.Enabled() {
		return nil, errors.New("create OTLP exporter: export.otlp.endpoint is empty")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("create OTLP exporter: export.%w", err)
	}
	exp, err := newClient(ctx, cfg)
	if err != nil {
		return nil, err
	}
	x := &Exporter{cfg: cfg, log: opts.Logger, exp: exp, batch: &batchProcessor{}, from: opts.From}
	if x.log == nil {
		x.log = slog.Default()
	}
	for _, k := range cfg.KindSet() {
		x.kinds |= 1 << k
	}
	if cfg.Body == config.OTLPBodyOCSF {
		x.ocsf = export.NewOCSFEncoder(&export.OCSFOptions{Hostname: opts.NodeName, ProductVersion: opts.Version, InstanceID: opts.InstanceID})
	}
	x.provider = sdklog.NewLoggerProvider(sdklog.WithResource(Resource(cfg, opts)), sdklog.WithProcessor(x.batch))
	x.logger = x.provider.Logger(ScopeName, otellog.WithInstrumentationVersion(opts.Version))
	return x, nil
}

// Resource returns the resource attributes of every record: the service,
// the node and the cluster.
func Resource(cfg config.OTLPExport, opts *Options) *resource.Resource {
	host, _ := os.Hostname()
	version := opts.Version
	if version == "" {
		version = "dev"
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", ServiceName),
		attribute.String("service.version", version),
		attribute.String("host.name", host),
	}
	if opts.InstanceID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", opts.InstanceID))
	}
	if opts.NodeName != "" {
		attrs = append(attrs, attribute.String("k8s.node.name", opts.NodeName))
	}
	if cfg.ClusterName != "" {
		attrs = append(attrs, attribute.String("k8s.cluster.name", cfg.ClusterName))
	}
	return resource.NewSchemaless(attrs...)
}

func newClient(ctx context.Context, cfg config.OTLPExport) (sdklog.Exporter, error) {
	var tc *tls.Config
	if !cfg.Insecure {
		var err error
		if tc, err = tlsConfig(cfg.TLS); err != nil {
			return nil, err
		}
	}
	// The exporter's own retries stop at the timeout, so one unreachable
	// collector holds a batch at most that long.
	timeout := cfg.Timeout.D()
	retry := struct {
		Enabled                                      bool
		InitialInterval, MaxInterval, MaxElapsedTime time.Duration
	}{true, 250 * time.Millisecond, 5 * time.Second, timeout}
	switch cfg.Protocol {
	case config.OTLPProtocolHTTP:
		o := []otlploghttp.Option{otlploghttp.WithEndpoint(cfg.Endpoint), otlploghttp.WithURLPath(cfg.URLPath),
			otlploghttp.WithTimeout(timeout), otlploghttp.WithRetry(otlploghttp.RetryConfig(retry))}
		if cfg.Insecure {
			o = append(o, otlploghttp.WithInsecure())
		} else {
			o = append(o, otlploghttp.WithTLSClientConfig(tc))
		}
		if len(cfg.Headers) > 0 {
			o = append(o, otlploghttp.WithHeaders(cfg.Headers))
		}
		if cfg.Compression == "gzip" {
			o = append(o, otlploghttp.WithCompression(otlploghttp.GzipCompression))
		} else {
			o = append(o, otlploghttp.WithCompression(otlploghttp.NoCompression))
		}
		exp, err := otlploghttp.New(ctx, o...)
		if err != nil {
			return nil, fmt.Errorf("create OTLP/HTTP exporter: %w", err)
		}
		return exp, nil
	default:
		o := []otlploggrpc.Option{otlploggrpc.WithEndpoint(cfg.Endpoint), otlploggrpc.WithTimeout(timeout),
			otlploggrpc.WithRetry(otlploggrpc.RetryConfig(retry))}
		if cfg.Insecure {
			o = append(o, otlploggrpc.WithInsecure())
		} else {
			o = append(o, otlploggrpc.WithTLSCredentials(credentials.NewTLS(tc)))
		}
		if len(cfg.Headers) > 0 {
			o = append(o, otlploggrpc.WithHeaders(cfg.Headers))
		}
		if cfg.Compression == "gzip" {
			o = append(o, otlploggrpc.WithCompressor("gzip"))
		}
		exp, err := otlploggrpc.New(ctx, o...)
		if err != nil {
			return nil, fmt.Errorf("create OTLP/gRPC exporter: %w", err)
		}
		return exp, nil
	}
}

// tlsConfig loads the CA (empty: the system roots) and the optional client
// certificate.
func tlsConfig(c config.OTLPTLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("read export.otlp.tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read export.otlp.tls.ca: %s holds no PEM certificate", c.CA)
		}
		tc.RootCAs = pool
	}
	if c.Cert != "" {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("load export.otlp.tls.cert and key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Stats returns a snapshot of the counters.
func (x *Exporter) Stats() Stats {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stats
}

// Run follows ring from Options.From until ctx is done, then sends what
// the ring still holds up to its head (within ShutdownGrace), so a clean
// stop loses nothing that was published before it. Run returns nil on a
// clean stop.
func (x *Exporter) Run(ctx context.Context, ring *export.Ring) error {
	w := ring.NewWaiter()
	defer w.Close()
	// Requests outlive ctx by at most ShutdownGrace: the batch in flight
	// and the tail of the ring get that long once ctx is done, then fail
	// fast and are counted.
	send, cancelSend := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSend()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(ShutdownGrace, cancelSend) })
	defer stopGrace()
	next := x.from
	if next == 0 {
		next = ring.Head() + 1
	}
	buf := make([]*event.Event, x.cfg.MaxBatch)
	stopping := false
	for {
		n, gap := ring.Read(next, buf)
		if gap.Skipped > 0 {
			next += gap.Skipped
			lost := gap.Lost // the counts of Lost records overwritten with them included
			x.add(func(s *Stats) { s.Lost += lost })
			x.warn("OTLP exporter fell behind the export ring: events lost", "count", lost)
			if x.ocsf == nil {
				x.emit(&event.Event{Kind: event.KindLost, Time: time.Now(),
					Lost: &event.Lost{Source: export.LostSubscriber, Count: lost}})
			}
		}
		for i := 0; i < n; i++ {
			ev := buf[i]
			buf[i] = nil
			next = ev.Seq + 1
			x.emit(ev)
		}
		if len(x.batch.recs) > 0 && (n < len(buf) || len(x.batch.recs) >= x.cfg.MaxBatch) {
			if err := x.flush(send); err != nil {
				x.warn("OTLP export failed; the batch is counted as lost", "err", err)
			}
		}
		if n > 0 || gap.Skipped > 0 {
			continue
		}
		if stopping {
			return nil
		}
		select {
		case <-ctx.Done():
			// One last pass over what was published up to now.
			stopping = true
		case <-w.C:
		}
	}
}

// flush sends the pending batch.
func (x *Exporter) flush(ctx context.Context) error {
	recs := x.batch.recs
	x.batch.recs = x.batch.recs[:0]
	err := x.exp.Export(ctx, recs)
	n := uint64(len(recs))
	clear(recs)
	if err != nil {
		x.add(func(s *Stats) { s.Failed += n })
		return err
	}
	x.add(func(s *Stats) { s.Sent += n; s.Batches++ })
	return nil
}

// warn logs at most once per warnEvery: an unreachable collector fails
// every batch, and the counters carry the totals.
func (x *Exporter) warn(msg string, args ...any) {
	if now := time.Now(); now.Sub(x.lastWarn) >= warnEvery {
		x.lastWarn = now
		x.log.Warn(msg, append(args, "endpoint", x.cfg.Endpoint, "stats", x.Stats())...)
	}
}

const warnEvery = 10 * time.Second

func (x *Exporter) add(f func(*Stats)) {
	x.mu.Lock()
	f(&x.stats)
	x.mu.Unlock()
}

// emit turns ev into a log record and hands it to the batch (through the
// SDK logger, which stamps the resource and scope). Events the body cannot
// carry or the kinds exclude are counted.
func (x *Exporter) emit(ev *event.Event) {
	if x.kinds != 0 && (ev.Kind >= 32 || x.kinds&(1<<ev.Kind) == 0) {
		x.add(func(s *Stats) { s.Filtered++ })
		return
	}
	var (
		body []byte
		err  error
	)
	if x.ocsf != nil {
		body, err = x.ocsf.Encode(ev)
	} else {
		body, err = ev.MarshalJSON()
	}
	if errors.Is(err, export.ErrNoOCSFClass) {
		x.add(func(s *Stats) { s.Skipped++ })
		return
	}
	if err != nil {
		x.add(func(s *Stats) { s.Failed++ })
		x.log.Warn("OTLP exporter could not encode an event", "seq", ev.Seq, "kind", ev.Kind, "err", err)
		return
	}
	var r otellog.Record
	Fill(&r, ev, body)
	x.logger.Emit(context.Background(), r)
}

// Fill sets the record's timestamp, severity, body, event name and
// attributes from ev; body is the encoded event.
func Fill(r *otellog.Record, ev *event.Event, body []byte) {
	r.SetTimestamp(ev.Time)
	r.SetObservedTimestamp(time.Now())
	r.SetEventName("kestrel." + ev.Kind.String())
	sev, text := Severity(ev)
	r.SetSeverity(sev)
	r.SetSeverityText(text)
	r.SetBody(attribute.StringValue(string(body)))
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs, attribute.String("kestrel.kind", ev.Kind.String()), attribute.Int64("kestrel.seq", int64(ev.Seq)))
	if f := ev.Finding; f != nil {
		attrs = append(attrs, attribute.String("kestrel.rule", f.Rule))
	}
	if l := ev.Lost; l != nil {
		attrs = append(attrs, attribute.String("kestrel.lost.source", l.Source), attribute.Int64("kestrel.lost.count", int64(l.Count)))
	}
	if p := ev.Process; p != nil && p.PID != 0 {
		attrs = append(attrs, attribute.Int64("process.pid", int64(p.PID)))
	}
	if c := ev.Container; c != nil {
		attrs = append(attrs, attribute.String("container.id", c.ID))
		if c.Pod != "" {
			attrs = append(attrs, attribute.String("k8s.pod.name", c.Pod))
		}
		if c.Namespace != "" {
			attrs = append(attrs, attribute.String("k8s.namespace.name", c.Namespace))
		}
	}
	r.AddAttributes(attrs...)
}

// Severity maps an event to an OpenTelemetry severity and text: a finding
// by its severity (info INFO, low WARN, medium WARN3, high ERROR, critical
// FATAL; the text is the finding's own word), a lost event WARN, any other
// event INFO.
func Severity(ev *event.Event) (otellog.Severity, string) {
	if f := ev.Finding; f != nil {
		switch f.Severity {
		case event.SevCritical:
			return otellog.SeverityFatal1, f.Severity.String()
		case event.SevHigh:
			return otellog.SeverityError1, f.Severity.String()
		case event.SevMedium:
			return otellog.SeverityWarn3, f.Severity.String()
		case event.SevLow:
			return otellog.SeverityWarn1, f.Severity.String()
		default:
			return otellog.SeverityInfo1, event.SevInfo.String()
		}
	}
	if ev.Kind == event.KindLost {
		return otellog.SeverityWarn1, "WARN"
	}
	return otellog.SeverityInfo1, "INFO"
}

// Shutdown flushes nothing more (Run sends the tail of the ring) and closes
// the OTLP client within ctx.
func (x *Exporter) Shutdown(ctx context.Context) error {
	err := x.provider.Shutdown(ctx)
	if e := x.exp.Shutdown(ctx); e != nil && err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("shut down OTLP exporter: %w", err)
	}
	return nil
}

// batchProcessor collects the records the logger emits, for Run to send in
// batches. Only Run's goroutine emits, so it needs no lock.
type batchProcessor struct {
	recs []sdklog.Record
}

func (b *batchProcessor) OnEmit(_ context.Context, r *sdklog.Record) error {
	b.recs = append(b.recs, r.Clone())
	return nil
}

func (b *batchProcessor) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (b *batchProcessor) Shutdown(context.Context) error                         { return nil }
func (b *batchProcessor) ForceFlush(context.Context) error                       { return nil }
