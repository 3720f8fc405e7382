package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/export"
	"github.com/kestrel-sec/kestrel/internal/export/otlp"
	"github.com/kestrel-sec/kestrel/internal/metrics"
	"github.com/kestrel-sec/kestrel/internal/runtime"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

// newLogger returns the daemon's logger in the configured format.
func newLogger(w io.Writer, level slog.Leveler, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == config.LogFormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ops are the daemon's operator-facing side jobs: the Prometheus endpoint
// and the OTLP exporter. They read the stages; nothing on the event path
// waits for them.
type ops struct {
	st   *stack
	srv  *export.Server
	ring *export.Ring
	file *export.FileExporter
	otlp *otlp.Exporter
	log  *slog.Logger

	statsCloser io.Closer // BPF_ENABLE_STATS, when metrics.bpf_stats asked for it
	metrics     *metrics.Server

	cancelMetrics, cancelOTLP context.CancelFunc
	wg                        sync.WaitGroup
	stopOnce                  sync.Once
	// gatherMu keeps a scrape still running after the endpoint's shutdown
	// (Shutdown does not wait past its timeout) off a stack being closed.
	gatherMu sync.RWMutex
	stopped  bool
}

// startOps starts the metrics endpoint and the OTLP exporter as configured.
// The OTLP exporter sends the ring from its first event, so the ready line
// and everything after it reach the collector.
func startOps(cfg *config.Config, log *slog.Logger, o *ops) (_ *ops, err error) {
	o.log = log
	defer func() {
		if err != nil {
			o.stop()
		}
	}()
	if cfg.Export.OTLP.Enabled() {
		if o.otlp == nil { // the daemon builds it before loading anything
			o.otlp, err = otlp.New(context.Background(), cfg.Export.OTLP, &otlp.Options{NodeName: nodeName(),
				Version: version, InstanceID: o.ring.InstanceID(), From: 1, Logger: log})
			if err != nil {
				return nil, err
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		o.cancelOTLP = cancel
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			if err := o.otlp.Run(ctx, o.ring); err != nil {
				log.Error("OTLP exporter failed", "endpoint", cfg.Export.OTLP.Endpoint, "err", err)
			}
		}()
		log.Info("exporting to an OpenTelemetry collector", "endpoint", cfg.Export.OTLP.Endpoint,
			"protocol", cfg.Export.OTLP.Protocol, "body", cfg.Export.OTLP.Body)
	}
	if cfg.Metrics.Listen == "" {
		return o, nil
	}
	if cfg.Metrics.BPFStats {
		if o.statsCloser, err = runtime.EnableStats(); err != nil {
			// Metrics still work without; say what would enable them.
			log.Warn("BPF program statistics stay off: BPF_ENABLE_STATS needs CAP_SYS_ADMIN; "+
				"set the sysctl kernel.bpf_stats_enabled=1 on the node instead, or metrics.bpf_stats: false", "err", err)
			err = nil
		}
	}
	reg, err := metrics.NewRegistry(metrics.NewCollector(o.gather, version))
	if err != nil {
		return nil, err
	}
	if o.metrics, err = metrics.Listen(cfg.Metrics.Listen, reg, &metrics.Options{Logger: log}); err != nil {
		// Detection matters more than its metrics: run on, loudly (the
		// scrape's up series goes to 0 too).
		log.Error("metrics endpoint not served; the sensor runs without it (set metrics.listen or --metrics-listen to a free address, \"\" for none)", "err", err)
		return o, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	o.cancelMetrics = cancel
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		if err := o.metrics.Serve(ctx); err != nil {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", o.metrics.Addr().String(), "bpf_stats", o.bpfStats())
	return o, nil
}

// stop sends the tail of the ring to the collector, then stops the metrics
// endpoint. Call it once the pipeline has drained. Safe more than once.
func (o *ops) stop() {
	o.stopOnce.Do(func() {
		if o.cancelOTLP != nil {
			o.cancelOTLP()
		}
		if o.cancelMetrics != nil {
			o.cancelMetrics()
		}
		o.wg.Wait()
		o.gatherMu.Lock()
		o.stopped = true
		o.gatherMu.Unlock()
		if o.otlp != nil {
			ctx, cancel := context.WithTimeout(context.Background(), otlp.ShutdownGrace)
			if err := o.otlp.Shutdown(ctx); err != nil {
				o.log.Warn("close OTLP exporter", "err", err)
			}
			cancel()
			st := o.otlp.Stats()
			o.log.Info("OTLP exporter stopped", "sent", st.Sent, "failed", st.Failed, "lost", st.Lost, "skipped", st.Skipped)
		}
		if o.statsCloser != nil {
			o.statsCloser.Close()
		}
	})
}

func (o *ops) bpfStats() bool { return o.statsCloser != nil || runtime.StatsEnabled() }

// gather fills a metrics snapshot from the counters every stage keeps. It
// runs on the scrape's goroutine.
func (o *ops) gather(s *metrics.Snapshot) {
	o.gatherMu.RLock()
	defer o.gatherMu.RUnlock()
	if o.stopped {
		return
	}
	s.Events, s.Lost, s.Values = map[string]uint64{}, map[string]uint64{}, map[string]uint64{}
	st := o.st
	if p := st.pipe; p != nil {
		for k, n := range p.KindCounts() {
			s.Events[k.String()] = n
		}
		for k, n := range p.FindingCounts() {
			s.Findings = append(s.Findings, metrics.FindingCount{Rule: k.Rule, Severity: k.Severity.String(), Count: n})
		}
		c := p.Counters()
		s.QueueLength, s.QueueCapacity = c["queue_len"], c["queue_cap"]
		s.Lost["queue"] = c["lost_queue"]
	}
	if k := st.kernel; k != nil {
		for src, n := range k.Losses() {
			s.Lost[src] = n
		}
		s.KernelRingUsed, s.KernelRingSize = k.RingbufUsage()
		s.BPFStats = o.bpfStats()
		for name, ps := range k.ProgramStats() {
			s.Programs = append(s.Programs, metrics.ProgramStat{Name: name, RunTime: ps.Runtime, RunCount: ps.Runs,
				RecursionMisses: ps.RecursionMisses})
		}
		for name, b := range k.MapMemory() {
			s.Maps = append(s.Maps, metrics.MapMemory{Name: name, Bytes: b})
		}
	}
	s.NVMLState = "disabled"
	if g := st.gpu; g.Enabled() {
		switch state := g.State(); {
		case strings.HasPrefix(state, "nvml ok"):
			s.NVMLState = "ok"
		case strings.HasPrefix(state, "replay"):
			s.NVMLState = "replay"
		default:
			s.NVMLState = "failing"
		}
		gs := g.Stats()
		s.GPUSamples, s.GPUSampleErrors = gs.Samples, gs.Errors
	}
	if o.srv != nil {
		resp, err := o.srv.GetStatus(context.Background(), &sensorv1.GetStatusRequest{})
		if err == nil {
			r := resp.GetRing()
			s.RingEvents, s.RingCapacity, s.RingPublished = r.GetFill(), r.GetSize(), r.GetPublished()
			for name, n := range resp.GetExportLost() {
				if name == export.LostSubscriber {
					s.Lost[name] = n
				} else {
					s.Values["export_"+name] = n
				}
			}
			for _, sub := range resp.GetSubscribers() {
				s.Subscribers++
				s.SubscriberMaxLag = max(s.SubscriberMaxLag, sub.GetLag())
			}
			for name, n := range resp.GetStatus().GetCounters() {
				s.Values[name] = n
			}
		}
	}
	if f := o.file; f != nil {
		fs := f.Stats()
		s.Lost["file_exporter"] = fs.Lost
		s.Exports = append(s.Exports,
			metrics.ExportCount{Exporter: "file", Result: "sent", Count: fs.Written},
			metrics.ExportCount{Exporter: "file", Result: "skipped", Count: fs.Skipped},
			metrics.ExportCount{Exporter: "file", Result: "filtered", Count: fs.Filtered},
			metrics.ExportCount{Exporter: "file", Result: "failed", Count: fs.Errors})
	}
	if x := o.otlp; x != nil {
		xs := x.Stats()
		s.Lost["otlp"] = xs.Lost + xs.Failed
		s.Exports = append(s.Exports,
			metrics.ExportCount{Exporter: "otlp", Result: "sent", Count: xs.Sent},
			metrics.ExportCount{Exporter: "otlp", Result: "skipped", Count: xs.Skipped},
			metrics.ExportCount{Exporter: "otlp", Result: "filtered", Count: xs.Filtered},
			metrics.ExportCount{Exporter: "otlp", Result: "failed", Count: xs.Failed})
	}
}

// nodeName is the node's name: the DaemonSet's NODE_NAME, else the host's.
func nodeName() string {
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}
