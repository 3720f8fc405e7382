package runtime

// Records repeat: the same executables, working directories, command lines
// and environments come back with every exec of a busy host, the same
// paths with every open. The decoder keeps what it decoded from such bytes
// and hands out the same immutable value again, so that a repeat costs a
// map lookup instead of an allocation per string.

// Bounds of each intern table: it is emptied when either is reached, so a
// stream of distinct values costs what it did without the table, and the
// memory held stays bounded.
const (
	maxInterned      = 4096
	maxInternedBytes = 1 << 20
)

// interned maps record bytes to the value decoded from them. The zero value
// is ready to use. It is not safe for concurrent use: the reader goroutine
// owns the decoder.
type interned[V any] struct {
	m     map[string]V
	bytes int
}

// get returns the value decoded from key, calling decode only for bytes not
// seen since the table was last emptied. decode must not keep key, and the
// value it returns must never be modified: it is shared.
func (t *interned[V]) get(key []byte, decode func([]byte) (V, error)) (V, error) {
	if v, ok := t.m[string(key)]; ok { // no allocation: a lookup with string(bytes)
		return v, nil
	}
	v, err := decode(key)
	if err != nil {
		return v, err
	}
	if t.m == nil || len(t.m) >= maxInterned || t.bytes+len(key) > maxInternedBytes {
		t.m = make(map[string]V)
		t.bytes = 0
	}
	t.m[string(key)] = v
	t.bytes += len(key)
	return v, nil
}

// stringTable is an intern table of plain strings: the key is the value, one
// allocation per new string. The zero value is ready to use.
type stringTable struct {
	m     map[string]string
	bytes int
}

// get returns b as a string, the same one each time for the same bytes.
func (t *stringTable) get(b []byte) string {
	if s, ok := t.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if t.m == nil || len(t.m) >= maxInterned || t.bytes+len(s) > maxInternedBytes {
		t.m = make(map[string]string)
		t.bytes = 0
	}
	t.m[s] = s
	t.bytes += len(s)
	return s
}
