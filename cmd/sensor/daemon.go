package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export"
	"github.com/kestrel-sec/kestrel/internal/pipeline"
)

// runDaemon runs the sensor as the node's daemon: the pipeline publishes into
// the export ring, which the gRPC server streams to subscribers.
func runDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	ring := export.NewRing(cfg.Export.RingSize)
	sinks := []pipeline.Sink{ring.Publish}

	st, err := newStack(ctx, cfg, log, sinks)
	if err != nil {
		return err
	}
	defer st.Close()

	host := nodeName()
	srv, err := export.NewServer(cfg.Export, ring, export.Sources{Status: st.status, Inventory: st.inventory},
		&export.Options{Logger: log, NodeName: host})
	if err != nil {
		return fmt.Errorf("create gRPC server: %w", err)
	}
	if err := srv.Listen(); err != nil {
		return fmt.Errorf("listen: %w", err)
	}

	ready := st.readyEvent()
	ring.Publish(ready)
	log.Info("sensor ready", "programs", len(ready.Status.Programs), "socket", cfg.Export.UnixSocket,
		"tcp", cfg.Export.TCPListen, "nvml", ready.Status.Fields["nvml"])

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d := cfg.Export.StatusInterval.D(); d > 0 {
		go heartbeats(ctx, d, ring, st)
	}
	var fx *export.FileExporter
	if cfg.Export.File.Path != "" {
		fx, err = export.NewFileExporter(cfg.Export.File, &export.FileOptions{Logger: log,
			OCSF: &export.OCSFOptions{Hostname: host, ProductVersion: version, InstanceID: ring.InstanceID()}})
		if err != nil {
			return fmt.Errorf("open file exporter: %w", err)
		}
		defer fx.Close()
		go func() {
			if err := fx.Run(ctx, ring); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("file exporter stopped", "path", cfg.Export.File.Path, "err", err)
			}
		}()
	}
	// Metrics and the OTLP exporter; stopped once the pipeline has drained,
	// so the exporter sends the tail of the ring.
	op, err := startOps(cfg, log, &ops{st: st, srv: srv, ring: ring, file: fx})
	if err != nil {
		return err
	}
	defer op.stop()
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ctx) }()

	err = st.Run(ctx)
	cancel()
	op.stop()
	if e := <-srvErr; err == nil && e != nil && !errors.Is(e, context.Canceled) {
		err = e
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("sensor stopped", "uptime", time.Since(st.started).Round(time.Second).String())
	return err
}

// heartbeats writes a heartbeat status event into the feed every d until
// ctx is done: the file and OTLP outputs carry nothing else when the node
// is quiet, and a SIEM alerts on its absence (docs/self-protection.md).
func heartbeats(ctx context.Context, d time.Duration, ring *export.Ring, st *stack) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ring.Publish(st.heartbeatEvent(now))
		}
	}
}

// inventory is the runtime AI bill of materials for GetInventory and `bom`.
func (s *stack) inventory() *event.Inventory {
	return s.engine.Inventory()
}
