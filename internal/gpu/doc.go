// Package gpu tells which process owns which GPU, and which pod was assigned
// which GPU.
//
// A [Sampler] polls an ownership source every gpu.interval (default 1s) and
// turns the difference between two samples into [event.KindGPU] events:
// "start" when a host process first holds memory on a GPU (or MIG instance),
// "stop" when it no longer does, and "update" when its used memory moved by at
// least gpu.update_min_bytes since it was last reported. Events carry no
// Process: the enricher joins the host PID with the process table.
//
// Two sources feed the same diff logic:
//
//   - nvml: the NVIDIA driver through go-nvml (libnvidia-ml.so.1, dlopened at
//     start). Devices, MIG instances, compute and graphics processes with used
//     memory, and per-process utilisation where the driver has samples. NVML
//     returns host PIDs only when the sensor runs in the host PID namespace.
//   - replay: a JSON file, rewritten atomically by a test harness on CPU-only
//     hosts, in the format documented on [config.GPUConfig].
//
// Without a driver, [NewSampler] returns a disabled Sampler and [ErrNoDriver];
// the caller logs that error once and runs on.
//
// An [Assigner] answers which GPUs a container was given: from the kubelet
// PodResources API (nvidia.com/gpu and nvidia.com/mig-* resources), or from
// gpu.static_alloc where there is no kubelet.
//
// The NVML source needs cgo, because go-nvml does; the library itself is
// loaded at run time, so the binary runs on hosts without it. Built with
// CGO_ENABLED=0, the package still compiles: NewSampler then answers
// ErrNoDriver for gpu.source nvml, and the replay source and the Assigner
// work as usual.
package gpu
