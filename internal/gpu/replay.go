package gpu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kestrel-sec/kestrel/internal/config"
)

// maxReplayBytes bounds the replay file: a harness describing thousands of
// processes stays far below it, a runaway writer does not get read whole.
const maxReplayBytes = 4 << 20

// replayName is the product name of a GPU the replay file does not name.
const replayName = "Replay GPU"

// replaySource reads ownership from a JSON file that a test harness rewrites
// atomically (write elsewhere, rename over). It is read whole on every sample.
type replaySource struct {
	path string
}

func newReplaySource(path string) *replaySource { return &replaySource{path: path} }

func (s *replaySource) state() string { return "replay " + s.path }

func (s *replaySource) close() error { return nil }

func (s *replaySource) sample(context.Context) (reading, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return reading{}, fmt.Errorf("read replay file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxReplayBytes+1))
	if err != nil {
		return reading{}, fmt.Errorf("read replay file %s: %w", s.path, err)
	}
	if len(data) > maxReplayBytes {
		return reading{}, fmt.Errorf("replay file %s: larger than %d bytes", s.path, maxReplayBytes)
	}
	devs, err := parseReplay(data)
	if err != nil {
		return reading{}, fmt.Errorf("replay file %s: %w", s.path, err)
	}
	return reading{devices: devs}, nil
}

// replayDoc is the replay file's format, documented on config.GPUConfig.
type replayDoc struct {
	Processes *[]replayProc `json:"processes"`
	GPUs      []replayGPU   `json:"gpus"`
}

type replayProc struct {
	GPU       *int    `json:"gpu"`
	PID       *uint32 `json:"pid"`
	UsedBytes uint64  `json:"used_bytes"`
}

type replayGPU struct {
	Index *int   `json:"index"`
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
}

// parseReplay decodes a replay file into devices. Unknown fields, missing
// keys, duplicates and processes on GPUs the "gpus" list lacks are errors
// that name the offending entry: a harness bug should be loud, not guessed
// around.
func parseReplay(data []byte) ([]Device, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc replayDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode: trailing data after the JSON object")
	}
	if doc.Processes == nil {
		return nil, errors.New(`missing "processes" (use [] for none)`)
	}

	devs := make(map[int]*Device)
	var order []int
	addDev := func(d Device) {
		devs[d.Index] = &d
		order = append(order, d.Index)
	}
	uuids := make(map[string]int)
	for i, g := range doc.GPUs {
		if g.Index == nil {
			return nil, fmt.Errorf(`gpus[%d]: missing "index"`, i)
		}
		idx := *g.Index
		if idx < 0 || idx > config.GPUMaxIndex {
			return nil, fmt.Errorf("gpus[%d]: index %d is outside 0..%d", i, idx, config.GPUMaxIndex)
		}
		if _, dup := devs[idx]; dup {
			return nil, fmt.Errorf("gpus[%d]: duplicate index %d", i, idx)
		}
		d := Device{Index: idx, UUID: g.UUID, Name: g.Name}
		if d.UUID == "" {
			d.UUID = SyntheticUUID(idx)
		}
		if j, dup := uuids[d.UUID]; dup {
			return nil, fmt.Errorf("gpus[%d]: uuid %q already used by gpu %d", i, d.UUID, j)
		}
		uuids[d.UUID] = idx
		if d.Name == "" {
			d.Name = replayName
		}
		addDev(d)
	}
	declared := len(doc.GPUs) > 0

	type gp struct {
		gpu int
		pid uint32
	}
	seen := make(map[gp]bool)
	for i, p := range *doc.Processes {
		if p.GPU == nil {
			return nil, fmt.Errorf(`processes[%d]: missing "gpu"`, i)
		}
		if p.PID == nil || *p.PID == 0 {
			return nil, fmt.Errorf(`processes[%d]: missing or zero "pid"`, i)
		}
		idx, pid := *p.GPU, *p.PID
		if idx < 0 || idx > config.GPUMaxIndex {
			return nil, fmt.Errorf("processes[%d]: gpu %d is outside 0..%d", i, idx, config.GPUMaxIndex)
		}
		if seen[gp{idx, pid}] {
			return nil, fmt.Errorf("processes[%d]: duplicate gpu %d pid %d", i, idx, pid)
		}
		seen[gp{idx, pid}] = true
		d, ok := devs[idx]
		if !ok {
			if declared {
				return nil, fmt.Errorf("processes[%d]: gpu %d is not in \"gpus\"", i, idx)
			}
			addDev(Device{Index: idx, UUID: SyntheticUUID(idx), Name: replayName})
			d = devs[idx]
		}
		d.Owners = append(d.Owners, Owner{PID: pid, UsedBytes: p.UsedBytes, Type: ownerCompute})
		d.MemoryUsed += p.UsedBytes
	}

	out := make([]Device, 0, len(order))
	for _, idx := range order {
		out = append(out, *devs[idx])
	}
	return out, nil
}

// SyntheticUUID is the stable UUID the replay source gives GPU index when the
// file names none: "GPU-00000000-0000-0000-0000-00000000000N" with the index
// in hex.
func SyntheticUUID(index int) string {
	return fmt.Sprintf("GPU-00000000-0000-0000-0000-%012x", index)
}
