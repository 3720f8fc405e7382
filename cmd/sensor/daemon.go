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
	"github.com/kestrel-sec/kestrel/internal/export/otlp"
	"github.com/kestrel-sec/kestrel/internal/pipeline"
)

// runDaemon runs the sensor as the node's daemon: the pipeline publishes into
// the export ring, which the gRPC server streams to subscribers.
//
// Order matters: everything the configuration can get wrong (TLS files, the
// export file, the listeners) is set up before a BPF program is loaded, so a
// bad config exits 2 with nothing attached. On shutdown the pipeline drains
// into the ring, the OTLP exporter sends its tail, the feed stops
// (subscribers are told), then every program is detached; each step is
// bounded.
func runDaemon(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	ring := export.NewRing(cfg.Export.RingSize)
	host := nodeName()
	var st *stack
	srv, err := export.NewServer(cfg.Export, ring, export.Sources{
		Status: func() *event.Status {
			if st == nil {
				return nil
			}
			return st.status()
		},
		Inventory: func() *event.Inventory {
			if st == nil {
				return nil
			}
			return st.inventory()
		},
	}, &export.Options{Logger: log, NodeName: host})
	if err != nil {
		return configError{fmt.Errorf("create gRPC server: %w", err)}
	}
	var fx *export.FileExporter
	if cfg.Export.File.Path != "" {
		fx, err = export.NewFileExporter(cfg.Export.File, &export.FileOptions{Logger: log,
			OCSF: &export.OCSFOptions{Hostname: host, ProductVersion: version, InstanceID: ring.InstanceID()}})
		if err != nil {
			return configError{fmt.Errorf("open file exporter: %w", err)}
		}
		defer fx.Close()
	}
	// The OTLP exporter reads its TLS files now: a bad one is a config error.
	var oexp *otlp.Exporter
	if cfg.Export.OTLP.Enabled() {
		oexp, err = otlp.New(context.Background(), cfg.Export.OTLP, &otlp.Options{NodeName: host,
			Version: version, InstanceID: ring.InstanceID(), From: 1, Logger: log})
		if err != nil {
			return configError{err}
		}
	}
	started := false // from here on op.stop shuts oexp down
	defer func() {
		if oexp != nil && !started {
			oexp.Shutdown(context.Background())
		}
	}()
	if err := srv.Listen(); err != nil {
		return fmt.Errorf("listen: %w", err)
	}

	st, err = newStack(ctx, cfg, log, []pipeline.Sink{ring.Publish})
	if err != nil {
		srv.Close()
		return err
	}
	defer st.Close()

	ready := st.readyEvent()
	ring.Publish(ready)
	log.Info("sensor ready", "programs", len(ready.Status.Programs), "socket", cfg.Export.UnixSocket,
		"tcp", cfg.Export.TCPListen, "nvml", ready.Status.Fields["nvml"])

	feedCtx, stopFeed := context.WithCancel(context.Background())
	defer stopFeed()
	if fx != nil {
		go func() {
			if err := fx.Run(feedCtx, ring); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("file exporter stopped", "path", cfg.Export.File.Path, "err", err)
			}
		}()
	}
	// Metrics and the OTLP exporter; stopped once the pipeline has drained,
	// so the exporter sends the tail of the ring.
	op, err := startOps(cfg, log, &ops{st: st, srv: srv, ring: ring, file: fx, otlp: oexp})
	started = true
	if err != nil {
		return err
	}
	defer op.stop()
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(feedCtx) }()

	pipeCtx, stopPipe := context.WithCancel(ctx)
	defer stopPipe()
	pipeErr := make(chan error, 1)
	go func() { pipeErr <- st.Run(pipeCtx) }()
	select {
	case err = <-pipeErr:
		op.stop()
		t := time.Now()
		stopFeed()
		if e := <-srvErr; err == nil && e != nil {
			err = e
		}
		log.Info("feed stopped", "took", time.Since(t).Round(time.Millisecond))
	case err = <-srvErr:
		// The feed failed on its own: the daemon is no use without it.
		stopPipe()
		if e := <-pipeErr; err == nil {
			err = e
		}
		op.stop()
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	t := time.Now()
	st.Close()
	log.Info("sensor stopped: programs detached", "took", time.Since(t).Round(time.Millisecond),
		"uptime", time.Since(st.started).Round(time.Second))
	return err
}

// inventory is the runtime AI bill of materials for GetInventory and `bom`.
func (s *stack) inventory() *event.Inventory {
	return s.engine.Inventory()
}
