package config

// GPUConfig drives the NVML sampler and pod GPU assignments.
type GPUConfig struct{}

func defaultGPU() GPUConfig { return GPUConfig{} }

func (c *GPUConfig) validate() error { return nil }
