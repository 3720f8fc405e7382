//go:build cgo

package gpu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// valueNotAvailable is NVML_VALUE_NOT_AVAILABLE as an unsigned long long: what
// the driver puts in UsedGpuMemory when it cannot tell (no privileges, WDDM).
const valueNotAvailable = ^uint64(0)

// nvmlSource reads devices and owners from NVML.
type nvmlSource struct {
	lib    nvml.Interface
	driver string

	mu    sync.Mutex // guards count for state()
	count int

	// uuidByIndex remembers each index's UUID, so that a GPU whose handle
	// cannot be had this time keeps its owners instead of losing them.
	uuidByIndex map[int]string
	// lastSeen is the newest utilisation sample timestamp per GPU UUID, so
	// that each call returns only newer samples.
	lastSeen map[string]uint64
	// noUtil marks GPUs that said NOT_SUPPORTED for utilisation.
	noUtil map[string]bool
}

// Library is the NVML API the sampler uses: go-nvml's nvml.Interface, which
// both the real library and go-nvml's mock implement.
type Library = nvml.Interface

// noDriverState completes "disabled: " in Sampler.State without a driver.
const noDriverState = "no NVIDIA driver found"

// libraryCandidates are where libnvidia-ml.so.1 lives when the sensor runs in
// a container and the loader's search path does not have it: the GPU
// operator's driver container, and the host's /usr mounted at /host.
var libraryCandidates = []string{
	"/run/nvidia/driver/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
	"/run/nvidia/driver/usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1",
	"/run/nvidia/driver/usr/lib64/libnvidia-ml.so.1",
	"/host/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
	"/host/usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1",
	"/host/usr/lib64/libnvidia-ml.so.1",
}

// newLibrary returns the real NVML library at path ("" for the loader's
// search path). Tests replace it.
var newLibrary = func(path string) Library {
	if path == "" {
		return nvml.New()
	}
	return nvml.New(nvml.WithLibraryPath(path))
}

// newNVMLSource opens NVML: lib if given; else the library at libraryPath;
// else libnvidia-ml.so.1 from the loader's search path, then from the first
// of libraryCandidates that exists.
func newNVMLSource(libraryPath string, lib Library) (source, error) {
	if lib != nil {
		return asSource(openNVML(lib))
	}
	if libraryPath != "" {
		return asSource(openNVML(newLibrary(libraryPath)))
	}
	s, err := openNVML(newLibrary(""))
	if !errors.Is(err, ErrNoDriver) {
		return asSource(s, err)
	}
	for _, p := range libraryCandidates {
		if _, serr := os.Stat(p); serr != nil {
			continue
		}
		return asSource(openNVML(newLibrary(p)))
	}
	return nil, err
}

// asSource keeps a nil *nvmlSource from becoming a non-nil source.
func asSource(s *nvmlSource, err error) (source, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

// openNVML initialises lib and reads the driver version. Library absence maps
// to ErrNoDriver, any other failure to *InitError.
func openNVML(lib nvml.Interface) (*nvmlSource, error) {
	switch ret := lib.Init(); ret {
	case nvml.SUCCESS:
	case nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED:
		// Shutdown without a successful Init trips an unresolved symbol in
		// the C side; do not call it.
		return nil, ErrNoDriver
	default:
		return nil, &InitError{Code: int(ret), Reason: ret.Error()}
	}
	s := &nvmlSource{
		lib:         lib,
		uuidByIndex: make(map[int]string),
		lastSeen:    make(map[string]uint64),
		noUtil:      make(map[string]bool),
	}
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		s.driver = v
	} else {
		s.driver = "unknown"
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		lib.Shutdown()
		return nil, fmt.Errorf("count NVIDIA devices: %s; GPU ownership disabled", ret.Error())
	}
	s.count = n
	return s, nil
}

func (s *nvmlSource) state() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	unit := "GPUs"
	if s.count == 1 {
		unit = "GPU"
	}
	return fmt.Sprintf("nvml ok (%d %s, driver %s)", s.count, unit, s.driver)
}

func (s *nvmlSource) close() error {
	if ret := s.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("shut down NVML: %s", ret.Error())
	}
	return nil
}

func (s *nvmlSource) sample(ctx context.Context) (reading, error) {
	n, ret := s.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return reading{}, fmt.Errorf("count NVIDIA devices: %s", ret.Error())
	}
	s.mu.Lock()
	s.count = n
	s.mu.Unlock()

	r := reading{devices: make([]Device, 0, n)}
	markStale := func(k deviceKey) {
		if r.stale == nil {
			r.stale = make(map[deviceKey]bool)
		}
		r.stale[k] = true
	}
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return reading{}, err
		}
		dev, ret := s.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			if u, ok := s.uuidByIndex[i]; ok {
				markStale(deviceKey{uuid: u})
			}
			continue
		}
		uuid, ret := dev.GetUUID()
		if ret != nvml.SUCCESS {
			if u, ok := s.uuidByIndex[i]; ok {
				markStale(deviceKey{uuid: u})
			}
			continue
		}
		s.uuidByIndex[i] = uuid
		d := Device{Index: i, UUID: uuid}
		d.Name, _ = stringOr(dev.GetName())
		if m, ret := dev.GetMemoryInfo(); ret == nvml.SUCCESS {
			d.MemoryTotal, d.MemoryUsed = m.Total, m.Used
		}
		if cur, _, ret := dev.GetMigMode(); ret == nvml.SUCCESS && cur == nvml.DEVICE_MIG_ENABLE {
			d.MIGEnabled = true
		}
		if !d.MIGEnabled {
			owners, ok := processes(dev)
			if !ok {
				markStale(d.key())
			}
			d.Owners = owners
			s.utilisation(dev, uuid, d.Owners)
			r.devices = append(r.devices, d)
			continue
		}
		// In MIG mode the parent handle gives aggregates only with extra
		// privileges, and process utilisation is not supported; list
		// processes per MIG instance instead.
		r.devices = append(r.devices, d)
		migs, stale := s.migDevices(dev, d)
		r.devices = append(r.devices, migs...)
		for _, k := range stale {
			markStale(k)
		}
	}
	return r, nil
}

// migDevices lists the MIG instances of parent and their processes. Empty
// slots answer NOT_FOUND or INVALID_ARGUMENT and are skipped.
func (s *nvmlSource) migDevices(dev nvml.Device, parent Device) ([]Device, []deviceKey) {
	max, ret := dev.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		return nil, nil
	}
	var out []Device
	var stale []deviceKey
	for j := 0; j < max; j++ {
		mig, ret := dev.GetMigDeviceHandleByIndex(j)
		if ret != nvml.SUCCESS {
			continue
		}
		u, ret := mig.GetUUID()
		if ret != nvml.SUCCESS {
			continue
		}
		m := Device{Index: parent.Index, UUID: parent.UUID, MIG: u, Name: parent.Name}
		if name, ok := stringOr(mig.GetName()); ok {
			m.Name = name
		}
		if mem, ret := mig.GetMemoryInfo(); ret == nvml.SUCCESS {
			m.MemoryTotal, m.MemoryUsed = mem.Total, mem.Used
		}
		owners, ok := processes(mig)
		if !ok {
			stale = append(stale, m.key())
		}
		m.Owners = owners
		out = append(out, m)
	}
	return out, stale
}

// processes merges the compute and graphics processes of dev by PID. ok is
// false when the compute list could not be read (the device's owners are then
// unknown this time); a graphics list the device does not support is fine.
func processes(dev nvml.Device) ([]Owner, bool) {
	byPID := make(map[uint32]int)
	var out []Owner
	add := func(ps []nvml.ProcessInfo, typ string) {
		for _, p := range ps {
			used := p.UsedGpuMemory
			if used == valueNotAvailable {
				used = 0
			}
			if i, ok := byPID[p.Pid]; ok {
				// A process with both contexts is listed twice with the
				// same memory; do not add it up.
				o := &out[i]
				o.UsedBytes = max(o.UsedBytes, used)
				if o.Type != typ {
					o.Type = ownerBoth
				}
				continue
			}
			byPID[p.Pid] = len(out)
			out = append(out, Owner{PID: p.Pid, UsedBytes: used, Type: typ})
		}
	}
	cps, ret := dev.GetComputeRunningProcesses()
	ok := true
	switch ret {
	case nvml.SUCCESS:
		add(cps, ownerCompute)
	case nvml.ERROR_NOT_SUPPORTED:
	default:
		ok = false
	}
	if gps, ret := dev.GetGraphicsRunningProcesses(); ret == nvml.SUCCESS {
		add(gps, ownerGraphics)
	}
	return out, ok
}

// utilisation fills the owners' utilisation from samples newer than the last
// one seen on this GPU. An idle GPU answers NOT_FOUND together with a slice
// of zeroed samples: only SUCCESS makes the samples meaningful.
func (s *nvmlSource) utilisation(dev nvml.Device, uuid string, owners []Owner) {
	if s.noUtil[uuid] || len(owners) == 0 {
		return
	}
	samples, ret := dev.GetProcessUtilization(s.lastSeen[uuid])
	switch ret {
	case nvml.SUCCESS:
	case nvml.ERROR_NOT_SUPPORTED:
		s.noUtil[uuid] = true
		return
	default:
		return
	}
	type util struct {
		ts       uint64
		sm, memo uint32
	}
	latest := make(map[uint32]util, len(samples))
	for _, p := range samples {
		if p.TimeStamp > s.lastSeen[uuid] {
			s.lastSeen[uuid] = p.TimeStamp
		}
		if u, ok := latest[p.Pid]; !ok || p.TimeStamp >= u.ts {
			latest[p.Pid] = util{p.TimeStamp, p.SmUtil, p.MemUtil}
		}
	}
	for i := range owners {
		if u, ok := latest[owners[i].PID]; ok {
			owners[i].HasUtil = true
			owners[i].SMUtil, owners[i].MemUtil = u.sm, u.memo
		}
	}
}

func stringOr(v string, ret nvml.Return) (string, bool) {
	if ret != nvml.SUCCESS {
		return "", false
	}
	return v, true
}
