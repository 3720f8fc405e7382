package export

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/event"
)

// stdJSONString is what encoding/json writes for s without HTML escaping.
func stdJSONString(t testing.TB, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

var jsonStringCases = []string{
	"", "plain", "/models/llama/model.safetensors", `quote " and \ backslash`, "sh -c 'a > b && c < d'",
	"tab\there\nnew\rline\b\f", "\x00\x01\x1f\x7f", "caf\u00e9 \u4e2d\u6587 \U0001F600", "line\u2028para\u2029",
	"bad \xff\xfe utf8 \xc3", "\xed\xa0\x80 surrogate", "trailing \\", "del\x7f in a long plain run",
	"c1 \u0085\u009b2J", "evil\u202egpj.sh \u2066x\u2069", "zero\u200bwidth nb\u00a0sp tag\U000E0041",
}

// The OCSF encoder's strings are what encoding/json writes, made
// terminal-safe as event.TerminalSafeJSON makes every other JSON output.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonStringCases {
		if got, want := appendJSONString(nil, s), event.TerminalSafeJSON(stdJSONString(t, s)); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s; want %s", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendJSONString(nil, s)
		if want := event.TerminalSafeJSON(stdJSONString(t, s)); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s; want %s", s, got, want)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q: %s does not decode: %v", s, got, err)
		}
	})
}

func TestIsUUID(t *testing.T) {
	for s, want := range map[string]bool{
		"0f6a1c2e-5b3d-4e7f-9a10-7c2b3d4e5f60": true, "0F6A1C2E-5B3D-4E7F-9A10-7C2B3D4E5F60": true,
		"0f6a1c2e5b3d4e7f9a107c2b3d4e5f60":     false, // a static pod's hash
		"0f6a1c2e-5b3d-4e7f-9a10-7c2b3d4e5f6g": false, "0f6a1c2e-5b3d-4e7f-9a10_7c2b3d4e5f60": false, "": false,
	} {
		if got := isUUID(s); got != want {
			t.Errorf("isUUID(%q) = %v; want %v", s, got, want)
		}
	}
}
