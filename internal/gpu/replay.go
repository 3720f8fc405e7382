package gpu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

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

	mu sync.Mutex
	// named is set when the last good file had a "gpus" list: UUIDs then
	// come from it, not from SyntheticUUID.
	named bool
}

func newReplaySource(path string) *replaySource { return &replaySource{path: path} }

func (s *replaySource) state() string { return "replay " + s.path }

// syntheticUUID tells the UUID of a GPU index that owns nothing right now:
// without a "gpus" list every UUID is synthetic.
func (s *replaySource) syntheticUUID(index int) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.named || index < 0 || index > config.GPUMaxIndex {
		return "", false
	}
	return SyntheticUUID(index), true
}

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
	devs, named, err := parseReplay(data)
	if err != nil {
		return reading{}, fmt.Errorf("replay file %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.named = named
	s.mu.Unlock()
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
// around. named tells whether the file had a "gpus" list.
func parseReplay(data []byte) (devs []Device, named bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc replayDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, false, fmt.Errorf("decode: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false, errors.New("decode: trailing data after the JSON object")
	}
	if doc.Processes == nil {
		return nil, false, errors.New(`missing "processes" (use [] for none)`)
	}

	byIndex := make(map[int]*Device)
	var order []int
	addDev := func(d Device) {
		byIndex[d.Index] = &d
		order = append(order, d.Index)
	}
	uuids := make(map[string]int)
	for i, g := range doc.GPUs {
		if g.Index == nil {
			return nil, false, fmt.Errorf(`gpus[%d]: missing "index"`, i)
		}
		idx := *g.Index
		if idx < 0 || idx > config.GPUMaxIndex {
			return nil, false, fmt.Errorf("gpus[%d]: index %d is outside 0..%d", i, idx, config.GPUMaxIndex)
		}
		if _, dup := byIndex[idx]; dup {
			return nil, false, fmt.Errorf("gpus[%d]: duplicate index %d", i, idx)
		}
		d := Device{Index: idx, UUID: g.UUID, Name: g.Name}
		if d.UUID == "" {
			d.UUID = SyntheticUUID(idx)
		}
		if j, dup := uuids[d.UUID]; dup {
			return nil, false, fmt.Errorf("gpus[%d]: uuid %q already used by gpu %d", i, d.UUID, j)
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
			return nil, false, fmt.Errorf(`processes[%d]: missing "gpu"`, i)
		}
		if p.PID == nil || *p.PID == 0 {
			return nil, false, fmt.Errorf(`processes[%d]: missing or zero "pid"`, i)
		}
		idx, pid := *p.GPU, *p.PID
		if idx < 0 || idx > config.GPUMaxIndex {
			return nil, false, fmt.Errorf("processes[%d]: gpu %d is outside 0..%d", i, idx, config.GPUMaxIndex)
		}
		if seen[gp{idx, pid}] {
			return nil, false, fmt.Errorf("processes[%d]: duplicate gpu %d pid %d", i, idx, pid)
		}
		seen[gp{idx, pid}] = true
		d, ok := byIndex[idx]
		if !ok {
			if declared {
				return nil, false, fmt.Errorf("processes[%d]: gpu %d is not in \"gpus\"", i, idx)
			}
			addDev(Device{Index: idx, UUID: SyntheticUUID(idx), Name: replayName})
			d = byIndex[idx]
		}
		d.Owners = append(d.Owners, Owner{PID: pid, UsedBytes: p.UsedBytes, Type: ownerCompute})
		d.MemoryUsed += p.UsedBytes
	}

	devs = make([]Device, 0, len(order))
	for _, idx := range order {
		devs = append(devs, *byIndex[idx])
	}
	return devs, declared, nil
}

// SyntheticUUID is the stable UUID the replay source gives GPU index when the
// file names none: "GPU-00000000-0000-0000-0000-00000000000N" with the index
// in hex.
func SyntheticUUID(index int) string {
	return fmt.Sprintf("GPU-00000000-0000-0000-0000-%012x", index)
}
