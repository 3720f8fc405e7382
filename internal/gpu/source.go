package gpu

import (
	"context"
	"time"
)

// Device is one GPU, or one MIG instance of a GPU, as last sampled.
type Device struct {
	// Index is the GPU's NVML index (the parent's, for a MIG instance).
	Index int
	// UUID is the GPU's UUID (the parent's, for a MIG instance).
	UUID string
	// MIG is the MIG instance's UUID, or "" for a whole GPU.
	MIG string
	// Name is the product name, e.g. "NVIDIA H100 80GB HBM3".
	Name string
	// MIGEnabled is set on a whole GPU whose MIG mode is on. Its processes
	// are then listed on its MIG instances, not on the GPU itself.
	MIGEnabled bool
	// MemoryTotal and MemoryUsed are in bytes; zero when unknown.
	MemoryTotal, MemoryUsed uint64
	// Owners are the processes holding memory on this device, by PID.
	Owners []Owner
}

// Owner is one process holding memory on a device.
type Owner struct {
	// PID is the host tgid.
	PID uint32
	// UsedBytes is the GPU memory the process holds; zero when the driver
	// does not say (NVML_VALUE_NOT_AVAILABLE).
	UsedBytes uint64
	// Type is "compute", "graphics" or "compute+graphics".
	Type string
	// HasUtil tells whether SMUtil and MemUtil hold a fresh sample. An idle
	// GPU, or a MIG instance, has none.
	HasUtil bool
	// SMUtil and MemUtil are percentages over the driver's last sample period.
	SMUtil, MemUtil uint32
}

// Owner types.
const (
	ownerCompute  = "compute"
	ownerGraphics = "graphics"
	ownerBoth     = "compute+graphics"
)

// Snapshot is the sampler's view at one time: every device and its owners.
type Snapshot struct {
	// Time is when the snapshot was sampled; zero before the first sample.
	Time time.Time
	// State is what Sampler.State said at that time.
	State string
	// Devices are ordered by index, a whole GPU before its MIG instances.
	Devices []Device
}

// reading is one sample from a source.
type reading struct {
	devices []Device
	// stale names devices (by deviceKey) whose process list could not be
	// read this time; the sampler keeps their previous owners rather than
	// reporting them stopped.
	stale map[deviceKey]bool
}

// deviceKey identifies a device or MIG instance across samples.
type deviceKey struct {
	uuid, mig string
}

func (d *Device) key() deviceKey { return deviceKey{d.UUID, d.MIG} }

// source is where a Sampler reads ownership from: NVML or a replay file.
// Both feed the same diff logic.
type source interface {
	// sample reads devices and owners now. An error means nothing usable was
	// read and the previous state stands.
	sample(ctx context.Context) (reading, error)
	// state describes the source for Sampler.State.
	state() string
	// close releases the source. It is called once.
	close() error
}
