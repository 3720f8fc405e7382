//go:build cgo

package gpu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// fakeNode is a dgxh100 mock whose processes and utilisation each test sets.
// The default utilisation answer is what an idle H200 really gave: NOT_FOUND
// together with a slice of samples that must not be trusted.
type fakeNode struct {
	srv *server.Server

	mu         sync.Mutex
	compute    map[int][]nvml.ProcessInfo
	graphics   map[int][]nvml.ProcessInfo
	computeRet map[int]nvml.Return
	util       map[int]func(last uint64) ([]nvml.ProcessUtilizationSample, nvml.Return)
	utilCalls  map[int][]uint64 // lastSeen arguments, per GPU
	shutdowns  int
}

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	f := &fakeNode{
		srv:        dgxh100.New(),
		compute:    make(map[int][]nvml.ProcessInfo),
		graphics:   make(map[int][]nvml.ProcessInfo),
		computeRet: make(map[int]nvml.Return),
		util:       make(map[int]func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return)),
		utilCalls:  make(map[int][]uint64),
	}
	f.srv.ShutdownFunc = func() nvml.Return {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.shutdowns++
		return nvml.SUCCESS
	}
	for i, d := range f.srv.Devices {
		dev := d.(*server.Device)
		dev.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if ret, ok := f.computeRet[i]; ok && ret != nvml.SUCCESS {
				return nil, ret
			}
			return append([]nvml.ProcessInfo(nil), f.compute[i]...), nvml.SUCCESS
		}
		dev.GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return append([]nvml.ProcessInfo(nil), f.graphics[i]...), nvml.SUCCESS
		}
		dev.GetProcessUtilizationFunc = func(last uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
			f.mu.Lock()
			f.utilCalls[i] = append(f.utilCalls[i], last)
			fn := f.util[i]
			var garbage []nvml.ProcessUtilizationSample
			for _, p := range f.compute[i] {
				garbage = append(garbage, nvml.ProcessUtilizationSample{Pid: p.Pid, SmUtil: 77, MemUtil: 77})
			}
			f.mu.Unlock()
			if fn != nil {
				return fn(last)
			}
			return garbage, nvml.ERROR_NOT_FOUND
		}
	}
	return f
}

func (f *fakeNode) uuid(i int) string { return f.srv.Devices[i].(*server.Device).UUID }

func (f *fakeNode) setCompute(i int, ps ...nvml.ProcessInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.compute[i] = ps
}

func (f *fakeNode) setComputeRet(i int, ret nvml.Return) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.computeRet[i] = ret
}

func newMockSampler(t *testing.T, f *fakeNode) *Sampler {
	t.Helper()
	s, err := NewSampler(testConfig(), &Options{Lib: f.srv})
	if err != nil {
		t.Fatalf("NewSampler: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// collect polls once and returns the emitted events as compact strings
// "change gpuIndex[/mig] pid used".
func collect(t *testing.T, s *Sampler) []string {
	t.Helper()
	var got []string
	err := s.Poll(context.Background(), func(e *event.Event) {
		if e.Kind != event.KindGPU || e.GPU == nil {
			t.Fatalf("got kind %v with payload %+v; want a gpu event", e.Kind, e.GPU)
		}
		if e.Process != nil || e.Container != nil {
			t.Errorf("gpu event carries process/container context; the enricher adds it")
		}
		if e.Time.IsZero() {
			t.Errorf("gpu event has no time")
		}
		g := e.GPU
		dev := fmt.Sprint(g.Index)
		if g.MIG != "" {
			dev += "/" + g.MIG
		}
		got = append(got, fmt.Sprintf("%s %s %d %d", g.Change, dev, g.PID, g.UsedBytes))
	})
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	return got
}

func TestNVMLOwnershipLifecycle(t *testing.T) {
	f := newFakeNode(t)
	s := newMockSampler(t, f)
	if got, want := s.State(), "nvml ok (8 GPUs, driver 550.54.15)"; got != want {
		t.Errorf("State: got %q; want %q", got, want)
	}

	steps := []struct {
		name string
		set  func()
		want []string
	}{
		{"no processes", func() {}, nil},
		{"process appears", func() { f.setCompute(0, nvml.ProcessInfo{Pid: 4242, UsedGpuMemory: 1 * gib}) },
			[]string{fmt.Sprintf("start 0 4242 %d", gib)}},
		{"same memory: nothing", func() {}, nil},
		{"grows below the noise floor", func() { f.setCompute(0, nvml.ProcessInfo{Pid: 4242, UsedGpuMemory: gib + 10*mib}) }, nil},
		{"grows past it", func() { f.setCompute(0, nvml.ProcessInfo{Pid: 4242, UsedGpuMemory: gib + 80*mib}) },
			[]string{fmt.Sprintf("update 0 4242 %d", gib+80*mib)}},
		{"small steps add up against the last report", func() { f.setCompute(0, nvml.ProcessInfo{Pid: 4242, UsedGpuMemory: gib + 120*mib}) }, nil},
		{"shrinks past it", func() { f.setCompute(0, nvml.ProcessInfo{Pid: 4242, UsedGpuMemory: 512 * mib}) },
			[]string{fmt.Sprintf("update 0 4242 %d", 512*mib)}},
		{"second GPU and second process", func() {
			f.setCompute(0, nvml.ProcessInfo{Pid: 4242, UsedGpuMemory: 512 * mib}, nvml.ProcessInfo{Pid: 77, UsedGpuMemory: 2 * gib})
			f.setCompute(5, nvml.ProcessInfo{Pid: 4242, UsedGpuMemory: 3 * gib})
		}, []string{fmt.Sprintf("start 0 77 %d", 2*gib), fmt.Sprintf("start 5 4242 %d", 3*gib)}},
		{"one disappears", func() { f.setCompute(0, nvml.ProcessInfo{Pid: 77, UsedGpuMemory: 2 * gib}) },
			[]string{"stop 0 4242 0"}},
		{"all disappear", func() { f.setCompute(0); f.setCompute(5) },
			[]string{"stop 0 77 0", "stop 5 4242 0"}},
	}
	for _, st := range steps {
		st.set()
		if got := collect(t, s); !equalStrings(got, st.want) {
			t.Errorf("%s: got %q; want %q", st.name, got, st.want)
		}
	}
	if st := s.Stats(); st.Samples != uint64(len(steps)) || st.Events != 8 || st.Errors != 0 {
		t.Errorf("Stats: got %+v; want %d samples, 8 events, 0 errors", st, len(steps))
	}
}

func TestNVMLEventFields(t *testing.T) {
	f := newFakeNode(t)
	s := newMockSampler(t, f)
	f.setCompute(3, nvml.ProcessInfo{Pid: 9, UsedGpuMemory: gib})
	var got []*event.Event
	if err := s.Poll(context.Background(), func(e *event.Event) { got = append(got, e) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d events; want 1", len(got))
	}
	want := event.GPU{Change: event.GPUStart, UUID: f.uuid(3), Index: 3, Name: "NVIDIA H100 80GB HBM3", PID: 9, UsedBytes: gib}
	if *got[0].GPU != want {
		t.Errorf("got %+v; want %+v", *got[0].GPU, want)
	}
	if u, ok := s.UUIDByIndex(3); !ok || u != f.uuid(3) {
		t.Errorf("UUIDByIndex(3): got %q, %v; want %q", u, ok, f.uuid(3))
	}
	if _, ok := s.UUIDByIndex(42); ok {
		t.Errorf("UUIDByIndex(42): found a GPU that does not exist")
	}

	f.setCompute(3)
	got = nil
	if err := s.Poll(context.Background(), func(e *event.Event) { got = append(got, e) }); err != nil {
		t.Fatal(err)
	}
	want = event.GPU{Change: event.GPUStop, UUID: f.uuid(3), Index: 3, Name: "NVIDIA H100 80GB HBM3", PID: 9}
	if len(got) != 1 || *got[0].GPU != want {
		t.Fatalf("got %v; want one %+v", got, want)
	}
}

func TestNVMLComputeAndGraphicsMerge(t *testing.T) {
	f := newFakeNode(t)
	s := newMockSampler(t, f)
	f.setCompute(1,
		nvml.ProcessInfo{Pid: 10, UsedGpuMemory: gib},
		nvml.ProcessInfo{Pid: 11, UsedGpuMemory: uint64(valueNotAvailable)},
	)
	f.mu.Lock()
	f.graphics[1] = []nvml.ProcessInfo{{Pid: 10, UsedGpuMemory: gib}, {Pid: 12, UsedGpuMemory: 256 * mib}}
	f.mu.Unlock()
	got := collect(t, s)
	want := []string{fmt.Sprintf("start 1 10 %d", gib), "start 1 11 0", fmt.Sprintf("start 1 12 %d", 256*mib)}
	if !equalStrings(got, want) {
		t.Fatalf("got %q; want %q", got, want)
	}
	owners := s.Snapshot().Devices[1].Owners
	types := map[uint32]string{}
	for _, o := range owners {
		types[o.PID] = o.Type
	}
	wantTypes := map[uint32]string{10: "compute+graphics", 11: "compute", 12: "graphics"}
	if fmt.Sprint(types) != fmt.Sprint(wantTypes) {
		t.Errorf("owner types: got %v; want %v", types, wantTypes)
	}
}

func TestNVMLMIG(t *testing.T) {
	f := newFakeNode(t)
	parent := f.srv.Devices[2].(*server.Device)
	if ret, _ := parent.SetMigMode(nvml.DEVICE_MIG_ENABLE); ret != nvml.SUCCESS {
		t.Fatalf("SetMigMode: %v", ret)
	}
	parent.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		t.Error("processes read from the parent of MIG instances; want per instance")
		return nil, nvml.ERROR_NO_PERMISSION
	}
	parent.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		t.Error("utilisation read on a MIG-enabled GPU; NVML does not support it")
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	var mu sync.Mutex
	procs := map[int][]nvml.ProcessInfo{
		0: {{Pid: 300, UsedGpuMemory: 5 * gib, GpuInstanceId: 1}},
		2: {},
	}
	migUUID := func(j int) string { return fmt.Sprintf("MIG-5c89b7a1-0000-4000-8000-00000000000%d", j) }
	migDev := func(j int) nvml.Device {
		return &mock.Device{
			GetUUIDFunc:       func() (string, nvml.Return) { return migUUID(j), nvml.SUCCESS },
			GetNameFunc:       func() (string, nvml.Return) { return "NVIDIA H100 80GB HBM3 MIG 1g.10gb", nvml.SUCCESS },
			GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) { return nvml.Memory{Total: 10 * gib}, nvml.SUCCESS },
			GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
				mu.Lock()
				defer mu.Unlock()
				return append([]nvml.ProcessInfo(nil), procs[j]...), nvml.SUCCESS
			},
			GetGraphicsRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED },
		}
	}
	parent.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	parent.GetMigDeviceHandleByIndexFunc = func(j int) (nvml.Device, nvml.Return) {
		switch j {
		case 0, 2:
			return migDev(j), nvml.SUCCESS
		case 1:
			return nil, nvml.ERROR_INVALID_ARGUMENT // empty slot, as dcgm-exporter sees them
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	s := newMockSampler(t, f)

	got := collect(t, s)
	want := []string{fmt.Sprintf("start 2/%s 300 %d", migUUID(0), 5*gib)}
	if !equalStrings(got, want) {
		t.Fatalf("first sample: got %q; want %q", got, want)
	}

	mu.Lock()
	procs[2] = []nvml.ProcessInfo{{Pid: 301, UsedGpuMemory: 2 * gib}}
	procs[0] = nil
	mu.Unlock()
	got = collect(t, s)
	want = []string{fmt.Sprintf("start 2/%s 301 %d", migUUID(2), 2*gib), fmt.Sprintf("stop 2/%s 300 0", migUUID(0))}
	if !equalStrings(got, want) {
		t.Fatalf("second sample: got %q; want %q", got, want)
	}

	var migs []Device
	var whole *Device
	snap := s.Snapshot()
	for i, d := range snap.Devices {
		if d.Index != 2 {
			continue
		}
		if d.MIG == "" {
			whole = &snap.Devices[i]
		} else {
			migs = append(migs, d)
		}
	}
	if whole == nil || !whole.MIGEnabled || whole.UUID != f.uuid(2) {
		t.Fatalf("snapshot: GPU 2 is %+v; want the MIG-enabled parent", whole)
	}
	if len(migs) != 2 || migs[0].MIG != migUUID(0) || migs[1].MIG != migUUID(2) {
		t.Fatalf("snapshot: MIG instances %+v; want %s and %s", migs, migUUID(0), migUUID(2))
	}
	if migs[1].UUID != f.uuid(2) || migs[1].Name != "NVIDIA H100 80GB HBM3 MIG 1g.10gb" || migs[1].MemoryTotal != 10*gib {
		t.Errorf("MIG instance: got %+v", migs[1])
	}
	if len(migs[1].Owners) != 1 || migs[1].Owners[0].PID != 301 {
		t.Errorf("MIG owners: got %+v; want pid 301", migs[1].Owners)
	}
}

func TestNVMLUtilisation(t *testing.T) {
	f := newFakeNode(t)
	s := newMockSampler(t, f)
	f.setCompute(0, nvml.ProcessInfo{Pid: 50, UsedGpuMemory: gib})
	f.setCompute(1, nvml.ProcessInfo{Pid: 60, UsedGpuMemory: gib})
	f.setCompute(4, nvml.ProcessInfo{Pid: 70, UsedGpuMemory: gib})

	// GPU 0 keeps the idle answer: NOT_FOUND with samples claiming 77 %.
	// GPU 1 has real samples, two for pid 60 (the newer wins).
	f.mu.Lock()
	f.util[1] = func(last uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		if last >= 2000 {
			return make([]nvml.ProcessUtilizationSample, 3), nvml.ERROR_NOT_FOUND
		}
		return []nvml.ProcessUtilizationSample{
			{Pid: 60, TimeStamp: 2000, SmUtil: 91, MemUtil: 40},
			{Pid: 60, TimeStamp: 1000, SmUtil: 10, MemUtil: 5},
			{Pid: 999, TimeStamp: 1500, SmUtil: 5},
		}, nvml.SUCCESS
	}
	f.util[4] = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		return nil, nvml.ERROR_NOT_SUPPORTED
	}
	f.mu.Unlock()

	owner := func(idx int) Owner {
		t.Helper()
		for _, d := range s.Snapshot().Devices {
			if d.Index == idx && d.MIG == "" && len(d.Owners) == 1 {
				return d.Owners[0]
			}
		}
		t.Fatalf("GPU %d has no single owner", idx)
		return Owner{}
	}

	collect(t, s)
	if o := owner(0); o.HasUtil || o.SMUtil != 0 {
		t.Errorf("GPU 0 (NOT_FOUND): got %+v; want no utilisation, the samples are garbage", o)
	}
	if o := owner(1); !o.HasUtil || o.SMUtil != 91 || o.MemUtil != 40 {
		t.Errorf("GPU 1: got %+v; want sm 91 mem 40 from the newest sample", o)
	}
	collect(t, s)
	if o := owner(1); o.HasUtil {
		t.Errorf("GPU 1 second sample (NOT_FOUND): got %+v; want no utilisation", o)
	}
	collect(t, s)

	f.mu.Lock()
	defer f.mu.Unlock()
	if got := fmt.Sprint(f.utilCalls[1]); got != "[0 2000 2000]" {
		t.Errorf("lastSeen passed to GPU 1: got %s; want [0 2000 2000]", got)
	}
	if got := len(f.utilCalls[4]); got != 1 {
		t.Errorf("GPU 4 asked %d times after NOT_SUPPORTED; want 1", got)
	}
	if got := len(f.utilCalls[2]); got != 0 {
		t.Errorf("GPU 2 without processes asked %d times; want 0", got)
	}
}

func TestNVMLStaleDeviceKeepsOwners(t *testing.T) {
	f := newFakeNode(t)
	s := newMockSampler(t, f)
	f.setCompute(0, nvml.ProcessInfo{Pid: 1, UsedGpuMemory: gib})
	if got := collect(t, s); len(got) != 1 {
		t.Fatalf("got %q; want one start", got)
	}
	f.setComputeRet(0, nvml.ERROR_GPU_IS_LOST)
	if got := collect(t, s); len(got) != 0 {
		t.Fatalf("unreadable GPU: got %q; want no events (owners kept)", got)
	}
	if st := s.Stats(); st.Stale != 1 {
		t.Errorf("Stats.Stale: got %d; want 1", st.Stale)
	}
	if o := s.Snapshot().Devices[0].Owners; len(o) != 1 || o[0].PID != 1 {
		t.Errorf("snapshot owners of the unreadable GPU: got %+v; want pid 1 kept", o)
	}
	f.setComputeRet(0, nvml.SUCCESS)
	f.setCompute(0)
	if got, want := collect(t, s), []string{"stop 0 1 0"}; !equalStrings(got, want) {
		t.Fatalf("recovered: got %q; want %q", got, want)
	}
}

func TestNVMLSampleFailureKeepsState(t *testing.T) {
	f := newFakeNode(t)
	s := newMockSampler(t, f)
	f.setCompute(0, nvml.ProcessInfo{Pid: 1, UsedGpuMemory: gib})
	collect(t, s)
	f.srv.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	emitted := 0
	err := s.Poll(context.Background(), func(*event.Event) { emitted++ })
	if err == nil || !strings.Contains(err.Error(), "count NVIDIA devices") {
		t.Fatalf("Poll: got %v; want a device count error", err)
	}
	if emitted != 0 {
		t.Errorf("emitted %d events on a failed sample; want 0", emitted)
	}
	if st := s.Stats(); st.Errors != 1 {
		t.Errorf("Stats.Errors: got %d; want 1", st.Errors)
	}
	if snap := s.Snapshot(); len(snap.Devices) != 8 || len(snap.Devices[0].Owners) != 1 {
		t.Errorf("snapshot after a failed sample: %d devices; want the previous 8 with the owner", len(snap.Devices))
	}
}

func TestNewSamplerNoDriver(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*config.GPUConfig)
		lib  nvml.Interface
	}{
		{
			// The real go-nvml loader, pointed at a library that is not there:
			// exactly what a CPU-only host does.
			name: "real loader, library absent",
			cfg:  func(c *config.GPUConfig) { c.LibraryPath = filepath.Join(t.TempDir(), "libnvidia-ml.so.1") },
		},
		{name: "library not found", lib: &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}},
		{name: "driver not loaded", lib: &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			// A mock.Interface panics on any call it does not define, so
			// this also proves Shutdown is not called after a failed Init.
			s, err := NewSampler(cfg, &Options{Lib: tt.lib})
			if !errors.Is(err, ErrNoDriver) {
				t.Fatalf("got %v; want ErrNoDriver", err)
			}
			if got, want := err.Error(), "no NVIDIA driver found; GPU ownership disabled"; got != want {
				t.Errorf("message: got %q; want %q", got, want)
			}
			checkDisabled(t, s, "disabled: no NVIDIA driver found")
		})
	}
}

func TestNewSamplerInitFailure(t *testing.T) {
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_NO_PERMISSION }}
	s, err := NewSampler(testConfig(), &Options{Lib: lib})
	var ie *InitError
	if !errors.As(err, &ie) || ie.Code != int(nvml.ERROR_NO_PERMISSION) {
		t.Fatalf("got %v; want an *InitError with ERROR_NO_PERMISSION", err)
	}
	if errors.Is(err, ErrNoDriver) {
		t.Errorf("an init failure must not read as a missing driver")
	}
	if !strings.Contains(err.Error(), nvml.ERROR_NO_PERMISSION.Error()) {
		t.Errorf("message %q does not carry the return code's string %q", err, nvml.ERROR_NO_PERMISSION.Error())
	}
	checkDisabled(t, s, "disabled: "+err.Error())
}

func TestNewSamplerOff(t *testing.T) {
	cfg := testConfig()
	cfg.Source = config.GPUSourceOff
	s, err := NewSampler(cfg, nil)
	if err != nil {
		t.Fatalf("got %v; want no error for source off", err)
	}
	checkDisabled(t, s, "disabled: gpu.source is off")
}

func checkDisabled(t *testing.T, s *Sampler, state string) {
	t.Helper()
	if s == nil {
		t.Fatal("got a nil Sampler; want a disabled one")
	}
	if s.Enabled() {
		t.Error("Enabled: got true; want false")
	}
	if got := s.State(); got != state {
		t.Errorf("State: got %q; want %q", got, state)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Run(ctx, func(*event.Event) { t.Error("a disabled sampler emitted an event") }); err != nil {
		t.Errorf("Run: got %v; want nil", err)
	}
	if time.Since(start) > time.Second {
		t.Error("Run of a disabled sampler blocked; want an immediate return")
	}
	if err := s.Poll(ctx, nil); err == nil {
		t.Error("Poll of a disabled sampler: got nil; want an error")
	}
	if snap := s.Snapshot(); len(snap.Devices) != 0 || snap.State != state {
		t.Errorf("Snapshot: got %+v; want no devices and state %q", snap, state)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestRunSamplesUntilCancelled(t *testing.T) {
	f := newFakeNode(t)
	cfg := testConfig()
	cfg.Interval = config.Duration(100 * time.Millisecond)
	s, err := NewSampler(cfg, &Options{Lib: f.srv})
	if err != nil {
		t.Fatal(err)
	}
	f.setCompute(6, nvml.ProcessInfo{Pid: 31337, UsedGpuMemory: gib})
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan *event.Event, 16)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(e *event.Event) { events <- e }) }()
	// Readers race the sampler (run with -race).
	readers := make(chan struct{})
	go func() {
		defer close(readers)
		for ctx.Err() == nil {
			_ = s.Snapshot()
			_ = s.State()
			_, _ = s.UUIDByIndex(6)
			_ = s.Stats()
			time.Sleep(time.Millisecond)
		}
	}()

	select {
	case e := <-events:
		if e.GPU.Change != event.GPUStart || e.GPU.PID != 31337 || e.GPU.UUID != f.uuid(6) {
			t.Errorf("got %+v; want start of pid 31337 on GPU 6", *e.GPU)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	f.setCompute(6)
	select {
	case e := <-events:
		if e.GPU.Change != event.GPUStop {
			t.Errorf("got %+v; want stop", *e.GPU)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no stop event within 5s: Run does not keep sampling")
	}
	cancel()
	<-readers
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: got %v; want nil on cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.shutdowns != 1 {
		t.Errorf("NVML Shutdown called %d times; want 1", f.shutdowns)
	}
	if s.Stats().Samples < 2 {
		t.Errorf("Samples: got %d; want at least 2", s.Stats().Samples)
	}
}

func TestNVMLLibraryCandidates(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "run/nvidia/driver/libnvidia-ml.so.1")
	if err := os.MkdirAll(filepath.Dir(present), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(present, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(dir, "host/usr/lib64/libnvidia-ml.so.1")

	notFound := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	noPerm := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_NO_PERMISSION }}
	good := newFakeNode(t).srv

	tests := []struct {
		name       string
		path       string   // gpu.library_path
		candidates []string // libraryCandidates
		libs       map[string]Library
		wantTried  string
		wantOK     bool
		wantNoDrv  bool
	}{
		{"loader path works", "", []string{present}, map[string]Library{"": good}, `[""]`, true, false},
		{"falls back to the first existing candidate", "", []string{absent, present},
			map[string]Library{"": notFound, present: good}, `["" "` + present + `"]`, true, false},
		{"no candidate exists", "", []string{absent}, map[string]Library{"": notFound}, `[""]`, false, true},
		{"init failure is not retried elsewhere", "", []string{present},
			map[string]Library{"": noPerm, present: good}, `[""]`, false, false},
		{"configured path only", present, []string{absent}, map[string]Library{present: good}, `["` + present + `"]`, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oldC, oldL := libraryCandidates, newLibrary
			t.Cleanup(func() { libraryCandidates, newLibrary = oldC, oldL })
			libraryCandidates = tt.candidates
			var tried []string
			newLibrary = func(p string) Library {
				tried = append(tried, p)
				if l, ok := tt.libs[p]; ok {
					return l
				}
				t.Fatalf("loaded unexpected library %q", p)
				return nil
			}
			src, err := newNVMLSource(tt.path, nil)
			if tt.wantOK != (err == nil) || errors.Is(err, ErrNoDriver) != tt.wantNoDrv {
				t.Fatalf("got %v; want ok=%v, ErrNoDriver=%v", err, tt.wantOK, tt.wantNoDrv)
			}
			if err == nil {
				src.close()
			} else if src != nil {
				t.Errorf("got a non-nil source %v with error %v", src, err)
			}
			// The loader's search path is tried first (as ""), then candidates.
			if got := fmt.Sprintf("%q", tried); got != tt.wantTried {
				t.Errorf("libraries tried: got %s; want %s", got, tt.wantTried)
			}
		})
	}
}
