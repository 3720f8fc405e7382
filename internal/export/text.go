package export

import (
	"github.com/kestrel-sec/kestrel/internal/event"
)

// text splits s into its wire form: valid UTF-8 by construction (proto3
// strings must be, or the whole stream fails), and the exact bytes beside it
// when they differ, so that evidence still names the real file.
func text(s string) (string, []byte) {
	if t, ok := event.ValidText(s); !ok {
		return t, []byte(s)
	}
	return s, nil
}

// vt is text for fields without a bytes twin (prose, names from the CRI or
// NVML): valid UTF-8, exact whenever it was valid.
func vt(s string) string {
	t, _ := event.ValidText(s)
	return t
}

// fromText is the inverse of text.
func fromText(s string, raw []byte) string {
	if len(raw) > 0 {
		return string(raw)
	}
	return s
}

// vts is vt over a list; the list itself when every element is valid.
func vts(ss []string) []string {
	out, _ := event.ValidTexts(ss)
	return out
}

// vmap is vt over a map's keys and values; the map itself when all are valid.
func vmap(m map[string]string) map[string]string {
	for k, v := range m {
		if _, ok := event.ValidText(k); !ok {
			return vmapCopy(m)
		}
		if _, ok := event.ValidText(v); !ok {
			return vmapCopy(m)
		}
	}
	return m
}

func vmapCopy(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[vt(k)] = vt(v)
	}
	return out
}
