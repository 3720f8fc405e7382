package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/kestrel-sec/kestrel/internal/detect"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/runtime/proc"
)

// procView answers the rule engine's questions about live processes from
// procfs: what a process holds, which host pid a namespace pid names, and
// which cgroup and namespaces a process is in.
type procView struct{ fs *proc.FS }

func (v procView) Holdings(pid uint32) ([]detect.HeldFile, error) {
	held, err := v.fs.Holdings(pid)
	out := make([]detect.HeldFile, len(held))
	for i, h := range held {
		out[i] = detect.HeldFile{Dev: h.Dev, Inode: h.Inode, Size: h.Size, Path: h.Path, FD: h.FD}
	}
	return out, err
}

func (v procView) NamespacePIDs(pidNS uint32) (map[uint32]uint32, error) {
	return v.fs.NamespacePIDs(pidNS)
}

func (v procView) Identity(pid uint32) (detect.ProcIdentity, error) {
	id, err := v.fs.Identity(pid)
	return detect.ProcIdentity{CgroupID: id.CgroupID, NS: id.NS}, err
}

// heldSeed is a pipeline source that reports once, at start, the model files
// processes already hold by descriptor or mapping, as open events whose
// Syscall is "held": the rules then know the weights a server loaded, and
// the readers that opened them, before the sensor started.
type heldSeed struct {
	fs *proc.FS
	// isModel says whether a held file is a model file (the engine's
	// matcher: path and size).
	isModel func(path string, size int64) bool
	log     *slog.Logger
}

// Run walks /proc once and returns; a process that exits meanwhile is
// skipped.
func (h heldSeed) Run(ctx context.Context, emit func(*event.Event)) error {
	pids, err := h.fs.PIDs()
	if err != nil {
		h.log.Warn("cannot list processes; model files held before start are unknown to the rules", "err", err)
		return nil
	}
	now := time.Now()
	files, procs, truncated := 0, 0, 0
	for _, pid := range pids {
		if ctx.Err() != nil {
			return nil
		}
		held, err := h.fs.Holdings(pid)
		if errors.Is(err, proc.ErrTruncated) {
			truncated++
		}
		var p *event.Process
		for _, f := range held {
			if !h.isModel(f.Path, f.Size) {
				continue
			}
			if p == nil {
				pr, err := h.fs.Process(pid)
				if err != nil {
					break // exited
				}
				// A full snapshot, so that the enricher keeps its own view
				// of the process (it takes changed ids for news).
				p = pr.Snapshot()
				procs++
			}
			res := f.FD
			if res < 0 {
				res = 0 // a mapping: no descriptor
			}
			emit(&event.Event{Kind: event.KindOpen, Time: now, Process: p, File: &event.File{
				Path: f.Path, RawPath: f.Path, PathSource: event.PathKernel, Flags: event.ORdonly, Result: res,
				Size: f.Size, Inode: f.Inode, Dev: f.Dev, Syscall: "held",
			}})
			files++
		}
	}
	h.log.Info("model files held at start", "files", files, "processes", procs, "truncated", truncated,
		"took", time.Since(now).Round(time.Millisecond))
	return nil
}

// newProcFS opens /proc for the rule engine's questions, with the cgroup v2
// root that makes cgroup ids comparable with the kernel's.
func newProcFS() (*proc.FS, error) {
	fs, err := proc.NewFS("/proc")
	if err != nil {
		return nil, err
	}
	if root, err := fs.CgroupV2Mount(); err == nil {
		if _, err := os.Stat(root); err == nil {
			fs.SetCgroupV2Root(root)
		}
	}
	return fs, nil
}
