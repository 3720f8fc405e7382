package gpu

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func TestParseReplayGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/replay/ok-*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			devs, _, err := parseReplay(data)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got, err := json.MarshalIndent(devs, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(f, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestParseReplayErrors(t *testing.T) {
	want := map[string]string{
		"bad-array.json":           "decode: json: cannot unmarshal array",
		"bad-duplicate-index.json": "gpus[1]: duplicate index 0",
		"bad-duplicate.json":       "processes[1]: duplicate gpu 0 pid 5",
		"bad-negative-bytes.json":  "decode:",
		"bad-negative-gpu.json":    "processes[0]: gpu -1 is outside 0..1023",
		"bad-no-gpu.json":          `processes[0]: missing "gpu"`,
		"bad-no-pid.json":          `processes[0]: missing or zero "pid"`,
		"bad-no-processes.json":    `missing "processes"`,
		"bad-trailing.json":        "trailing data",
		"bad-truncated.json":       "decode: unexpected EOF",
		"bad-undeclared-gpu.json":  `processes[0]: gpu 1 is not in "gpus"`,
		"bad-unknown-field.json":   `unknown field "procs"`,
	}
	files, err := filepath.Glob("testdata/replay/bad-*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("got %d bad fixtures; the table covers %d", len(files), len(want))
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("fixture %s has no expected error in the table", name)
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = parseReplay(data)
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Fatalf("got %v; want an error containing %q", err, w)
			}
		})
	}
}

func TestSyntheticUUID(t *testing.T) {
	for _, tt := range []struct {
		i    int
		want string
	}{
		{0, "GPU-00000000-0000-0000-0000-000000000000"},
		{7, "GPU-00000000-0000-0000-0000-000000000007"},
		{26, "GPU-00000000-0000-0000-0000-00000000001a"},
	} {
		if got := SyntheticUUID(tt.i); got != tt.want {
			t.Errorf("SyntheticUUID(%d): got %q; want %q", tt.i, got, tt.want)
		}
	}
}

// writeAtomic does what the harness does: write aside, rename over.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestReplaySampler(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gpu.json")
	cfg := testConfig()
	cfg.Source = config.GPUSourceReplay
	cfg.ReplayFile = path
	s, err := NewSampler(cfg, nil)
	if err != nil {
		t.Fatalf("NewSampler: %v", err)
	}
	if got, want := s.State(), "replay "+path; got != want {
		t.Errorf("State: got %q; want %q", got, want)
	}

	poll := func() ([]string, error) {
		var got []string
		err := s.Poll(context.Background(), func(e *event.Event) {
			g := e.GPU
			got = append(got, fmt.Sprintf("%s %d %s %d %d", g.Change, g.Index, g.UUID, g.PID, g.UsedBytes))
		})
		return got, err
	}
	u0 := SyntheticUUID(0)

	// The harness has not written the file yet.
	if _, err := poll(); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: got %v; want a read error", err)
	}

	steps := []struct {
		name    string
		content string
		want    []string
		wantErr string
	}{
		{"appear", `{"processes": [{"gpu": 0, "pid": 1234, "used_bytes": 1073741824}]}`,
			[]string{"start 0 " + u0 + " 1234 1073741824"}, ""},
		{"grow", `{"processes": [{"gpu": 0, "pid": 1234, "used_bytes": 2147483648}]}`,
			[]string{"update 0 " + u0 + " 1234 2147483648"}, ""},
		{"malformed keeps the state", `{"processes": [{"gpu": 0, "pid": 1234,`, nil, "decode"},
		{"unchanged after recovery", `{"processes": [{"gpu": 0, "pid": 1234, "used_bytes": 2147483648}]}`, nil, ""},
		{"named GPUs", `{"gpus": [{"index": 0, "uuid": "GPU-aaaa"}], "processes": [{"gpu": 0, "pid": 1234, "used_bytes": 2147483648}]}`,
			// A new UUID is a new device: the old owner stops, the new one starts.
			[]string{"start 0 GPU-aaaa 1234 2147483648", "stop 0 " + u0 + " 1234 0"}, ""},
		{"disappear", `{"processes": []}`, []string{"stop 0 GPU-aaaa 1234 0"}, ""},
	}
	for _, st := range steps {
		writeAtomic(t, path, st.content)
		got, err := poll()
		if st.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), st.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("%s: got %v; want an error naming the file and containing %q", st.name, err, st.wantErr)
			}
			if len(s.Snapshot().Devices) != 1 || len(s.Snapshot().Devices[0].Owners) != 1 {
				t.Fatalf("%s: snapshot %+v; want the previous state kept", st.name, s.Snapshot())
			}
		} else if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if !equalStrings(got, st.want) {
			t.Errorf("%s: got %q; want %q", st.name, got, st.want)
		}
	}
	if st := s.Stats(); st.Errors != 2 {
		t.Errorf("Stats.Errors: got %d; want 2 (missing file, malformed file)", st.Errors)
	}
}

func TestReplayFileTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gpu.json")
	big := `{"processes": [], "pad": "` + strings.Repeat("x", maxReplayBytes) + `"}`
	if err := os.WriteFile(path, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := newReplaySource(path).sample(context.Background())
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v; want a size error", err)
	}
}

func FuzzParseReplay(f *testing.F) {
	files, _ := filepath.Glob("testdata/replay/*.json")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		devs, _, err := parseReplay(data)
		if err != nil {
			return
		}
		seen := map[deviceKey]bool{}
		for _, d := range devs {
			if seen[d.key()] {
				t.Fatalf("duplicate device %v", d.key())
			}
			seen[d.key()] = true
			if d.UUID == "" {
				t.Fatal("device without UUID")
			}
		}
	})
}

func TestStaticUUIDsWithReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gpu.json")
	cfg := testConfig()
	cfg.Source = config.GPUSourceReplay
	cfg.ReplayFile = path
	cfg.StaticAlloc = map[string][]int{
		"^/simctr-infer-":                       {0},
		"^/simctr-(sidecar|nogpu|build|agent)-": {},
		"^/simctr-multi-":                       {0, 5},
	}
	s, err := NewSampler(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAssigner(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(step, cgroup string, want []string, wantOK bool) {
		t.Helper()
		got, ok := StaticUUIDs(a, s, cgroup)
		if ok != wantOK || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: StaticUUIDs(%q): got %q, %v; want %q, %v", step, cgroup, got, ok, want, wantOK)
		}
	}

	// No GPU owns anything yet: without a "gpus" list, UUIDs are synthetic.
	writeAtomic(t, path, `{"processes": []}`)
	if err := s.Poll(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	check("synthetic", "/simctr-infer-7f3a", []string{SyntheticUUID(0)}, true)
	check("synthetic", "/simctr-nogpu-1", []string{}, true)
	check("synthetic", "/system.slice/cron.service", nil, false)

	// Named GPUs: UUIDs come from the file; unknown indexes are left out.
	writeAtomic(t, path, `{"gpus": [{"index": 0, "uuid": "GPU-aaaa"}], "processes": []}`)
	if err := s.Poll(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	check("named", "/simctr-infer-7f3a", []string{"GPU-aaaa"}, true)
	check("named", "/simctr-multi-1", []string{"GPU-aaaa"}, true)
}

func TestSamplerLogsFailuresOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gpu.json")
	cfg := testConfig()
	cfg.Source = config.GPUSourceReplay
	cfg.ReplayFile = path
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	s, err := NewSampler(cfg, &Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	writeAtomic(t, path, `{"processes": [`)
	for range 3 {
		s.poll(ctx, nil)
	}
	writeAtomic(t, path, `{"processes": []}`)
	s.poll(ctx, nil)
	s.poll(ctx, nil)

	out := buf.String()
	if n := strings.Count(out, "GPU ownership sample failed"); n != 1 {
		t.Errorf("got %d failure lines for 3 identical failures; want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "recovered"); n != 1 {
		t.Errorf("got %d recovery lines; want 1:\n%s", n, out)
	}
	if st := s.Stats(); st.Errors != 3 || st.Samples != 2 {
		t.Errorf("Stats: got %+v; want 3 errors, 2 samples", st)
	}
}
