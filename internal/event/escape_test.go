package event

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"unicode/utf8"
)

func TestEscapeText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/models/llama/model.safetensors", "/models/llama/model.safetensors"},
		{"", ""},
		{"a\nb", `a\nb`},
		{"\r\t\x00\x7f", `\r\t\x00\x7f`},
		{"\x1b[2J", `\x1b[2J`},
		{"\u009b2J", `\u009b2J`},                       // C1 CSI
		{"evil\u202egpj.sh", `evil\u202egpj.sh`},       // right-to-left override
		{"\u2066x\u2069", `\u2066x\u2069`},             // isolates
		{"line\u2028sep\u2029", `line\u2028sep\u2029`}, // line and paragraph separators
		{"caf\xc3\xa9 \u6a21\u578b", "caf\u00e9 \u6a21\u578b"},
		{"bad\xff\xfeutf8", `bad\xff\xfeutf8`},
		{"trunc\xe6\xa8", `trunc\xe6\xa8`},
		{`back\slash`, `back\\slash`},
		{"\ufffd", "\ufffd"}, // a real U+FFFD is text
	} {
		if got := EscapeText(tt.in); got != tt.want {
			t.Errorf("EscapeText(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { EscapeText("/usr/lib/python3/site-packages/torch/__init__.py") }); n != 0 {
		t.Errorf("EscapeText of a plain path allocates %v times; want 0", n)
	}
}

// terminalUnsafe returns the first rune of a JSON text that a terminal would
// act on: a raw control or another non-printable rune, or invalid UTF-8.
func terminalUnsafe(b []byte) (rune, bool) {
	if !utf8.Valid(b) {
		return utf8.RuneError, true
	}
	for _, r := range string(b) {
		if r < 0x20 || r == 0x7f || !strconv.IsPrint(r) {
			return r, true
		}
	}
	return 0, false
}

var terminalCases = []string{
	"", "/models/llama/model.safetensors", "caf\u00e9 \u6a21\u578b \U0001F600", "\ufffd",
	"\u0085next line", "\u009b2J csi", "evil\u202egpj.sh", "\u2066isolate\u2069", "line\u2028para\u2029",
	"zero\u200bwidth", "nb\u00a0sp", "tag\U000E0041", "bom\ufeff", "bad \xff\xfe utf8", "ctl \x1b[2J\n\x7f",
}

// encoding/json leaves C1 controls, bidi overrides and format characters raw;
// TerminalSafeJSON escapes every one, and the JSON still decodes to the same
// value.
func TestTerminalSafeJSON(t *testing.T) {
	raw := 0
	for _, s := range terminalCases {
		std, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, bad := terminalUnsafe(std); bad {
			raw++
		}
		got := TerminalSafeJSON(std)
		if r, bad := terminalUnsafe(got); bad {
			t.Errorf("%q: %s still holds %U raw", s, got, r)
		}
		var back, want string
		json.Unmarshal(std, &want)
		if err := json.Unmarshal(got, &back); err != nil || back != want {
			t.Errorf("%q: %s decodes to %q, %v; want %q", s, got, back, err, want)
		}
		if bytes.Equal(got, std) != (&got[0] == &std[0]) {
			t.Errorf("%q: an unchanged text must be returned as is", s)
		}
	}
	if raw < 8 {
		t.Errorf("encoding/json left only %d of the cases raw: the cases no longer test anything", raw)
	}
	if got := TerminalSafeJSON([]byte(`{"p":"evil` + "\u202e" + `gpj.sh","t":"` + "\U000E0041" + `"}`)); string(got) != `{"p":"evil\u202egpj.sh","t":"\udb40\udc41"}` {
		t.Errorf("got %s; want the \\u notation, a surrogate pair above U+FFFF", got)
	}
	plain := []byte(`{"kind":"open","file":{"path":"/models/caf` + "\u00e9" + `.safetensors"}}`)
	if n := testing.AllocsPerRun(100, func() { TerminalSafeJSON(plain) }); n != 0 {
		t.Errorf("TerminalSafeJSON of printable text allocates %v times; want 0", n)
	}
}

func FuzzTerminalSafeJSON(f *testing.F) {
	for _, s := range terminalCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		std, _ := json.Marshal(s)
		got := TerminalSafeJSON(std)
		if r, bad := terminalUnsafe(got); bad {
			t.Fatalf("%q: %s holds %U raw", s, got, r)
		}
		var back, want string
		json.Unmarshal(std, &want)
		if err := json.Unmarshal(got, &back); err != nil || back != want {
			t.Fatalf("%q: %s decodes to %q, %v; want %q", s, got, back, err, want)
		}
	})
}

// The event's JSON contract (--tail -o json, the file exporter, OTLP's
// native body) is terminal-safe, with the exact bytes beside the text.
func TestMarshalJSONIsTerminalSafe(t *testing.T) {
	path := "/tmp/evil\u202egpj.sh\u009b2J\xff"
	ev := &Event{Kind: KindOpen, Process: &Process{PID: 1, Comm: "sh\u0085", Exe: "/bin/sh", Args: []string{"sh", "-c", "\u2066x"}},
		File: &File{Path: path, RawPath: path}}
	b, err := ev.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if r, bad := terminalUnsafe(b); bad {
		t.Fatalf("%s holds %U raw", b, r)
	}
	var back struct {
		Process struct{ Comm string } `json:"process"`
		File    struct {
			Path    string `json:"path"`
			PathB64 []byte `json:"path_b64"`
		} `json:"file"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Process.Comm != "sh\u0085" || back.File.Path != "/tmp/evil\u202egpj.sh\u009b2J\ufffd" || string(back.File.PathB64) != path {
		t.Errorf("decoded comm %q, path %q, path_b64 %q; want the same values as before escaping", back.Process.Comm, back.File.Path, back.File.PathB64)
	}
}
