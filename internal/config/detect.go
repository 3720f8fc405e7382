package config

// DetectConfig turns rules on and off, overrides severities and holds
// allowlists and tunables.
type DetectConfig struct{}

func defaultDetect() DetectConfig { return DetectConfig{} }

func (c *DetectConfig) validate() error { return nil }
