package model

import (
	"strings"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

// NewMatcherFromConfig returns the Matcher that the detect section describes:
// its model_roots and model_min_bytes (0 turns the size gate off).
func NewMatcherFromConfig(c *config.DetectConfig) (*Matcher, error) {
	opts := &MatcherOptions{MinBytes: c.ModelMinBytes}
	if c.ModelMinBytes == 0 {
		opts.MinBytes = -1
	}
	return NewMatcher(c.ModelRoots, opts)
}

// RootsFromEnv returns the model roots named by a process environment: the
// values of RootEnvNames that are absolute paths, in order, without
// duplicates. Feed it a container's first process and pass the result to
// Matcher.AddRoots.
func RootsFromEnv(env []event.EnvVar) []string {
	var out []string
	for _, v := range env {
		if !isRootEnv(v.Name) || !strings.HasPrefix(v.Value, "/") {
			continue
		}
		dup := false
		for _, o := range out {
			dup = dup || o == v.Value
		}
		if !dup {
			out = append(out, v.Value)
		}
	}
	return out
}

func isRootEnv(name string) bool {
	for _, n := range RootEnvNames {
		if n == name {
			return true
		}
	}
	return false
}
