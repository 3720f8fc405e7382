package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/gpu"
	"github.com/kestrel-sec/kestrel/internal/runtime/enrich"
)

// runGPUs samples GPU ownership once and prints GPU -> pid -> exe ->
// container -> memory. It needs no daemon and no eBPF.
func runGPUs(ctx context.Context, cfg *config.Config, o *options, stdout io.Writer, log *slog.Logger) error {
	s, err := gpu.NewSampler(cfg.GPU, &gpu.Options{Logger: log})
	if err != nil {
		fmt.Fprintln(stdout, event.EscapeText(s.State()))
		return nil
	}
	defer s.Close()
	if err := s.Poll(ctx, func(*event.Event) {}); err != nil {
		return fmt.Errorf("sample GPUs: %w", err)
	}
	en, err := enrich.New(cfg.Context, &enrich.Options{Logger: log, NoNetlink: true})
	if err != nil {
		return fmt.Errorf("create process lookup: %w", err)
	}
	snap := s.Snapshot()
	if o.output == "json" {
		host, _ := os.Hostname()
		inv := &event.Inventory{Node: host, Time: time.Now(), GPUs: gpu.Inventory(snap, en.Lookup)}
		return writeJSONDoc(stdout, bomJSON(inv), "")
	}
	return gpu.WriteTable(stdout, snap, en.Lookup)
}
