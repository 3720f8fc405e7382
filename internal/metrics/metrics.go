// Package metrics serves the sensor's Prometheus endpoint.
//
// Nothing here sits on the event path. The stages keep their own counters
// (atomics the pipeline, the kernel reader and the exporters already
// maintain); a Collector reads them through a Gather function only when
// Prometheus scrapes, and turns that Snapshot into const metrics. The
// registry is private: only the sensor's series, the Go runtime's and the
// process's are served, whatever other libraries register globally.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Snapshot is the state of every stage at one scrape. Gather functions fill
// it from counters the stages keep anyway; a zero field is exported as zero,
// and an empty map or slice exports no series.
type Snapshot struct {
	// Events counts events that entered the pipeline, by kind (exec, open,
	// ..., finding for the rules' findings).
	Events map[string]uint64
	// Lost counts events lost, by source: the in-band "lost" sources
	// (kernel_ringbuf, decoder, queue, subscriber, ...) and the exporters'.
	Lost map[string]uint64
	// Findings counts findings by rule and severity.
	Findings []FindingCount

	// QueueLength and QueueCapacity are the pipeline queue's (events).
	QueueLength, QueueCapacity uint64
	// RingEvents, RingCapacity and RingPublished are the export ring's.
	RingEvents, RingCapacity, RingPublished uint64
	// KernelRingUsed and KernelRingSize are the BPF ring buffer's bytes
	// not yet consumed and its size; KernelRingSize 0 exports neither.
	KernelRingUsed, KernelRingSize uint64

	// Subscribers is the number of live gRPC Subscribe streams, and
	// SubscriberMaxLag the largest lag among them (events).
	Subscribers, SubscriberMaxLag uint64

	// NVMLState is ok, replay or disabled; GPUSamples and GPUSampleErrors
	// are the sampler's counts.
	NVMLState                   string
	GPUSamples, GPUSampleErrors uint64

	// Programs are the attached BPF programs. Their run time and run count
	// are exported when BPFStats is true (the kernel keeps them only while
	// statistics are enabled).
	Programs []ProgramStat
	BPFStats bool
	// Maps are the sensor's BPF maps and the memory the kernel charges for
	// each.
	Maps []MapMemory

	// Exports are the exporters' record counts by exporter and result.
	Exports []ExportCount

	// Values are every GetStatus counter by name, counters and gauges
	// alike, so that nothing is visible only over gRPC.
	Values map[string]uint64
}

// FindingCount is the number of findings of one rule at one severity.
type FindingCount struct {
	Rule, Severity string
	Count          uint64
}

// ProgramStat is one BPF program's kernel statistics.
type ProgramStat struct {
	Name            string
	RunTime         time.Duration
	RunCount        uint64
	RecursionMisses uint64
}

// MapMemory is one BPF map's memory.
type MapMemory struct {
	Name  string
	Bytes uint64
}

// ExportCount is one exporter's records with one result (sent, skipped,
// filtered, failed).
type ExportCount struct {
	Exporter, Result string
	Count            uint64
}

// Gather fills a Snapshot. It is called once per scrape, from the HTTP
// handler's goroutine, so it must be safe for concurrent use with the
// pipeline.
type Gather func(*Snapshot)

const namespace = "kestrel"

var (
	descBuild    = desc("build_info", "Version of the running sensor (value 1).", "version", "goversion")
	descEvents   = desc("events_total", "Events that entered the pipeline, by kind; kind=finding counts the rules' findings.", "kind")
	descLost     = desc("events_lost_total", "Events lost, by source (kernel ring buffer, decoder, pipeline queue, slow subscriber, exporters...). Every loss the sensor counts is here.", "source")
	descFindings = desc("findings_total", "Findings emitted, by rule and severity.", "rule", "severity")

	descQueueLen = desc("pipeline_queue_length_events", "Events waiting in the pipeline queue between the sources and the rules.")
	descQueueCap = desc("pipeline_queue_capacity_events", "Size of the pipeline queue; a full queue drops events (source=queue).")
	descRing     = desc("export_ring_events", "Events retained in the export ring for subscribers and exporters.")
	descRingCap  = desc("export_ring_capacity_events", "Size of the export ring (export.ring_size).")
	descRingPub  = desc("export_ring_published_total", "Events published into the export ring.")
	descKRing    = desc("bpf_ringbuf_used_bytes", "Bytes of the BPF ring buffer not yet read by user space.")
	descKRingCap = desc("bpf_ringbuf_size_bytes", "Size of the BPF ring buffer (capture.ring_buffer_bytes).")

	descSubs   = desc("export_subscribers", "Live gRPC Subscribe streams.")
	descSubLag = desc("export_subscriber_max_lag_events", "Largest lag of a live subscriber behind the ring's head; at the ring's size it starts losing events.")

	descNVML       = desc("nvml_state", "State of the GPU sampler (value 1 on the current state: ok, replay or disabled).", "state")
	descGPUSamples = desc("gpu_samples_total", "Successful GPU ownership samples.")
	descGPUErrors  = desc("gpu_sample_errors_total", "GPU ownership samples that failed as a whole (the previous state was kept).")

	descStatsOn   = desc("bpf_stats_enabled", "1 when the kernel keeps BPF run-time statistics (metrics.bpf_stats or the sysctl kernel.bpf_stats_enabled).")
	descProgRun   = desc("bpf_program_run_seconds_total", "Time spent in each BPF program while statistics are enabled.", "program")
	descProgCount = desc("bpf_program_runs_total", "Runs of each BPF program while statistics are enabled.", "program")
	descProgMiss  = desc("bpf_program_recursion_misses_total", "Runs of each BPF program the kernel skipped because another BPF program was running on that CPU.", "program")
	descPrograms  = desc("bpf_programs_attached", "Attached BPF programs.")
	descMapMem    = desc("bpf_map_memory_bytes", "Memory the kernel charges for each BPF map of the sensor.", "map")

	descExports = desc("export_records_total", "Records handled by each exporter, by result (sent, skipped: no OCSF class, filtered, failed).", "exporter", "result")
	descValues  = desc("status_value", "Every GetStatus counter and gauge by name, as the gRPC status shows it; prefer the named series above in alerts.", "name")
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

// Collector is a prometheus.Collector over a Gather function.
//
// It is safe for concurrent use.
type Collector struct {
	gather  Gather
	version string
}

// NewCollector returns a Collector that calls gather at every scrape.
// version is the sensor's, for kestrel_build_info.
func NewCollector(gather Gather, version string) *Collector {
	return &Collector{gather: gather, version: version}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuild, descEvents, descLost, descFindings, descQueueLen, descQueueCap,
		descRing, descRingCap, descRingPub, descKRing, descKRingCap, descSubs, descSubLag, descNVML, descGPUSamples,
		descGPUErrors, descStatsOn, descProgRun, descProgCount, descProgMiss, descPrograms, descMapMem,
		descExports, descValues} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var s Snapshot
	if c.gather != nil {
		c.gather(&s)
	}
	gauge := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descBuild, 1, c.version, runtime.Version())
	for _, k := range sortedKeys(s.Events) {
		counter(descEvents, float64(s.Events[k]), k)
	}
	for _, k := range sortedKeys(s.Lost) {
		counter(descLost, float64(s.Lost[k]), k)
	}
	for _, f := range s.Findings {
		counter(descFindings, float64(f.Count), f.Rule, f.Severity)
	}
	gauge(descQueueLen, s.QueueLength)
	gauge(descQueueCap, s.QueueCapacity)
	gauge(descRing, s.RingEvents)
	gauge(descRingCap, s.RingCapacity)
	counter(descRingPub, float64(s.RingPublished))
	if s.KernelRingSize > 0 {
		gauge(descKRing, s.KernelRingUsed)
		gauge(descKRingCap, s.KernelRingSize)
	}
	gauge(descSubs, s.Subscribers)
	gauge(descSubLag, s.SubscriberMaxLag)
	if s.NVMLState != "" {
		gauge(descNVML, 1, s.NVMLState)
	}
	counter(descGPUSamples, float64(s.GPUSamples))
	counter(descGPUErrors, float64(s.GPUSampleErrors))
	var on uint64
	if s.BPFStats {
		on = 1
	}
	gauge(descStatsOn, on)
	gauge(descPrograms, uint64(len(s.Programs)))
	for _, p := range s.Programs {
		if s.BPFStats {
			counter(descProgRun, p.RunTime.Seconds(), p.Name)
			counter(descProgCount, float64(p.RunCount), p.Name)
			counter(descProgMiss, float64(p.RecursionMisses), p.Name)
		}
	}
	for _, m := range s.Maps {
		gauge(descMapMem, m.Bytes, m.Name)
	}
	for _, e := range s.Exports {
		counter(descExports, float64(e.Count), e.Exporter, e.Result)
	}
	for _, k := range sortedKeys(s.Values) {
		ch <- prometheus.MustNewConstMetric(descValues, prometheus.UntypedValue, float64(s.Values[k]), k)
	}
}

func sortedKeys(m map[string]uint64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// NewRegistry returns a private registry with the sensor's collector, the Go
// runtime collector and the process collector.
func NewRegistry(c *Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{
		c,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("register collector: %w", err)
		}
	}
	return reg, nil
}

// Options are the optional settings of a Server; nil is valid.
type Options struct {
	// Logger receives serving errors; nil discards.
	Logger *slog.Logger
}

// Server serves /metrics over plain HTTP.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// Listen opens addr (host:port) and returns a Server for reg; Serve serves
// it. Listening first lets the caller fail start-up on a taken port, and
// learn the address of port 0.
func Listen(addr string, reg *prometheus.Registry, opts *Options) (*Server, error) {
	if opts == nil {
		opts = &Options{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            reg, // promhttp_metric_handler_errors_total
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "Kestrel sensor: metrics at /metrics")
	})
	return &Server{ln: ln, log: log, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}}, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until ctx is done, then shuts down within a second.
func (s *Server) Serve(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(s.ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}
