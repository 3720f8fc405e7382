package config

// ExportConfig drives the event ring, gRPC listeners and file exporters.
type ExportConfig struct{}

func defaultExport() ExportConfig { return ExportConfig{} }

func (c *ExportConfig) validate() error { return nil }
