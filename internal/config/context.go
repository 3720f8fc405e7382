package config

// ContextConfig drives enrichment: the process table, container and pod
// resolution, and egress classification.
type ContextConfig struct{}

func defaultContext() ContextConfig { return ContextConfig{} }

func (c *ContextConfig) validate() error { return nil }
