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

// Gate sizes (bpf/open.bpf.h).
const (
	gatePairs = 65536
	gateBytes = 65536
	gateShift = 13 // 2^19 bits
	// gateMax is the most bytes of an entry a gate hashes.
	gateMax = 12
	// pairBytes is the size of the proc pair bitmap.
	pairBytes = 8192
)

// fnv1a32 is the gates' hash of b (FNV-1a, 32 bits).
func fnv1a32(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// gateBit is the bit of hash h in a gate (gate_hit in bpf/open.bpf.h).
func gateBit(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	return h >> gateShift
}

// gate is one table's gate: per pair of bytes, the length k to hash (0:
// no entry has the pair), and the bits of the entries' k-byte hashes.
type gate struct {
	klen [gatePairs]byte
	bits [gateBytes]byte
}

// gates returns the prefix and suffix gates of the filter tables (see
// bpf/open.bpf.h): per pair, k is the shortest length of the entries with
// that pair, capped at gateMax, and each entry sets the bit of the hash of
// its first k bytes. Suffix entries are stored reversed already, so their
// pair is their bytes 1 and 0. A prefix shorter than three bytes has no
// pair: it gives every pair its length.
func gates(prefix, suffix []filterEntry) (pg, sg gate) {
	build := func(g *gate, entries []filterEntry, pair func([]byte) (uint16, bool)) {
		k := map[uint16]int{}
		var all []int // lengths of entries that fit every pair
		for _, e := range entries {
			n := min(len(e.data), gateMax)
			if p, ok := pair(e.data); ok {
				if v, seen := k[p]; !seen || n < v {
					k[p] = n
				}
			} else {
				all = append(all, n)
			}
		}
		for p := range g.klen {
			v, ok := k[uint16(p)]
			for _, n := range all {
				if !ok || n < v {
					v, ok = n, true
				}
			}
			if ok {
				g.klen[p] = byte(v)
			}
		}
		for _, e := range entries {
			var ks []int
			if p, ok := pair(e.data); ok {
				ks = []int{int(g.klen[p])}
			} else {
				ks = all // a short prefix is hashed at every length a pair may use
			}
			for _, n := range ks {
				if n <= len(e.data) {
					bit := gateBit(fnv1a32(e.data[:n]))
					g.bits[bit>>3] |= 1 << (bit & 7)
				}
			}
		}
	}
	build(&pg, prefix, func(d []byte) (uint16, bool) {
		if len(d) < 3 {
			return 0, false
		}
		return uint16(d[1])<<8 | uint16(d[2]), true
	})
	build(&sg, suffix, func(d []byte) (uint16, bool) { return uint16(d[1])<<8 | uint16(d[0]), true })
	return pg, sg
}

// procPairs returns the pair bitmap of the proc entries: their first two
// bytes (every pair for a one-byte entry).
func procPairs(proc []filterEntry) (g [pairBytes]byte) {
	for _, e := range proc {
		if len(e.data) < 2 {
			for i := range g {
				g[i] = 0xff
			}
			break
		}
		bit := uint(e.data[0])<<8 | uint(e.data[1])
		g[bit>>3] |= 1 << (bit & 7)
	}
	return g
}

// setGates writes the gates for cfg into spec's constants.
func setGates(spec *ebpf.CollectionSpec, cfg config.CaptureConfig) error {
	prefix, suffix, proc, err := filterTables(cfg)
	if err != nil {
		return err
	}
	pg, sg := gates(prefix, suffix)
	for name, v := range map[string]any{
		"prefix_gate": pg.bits, "suffix_gate": sg.bits, "prefix_klen": pg.klen, "suffix_klen": sg.klen,
		"proc_pairs": procPairs(proc),
	} {
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
