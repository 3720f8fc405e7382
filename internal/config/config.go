// Package config parses and validates the sensor's YAML configuration.
//
// Parsing is pure: it needs no root and touches no kernel state, so every
// knob can be tested on its own. Unknown keys and bad values are errors that
// name the key, never silently ignored.
//
// Each section lives in its own file (capture.go, context.go, gpu.go,
// detect.go, export.go) with its defaults and its validation.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole sensor configuration.
type Config struct {
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text (logfmt-like key=value) or json (one object per
	// line, for log pipelines).
	LogFormat string        `yaml:"log_format"`
	Capture   CaptureConfig `yaml:"capture"`
	Context   ContextConfig `yaml:"context"`
	GPU       GPUConfig     `yaml:"gpu"`
	Detect    DetectConfig  `yaml:"detect"`
	Export    ExportConfig  `yaml:"export"`
	Metrics   MetricsConfig `yaml:"metrics"`
}

// Default returns the built-in configuration. It is what the sensor runs
// with when no --config is given, and the base a config file overrides.
func Default() *Config {
	return &Config{
		LogLevel:  "info",
		LogFormat: LogFormatText,
		Capture:   defaultCapture(),
		Context:   defaultContext(),
		GPU:       defaultGPU(),
		Detect:    defaultDetect(),
		Export:    defaultExport(),
		Metrics:   defaultMetrics(),
	}
}

// Load reads and validates the file at path, on top of Default.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	cfg, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// MaxConfigBytes bounds a configuration file. A longer one is an error, never
// read in part: keys past a cut would be silently ignored.
const MaxConfigBytes = 4 << 20

// Parse decodes YAML from r on top of Default and validates the result.
// Unknown keys, a second document, a number with a fraction where an integer
// is wanted and a file over MaxConfigBytes are rejected.
func Parse(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("read: the config is larger than %d bytes (4 MiB); a config is a few kilobytes", MaxConfigBytes)
	}
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			// One line per problem is unreadable in a log; join them.
			return nil, fmt.Errorf("parse: %s", strings.Join(te.Errors, "; "))
		}
		return nil, fmt.Errorf("parse: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse: line %d: a second YAML document; the config is one document", extra.Line)
	}
	// yaml.v3 truncates 4096.5 to 4096 when it fills an int: check the
	// integers against the text.
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil {
		if err := checkIntegers(&root, reflect.TypeOf(cfg).Elem(), ""); err != nil {
			return nil, fmt.Errorf("parse: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// checkIntegers walks the YAML tree along the Go type it fills and reports
// the first value with a fraction or an exponent (a YAML float) bound for an
// integer field, naming the key.
func checkIntegers(n *yaml.Node, t reflect.Type, path string) error {
	for n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		} else if len(n.Content) == 1 {
			n = n.Content[0]
		} else {
			return nil
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil // it checks its own text (durations, patterns)
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			for j := 0; j < t.NumField(); j++ {
				f := t.Field(j)
				if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key {
					if err := checkIntegers(n.Content[i+1], f.Type, join(path, key)); err != nil {
						return err
					}
				}
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkIntegers(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := checkIntegers(c, t.Elem(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" {
			return fmt.Errorf("%s: line %d: %s is not an integer", path, n.Line, n.Value)
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Validate checks every section and returns the first problem, naming the key.
func (c *Config) Validate() error {
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if err := ValidateLogFormat(c.LogFormat); err != nil {
		return fmt.Errorf("log_format: %w", err)
	}
	for _, s := range []struct {
		name string
		fn   func() error
	}{
		{"capture", c.Capture.validate},
		{"context", c.Context.validate},
		{"gpu", c.GPU.validate},
		{"detect", c.Detect.validate},
		{"export", c.Export.validate},
		{"metrics", c.Metrics.validate},
	} {
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s.%w", s.name, err)
		}
	}
	return nil
}

// Log formats.
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
)

// ValidateLogFormat checks a log format (the log_format key and the
// --log-format flag).
func ValidateLogFormat(f string) error {
	if f != LogFormatText && f != LogFormatJSON {
		return fmt.Errorf("%q is not one of text, json", f)
	}
	return nil
}

// Duration is a time.Duration that reads "5m" or "1.5s" from YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration like \"5s\"", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (want e.g. \"500ms\", \"5m\")", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// checkDuration reports a duration outside [min, max], naming the key.
// Every duration has bounds: a poll or flush interval of 2562047h is a
// sensor that never looks again (and never sees its SIGTERM).
func checkDuration(key string, d Duration, min, max time.Duration) error {
	if v := d.D(); v < min || v > max {
		return fmt.Errorf("%s: %s is outside [%s, %s]", key, v, min, max)
	}
	return nil
}
