package runtime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// Environment capture keeps only the names of event.EnvLoaderNames,
// event.EnvCaptureNames and event.EnvCapturePrefixes
// (docs/detection.md#environment-capture). The kernel filters: an exec
// record carries only those entries, however long the environment
// (bpf/process.bpf.h), so nothing else crosses into user space and the
// decoder allocates only for what it keeps.

// secretWords mark a name whose value is hashed, never kept in clear.
var secretWords = []string{"TOKEN", "SECRET", "KEY", "PASSWORD", "CREDENTIAL"}

// Sizes and classes of the kernel's capture table (bpf/process.bpf.h).
const (
	envPats      = 32 // ENV_PATS
	envPatLen    = 24 // ENV_PAT_LEN
	envPatWords  = envPatLen / 8
	envFirst2Len = 65536 / 8
	// envCut marks a kept entry the kernel cut.
	envCut      = 0x8000
	envEntryMax = 2048
	envKeptMax  = 4096
	// envShort is where the kernel cuts an entry whose pattern is not
	// envWhole: it holds a name and the maxEnvValLen bytes of value that
	// decodeEnv keeps.
	envShort = 384
	// envWhole: the value may be a secret, hashed whole; envLoader: a
	// dynamic loader variable, which other names cannot crowd out of the
	// record.
	envWhole  = 1 << 0
	envLoader = 1 << 1
)

// envPattern is one pattern of the kernel's capture table.
type envPattern struct {
	match string // "NAME=" for an exact name, or a prefix
	class uint8
}

// envPatterns are the kernel's patterns: "NAME=" for each exact name, so
// that a longer name sharing its start does not match, and each prefix.
// Any name under a prefix may be a secret ("AWS_SESSION_TOKEN"), so its
// value is sent whole.
func envPatterns() []envPattern {
	var out []envPattern
	exact := func(names []string, class uint8) {
		for _, n := range names {
			p := envPattern{match: n + "=", class: class}
			if envNameSecret(n) {
				p.class |= envWhole
			}
			out = append(out, p)
		}
	}
	exact(event.EnvLoaderNames, envLoader)
	exact(event.EnvCaptureNames, 0)
	for _, pre := range event.EnvCapturePrefixes {
		out = append(out, envPattern{match: pre, class: envWhole})
	}
	return out
}

// envTables encodes patterns as the kernel's capture table: the bitmap of
// their first two bytes, the patterns as little-endian words with masks of
// their length (struct env_pat), their classes and their number.
func envTables(patterns []envPattern) (first2, pats, class []byte, n uint32, err error) {
	if len(patterns) > envPats {
		return nil, nil, nil, 0, fmt.Errorf("environment capture: %d patterns, the kernel table holds %d", len(patterns), envPats)
	}
	first2 = make([]byte, envFirst2Len)
	pats = make([]byte, envPats*2*envPatLen)
	class = make([]byte, envPats)
	for i, pat := range patterns {
		p := pat.match
		if len(p) < 2 || len(p) > envPatLen || strings.IndexByte(p, 0) >= 0 {
			return nil, nil, nil, 0, fmt.Errorf("environment capture pattern %q: want 2..%d bytes without NUL", p, envPatLen)
		}
		k := uint16(p[0]) | uint16(p[1])<<8
		first2[k>>3] |= 1 << (k & 7)
		rec := pats[i*2*envPatLen:]
		copy(rec, p)
		for j := range len(p) {
			rec[envPatLen+j] = 0xff
		}
		class[i] = pat.class
	}
	return first2, pats, class, uint32(len(patterns)), nil
}

func envNameSecret(name string) bool {
	u := strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(u, w) {
			return true
		}
	}
	return false
}

// decodeEnv returns the variables of the kernel's kept entries: each a
// 16-bit header (its length, envCut when the kernel cut it) and the bytes
// of "NAME=VALUE". A name off the allowlist is skipped (the kernel's filter
// is the same list). A cut value is never reported, or hashed, as if it
// were whole: a cut secret keeps its name with an empty value, any other
// value is reported up to maxEnvValLen bytes like a whole one.
func decodeEnv(b []byte) ([]event.EnvVar, error) {
	var out []event.EnvVar
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, malformed("env entry header cut after %d byte", len(b))
		}
		h := le.Uint16(b)
		n, cut := int(h&^envCut), h&envCut != 0
		if n > len(b)-2 || n >= envEntryMax {
			return nil, malformed("env entry of %d bytes, %d left in the record", n, len(b)-2)
		}
		kv := b[2 : 2+n]
		b = b[2+n:]
		eq := bytes.IndexByte(kv, '=')
		if eq <= 0 || !event.EnvCaptured(unsafeString(kv[:eq])) {
			continue
		}
		name, val := string(kv[:eq]), kv[eq+1:]
		var v string
		switch {
		case envNameSecret(name) && cut:
			v = ""
		case envNameSecret(name):
			sum := sha256.Sum256(val)
			v = "sha256:" + hex.EncodeToString(sum[:])
		case len(val) > maxEnvValLen:
			v = string(val[:maxEnvValLen])
		default:
			v = string(val)
		}
		out = append(out, event.EnvVar{Name: name, Value: v})
	}
	return out, nil
}

// setEnvFilter loads the capture table into the exec program's constants.
func setEnvFilter(spec *ebpf.CollectionSpec) error {
	first2, pats, class, n, err := envTables(envPatterns())
	if err != nil {
		return err
	}
	for name, v := range map[string]any{"env_first2": first2, "env_pats": pats, "env_class": class, "env_npats": n} {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("BPF spec has no variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}
