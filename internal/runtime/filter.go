package runtime

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/kestrel-sec/kestrel/internal/config"
)

// Sizes of the LPM trie keys in bpf/open.bpf.h (data bytes after the u32
// prefix length).
const (
	prefixKeyData = 64
	suffixKeyData = 32
	procKeyData   = 16
	// suffixTail is the shortest suffix the kernel matches.
	suffixTail = 3
)

// filterEntry is one key of an LPM trie and its value.
type filterEntry struct {
	data  []byte
	value uint32
}

// proc_trie values (PROC_F_* in bpf/open.bpf.h).
const (
	procFSelf = 1
	procFPID  = 2
)

// lpmKey encodes e as a struct {u32 plen; char data[size]} key.
func (e filterEntry) lpmKey(size int) []byte {
	k := make([]byte, 4+size)
	le.PutUint32(k, uint32(len(e.data)*8))
	copy(k[4:], e.data)
	return k
}

// filterTables turns the capture config into the kernel's three tables.
// Suffixes are stored reversed and lower-cased; a name becomes the suffix
// "/name". It fails on entries the kernel could not match.
func filterTables(cfg config.CaptureConfig) (prefix, suffix, proc []filterEntry, err error) {
	for _, p := range cfg.WatchPrefixes {
		if len(p) == 0 || len(p) > prefixKeyData || p[0] != '/' {
			return nil, nil, nil, fmt.Errorf("watch prefix %q: want an absolute path of 1..%d bytes", p, prefixKeyData)
		}
		prefix = append(prefix, filterEntry{[]byte(p), 1})
	}
	addSuffix := func(s string) error {
		if len(s) < suffixTail || len(s) > suffixKeyData {
			return fmt.Errorf("watch suffix %q: want %d..%d bytes", s, suffixTail, suffixKeyData)
		}
		s = strings.ToLower(s)
		r := make([]byte, len(s))
		for i := range len(s) {
			r[i] = s[len(s)-1-i]
		}
		suffix = append(suffix, filterEntry{r, 1})
		return nil
	}
	for _, s := range cfg.WatchSuffixes {
		if err := addSuffix(s); err != nil {
			return nil, nil, nil, err
		}
	}
	for _, n := range cfg.WatchNames {
		if n == "" || strings.Contains(n, "/") {
			return nil, nil, nil, fmt.Errorf("watch name %q: want a basename", n)
		}
		if err := addSuffix("/" + n); err != nil {
			return nil, nil, nil, err
		}
	}
	procFlags := map[string]uint32{}
	var procOrder []string
	for _, l := range []struct {
		list []string
		flag uint32
	}{{cfg.WatchProcEntries, procFSelf | procFPID}, {cfg.WatchProcPidEntries, procFPID}} {
		for _, p := range l.list {
			if len(p) == 0 || len(p) > procKeyData {
				return nil, nil, nil, fmt.Errorf("watch proc entry %q: want 1..%d bytes", p, procKeyData)
			}
			if _, ok := procFlags[p]; !ok {
				procOrder = append(procOrder, p)
			}
			procFlags[p] |= l.flag
		}
	}
	for _, p := range procOrder {
		proc = append(proc, filterEntry{[]byte(p), procFlags[p]})
	}
	return prefix, suffix, proc, nil
}

// gateBytes is the size of each two-byte gate bitmap (bpf/open.bpf.h).
const gateBytes = 8192

// gates returns the prefix and suffix gate bitmaps for the filter tables:
// bit a<<8|b is set for every prefix "/ab..." and every reversed suffix
// "ba..." (that is, a suffix ending in "ab").
func gates(prefix, suffix []filterEntry) (pg, sg [gateBytes]byte) {
	set := func(g *[gateBytes]byte, a, b byte) {
		bit := uint(a)<<8 | uint(b)
		g[bit>>3] |= 1 << (bit & 7)
	}
	for _, e := range prefix {
		if len(e.data) < 3 {
			for i := range pg {
				pg[i] = 0xff // too short to gate on: every path goes to the trie
			}
			break
		}
		set(&pg, e.data[1], e.data[2])
	}
	for _, e := range suffix {
		set(&sg, e.data[1], e.data[0])
	}
	return pg, sg
}

// setGates writes the gate bitmaps for cfg into spec's constants.
func setGates(spec *ebpf.CollectionSpec, cfg config.CaptureConfig) error {
	prefix, suffix, _, err := filterTables(cfg)
	if err != nil {
		return err
	}
	pg, sg := gates(prefix, suffix)
	for name, v := range map[string][gateBytes]byte{"prefix_gate": pg, "suffix_gate": sg} {
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

// fillFilters writes the open filter tables into the loaded maps.
func fillFilters(coll *ebpf.Collection, cfg config.CaptureConfig) error {
	prefix, suffix, proc, err := filterTables(cfg)
	if err != nil {
		return err
	}
	for _, t := range []struct {
		name    string
		size    int
		entries []filterEntry
	}{
		{"prefix_trie", prefixKeyData, prefix},
		{"suffix_trie", suffixKeyData, suffix},
		{"proc_trie", procKeyData, proc},
	} {
		m := coll.Maps[t.name]
		if m == nil {
			return fmt.Errorf("fill open filter: no map %s", t.name)
		}
		if len(t.entries) > int(m.MaxEntries()) {
			return fmt.Errorf("fill open filter %s: %d entries, map holds %d", t.name, len(t.entries), m.MaxEntries())
		}
		for _, e := range t.entries {
			if err := m.Put(e.lpmKey(t.size), e.value); err != nil {
				return fmt.Errorf("fill open filter %s with %q: %w", t.name, e.data, err)
			}
		}
	}
	return nil
}
