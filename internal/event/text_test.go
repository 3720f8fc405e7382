package event

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestValidText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"/models/llama.gguf", "/models/llama.gguf"},
		{"/tmp/\xff", "/tmp/\uFFFD"},
		{"a\xc3b", "a\uFFFDb"},                 // truncated two-byte sequence
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // surrogate half: three invalid bytes
		{"é\xffé", "é\uFFFDé"},
	} {
		got, ok := ValidText(tt.in)
		if got != tt.want || ok != (tt.in == tt.want) {
			t.Errorf("ValidText(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.in == tt.want)
		}
		// The JSON encoder makes the same text of it: the readable field
		// of a line is what ValidText says.
		b, _ := json.Marshal(tt.in)
		var back string
		json.Unmarshal(b, &back)
		if back != tt.want {
			t.Errorf("json of %q reads back %q; ValidText says %q", tt.in, back, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { ValidText("/models/llama/weights-00001.safetensors") }); n != 0 {
		t.Errorf("ValidText of a valid name allocates %v times; want 0", n)
	}
}

// Hostile names: JSON carries the exact bytes of a path, argument or exe
// that is not valid UTF-8 beside the readable form (issue 13), and nothing
// extra for names that are valid.
func TestJSONKeepsExactBytesOfInvalidNames(t *testing.T) {
	evil := "/models/\xff\xfeweights\n\x1b[2J.safetensors"
	arg := "--path=\xc3"
	ev := &Event{Kind: KindFinding, Time: time.Unix(1, 0),
		Process: &Process{PID: 1, Comm: "py\xff", Exe: "/usr/bin/python3", Args: []string{"python3", arg},
			Env:       []EnvVar{{Name: "LD_PRELOAD", Value: "/tmp/\xfflib.so"}},
			Ancestors: []Ancestor{{PID: 2, Exe: "/bin/\xffsh"}}, Truncated: TruncArgs},
		Container: &Container{ID: "c1", CgroupPath: "/kubepods/\xff"},
		Finding: &Finding{Rule: "EXF-001", Severity: SevHigh, Explanation: "read " + evil, Attrs: map[string]string{"model": evil, "ok": "fine"},
			Evidence: []*Event{{Kind: KindOpen, Process: &Process{PID: 1}, File: &File{Path: evil, RawPath: "w\xff", Size: -1, Truncated: TruncPath}}}},
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(b) {
		t.Fatalf("line is not valid UTF-8: %q", b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	dec := func(path string) string {
		t.Helper()
		v, ok := lookupPath(m, path)
		if !ok {
			t.Fatalf("no %s in %s", path, b)
		}
		raw, err := base64.StdEncoding.DecodeString(v.(string))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return string(raw)
	}
	for path, want := range map[string]string{
		"process.comm_b64": "py\xff", "process.env.0.value_b64": "/tmp/\xfflib.so", "process.ancestors.0.exe_b64": "/bin/\xffsh",
		"container.cgroup_path_b64": "/kubepods/\xff", "explanation_b64": "read " + evil, "attrs_b64.model": evil,
		"evidence.0.file.path_b64": evil, "evidence.0.file.raw_path_b64": "w\xff",
	} {
		if got := dec(path); got != want {
			t.Errorf("%s decodes to %q; want %q", path, got, want)
		}
	}
	args, _ := lookupPath(m, "process.args_b64")
	if a, ok := args.([]any); !ok || len(a) != 2 {
		t.Fatalf("process.args_b64 = %v; want both arguments", args)
	}
	if got := dec("process.args_b64.1"); got != arg {
		t.Errorf("args_b64[1] = %q; want %q", got, arg)
	}
	for _, absent := range []string{"process.exe_b64", "process.cwd_b64", "attrs_b64.ok", "process.env.0.name_b64", "container.id_b64"} {
		if v, ok := lookupPath(m, absent); ok {
			t.Errorf("%s = %v for a valid name; want it absent", absent, v)
		}
	}
	if tr, _ := lookupPath(m, "process.truncated"); !slices.Equal(toStrings(tr), []string{"args"}) {
		t.Errorf("process.truncated = %v; want [args]", tr)
	}
	if tr, _ := lookupPath(m, "evidence.0.file.truncated"); !slices.Equal(toStrings(tr), []string{"path"}) {
		t.Errorf("file.truncated = %v; want [path]", tr)
	}

	var fields []string
	ev.RawStrings(func(f, raw string) {
		if utf8.ValidString(raw) {
			t.Errorf("RawStrings gave valid %s", f)
		}
		fields = append(fields, f)
	})
	want := []string{"process.comm", "process.args[1]", "process.env[0].value", "process.ancestors[0].exe",
		"container.cgroup_path", "explanation", "attrs.model", "evidence[0].file.path", "evidence[0].file.raw_path"}
	if !slices.Equal(fields, want) {
		t.Errorf("RawStrings fields = %v; want %v", fields, want)
	}
}

func TestTruncationNames(t *testing.T) {
	all := TruncArgs | TruncEnv | TruncExe | TruncCwd | TruncPath | TruncRawPath
	names := all.Names()
	if strings.Join(names, ",") != "args,env,exe,cwd,path,raw_path" {
		t.Errorf("Names = %v", names)
	}
	if got := ParseTruncation(names); got != all {
		t.Errorf("ParseTruncation(Names) = %b; want %b", got, all)
	}
	if Truncation(0).Names() != nil {
		t.Error("no truncation has names")
	}
	if n := Truncation(1 << 7).Names(); len(n) != 1 || !strings.HasPrefix(n[0], "unknown_") {
		t.Errorf("unknown bit names = %v", n)
	}
}

func lookupPath(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[part]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i := 0
			for _, ch := range part {
				i = i*10 + int(ch-'0')
			}
			if i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func toStrings(v any) []string {
	a, _ := v.([]any)
	var out []string
	for _, x := range a {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// FuzzJSONExactBytes: whatever bytes a name holds, the JSON line is valid
// UTF-8 JSON and the name's exact bytes come back from it.
func FuzzJSONExactBytes(f *testing.F) {
	f.Add("/models/llama.gguf", "python3")
	f.Add("/tmp/\xff\xfe\n\x1b[2J", "\xc3")
	f.Add("\xed\xa0\x80", "\u202e")
	f.Fuzz(func(t *testing.T, path, arg string) {
		ev := &Event{Kind: KindOpen, Process: &Process{PID: 1, Exe: path, Args: []string{arg, path}},
			File: &File{Path: path, RawPath: arg, Size: -1}}
		b, err := json.Marshal(ev)
		if err != nil || !utf8.Valid(b) || !json.Valid(b) {
			t.Fatalf("line %q: err %v, valid UTF-8 %v", b, err, utf8.Valid(b))
		}
		var m struct {
			Process struct {
				Exe     string   `json:"exe"`
				ExeB64  []byte   `json:"exe_b64"`
				Args    []string `json:"args"`
				ArgsB64 [][]byte `json:"args_b64"`
			} `json:"process"`
			File struct {
				Path    string `json:"path"`
				PathB64 []byte `json:"path_b64"`
			} `json:"file"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		exact := func(text string, raw []byte) string {
			if raw != nil {
				return string(raw)
			}
			return text
		}
		if got := exact(m.File.Path, m.File.PathB64); got != path {
			t.Fatalf("file path %q back from %s; want %q", got, b, path)
		}
		if got := exact(m.Process.Exe, m.Process.ExeB64); got != path {
			t.Fatalf("exe %q; want %q", got, path)
		}
		if m.Process.ArgsB64 != nil {
			if string(m.Process.ArgsB64[0]) != arg || string(m.Process.ArgsB64[1]) != path {
				t.Fatalf("args_b64 %q; want %q", m.Process.ArgsB64, []string{arg, path})
			}
		} else if m.Process.Args[0] != arg || m.Process.Args[1] != path {
			t.Fatalf("args %q; want %q", m.Process.Args, []string{arg, path})
		}
	})
}
