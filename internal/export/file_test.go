package export

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
)

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: line is not JSON: %v: %s", path, err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func TestFileExporterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log", "events.jsonl")
	x, err := NewFileExporter(config.FileExport{Path: path, Format: config.FormatJSON, MaxBytes: 4096, Keep: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	const total = 60
	for i := 0; i < total; i++ {
		ev := padded(i)
		ev.Seq = uint64(i + 1)
		if err := x.Write(ev); err != nil {
			t.Fatal(err)
		}
	}
	st := x.Stats()
	if st.Written != total || st.Rotations == 0 {
		t.Fatalf("stats %+v; want %d written and rotations", st, total)
	}
	// Files never exceed max_bytes (each line is far below it), only keep
	// rotated files exist, and the newest lines are in order across them.
	var seqs []float64
	for _, p := range []string{path + ".2", path + ".1", path} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if fi.Size() > 4096 {
			t.Errorf("%s is %d bytes; want ≤ 4096", p, fi.Size())
		}
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("%s mode %o; want 640", p, fi.Mode().Perm())
		}
		for _, m := range readLines(t, p) {
			if m["kind"] != "exec" {
				t.Errorf("kind %v", m["kind"])
			}
			seqs = append(seqs, m["seq"].(float64))
		}
	}
	if _, err := os.Stat(path + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.3 exists; keep is 2", path)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("seqs not contiguous across rotated files: %v", seqs)
		}
	}
	if seqs[len(seqs)-1] != total {
		t.Errorf("last seq %v; want %d", seqs[len(seqs)-1], total)
	}
	// Reopening appends to the live file.
	x.Close()
	before := x.Stats().Bytes
	y, err := NewFileExporter(config.FileExport{Path: path, Format: config.FormatJSON, MaxBytes: 1 << 20, Keep: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if y.Stats().Bytes != before {
		t.Errorf("reopened size %d; want %d", y.Stats().Bytes, before)
	}
}

func TestFileExporterOCSFAndFilters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ocsf.jsonl")
	x, err := NewFileExporter(config.FileExport{Path: path, Format: config.FormatOCSF, MaxBytes: 1 << 20, Keep: 1},
		&FileOptions{OCSF: &OCSFOptions{Hostname: "n1"}, Filters: Filters{Deny: []Filter{{Kinds: []event.Kind{event.KindExec}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []*event.Event{
		finding("ESC-002", event.SevCritical, ctrA),
		openEvent(ctrA, "/models/m.safetensors"),
		padded(1), // denied by the filter
		{Kind: event.KindGPU, Time: time.Now(), GPU: &event.GPU{UUID: "GPU-1"}}, // no OCSF class
	} {
		if err := x.Write(ev); err != nil {
			t.Fatal(err)
		}
	}
	x.Close()
	st := x.Stats()
	if st.Written != 2 || st.Filtered != 1 || st.Skipped != 1 {
		t.Errorf("stats %+v; want 2 written, 1 filtered, 1 skipped", st)
	}
	lines := readLines(t, path)
	if len(lines) != 2 || lines[0]["class_uid"] != float64(2004) || lines[1]["class_uid"] != float64(1001) {
		t.Fatalf("lines %v", lines)
	}
	if err := x.Write(padded(2)); err != nil {
		t.Errorf("a filtered event after Close: %v", err)
	}
	if err := x.Write(finding("X", event.SevHigh, "")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestFileExporterRunFollowsRing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.jsonl")
	x, err := NewFileExporter(config.FileExport{Path: path, Format: config.FormatJSON, MaxBytes: 1 << 20, Keep: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ring := NewRing(64)
	ring.Publish(padded(0)) // before Run: not written (Run follows live events)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx, ring) }()
	waitFor(t, "exporter waiting", func() bool { return len(*ring.wakers.Load()) == 1 })
	for i := 1; i <= 10; i++ {
		ring.Publish(padded(i))
	}
	waitFor(t, "10 lines", func() bool { return x.Stats().Written == 10 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	lines := readLines(t, path)
	if len(lines) != 10 || lines[0]["seq"] != float64(2) || lines[9]["seq"] != float64(11) {
		t.Fatalf("got %d lines, first %v last %v", len(lines), lines[0]["seq"], lines[len(lines)-1]["seq"])
	}
}

func TestNewFileExporterErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		cfg  config.FileExport
		want string
	}{
		{config.FileExport{Format: "json", MaxBytes: 1 << 20, Keep: 1}, "path is empty"},
		{config.FileExport{Path: filepath.Join(dir, "a"), Format: "xml", MaxBytes: 1 << 20, Keep: 1}, "file.format"},
		{config.FileExport{Path: filepath.Join(dir, "a"), Format: "json", MaxBytes: 10, Keep: 1}, "file.max_bytes"},
		{config.FileExport{Path: "/proc/kestrel-cannot-create/x", Format: "json", MaxBytes: 1 << 20, Keep: 1}, "export"},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			_, err := NewFileExporter(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

// The heartbeat is a line of a native JSON file; an OCSF file, every line of
// which is OCSF, skips it like any status event.
func TestFileExporterHeartbeat(t *testing.T) {
	hb := &event.Event{Kind: event.KindStatus, Time: time.Now(), Status: &event.Status{Ready: true, Message: "heartbeat",
		Fields: map[string]string{event.FieldHeartbeat: "true"}}}
	for _, format := range []string{config.FormatJSON, config.FormatOCSF} {
		path := filepath.Join(t.TempDir(), "events.jsonl")
		x, err := NewFileExporter(config.FileExport{Path: path, Format: format, MaxBytes: 1 << 20, Keep: 1},
			&FileOptions{OCSF: &OCSFOptions{Hostname: "n1"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Write(hb); err != nil {
			t.Fatal(err)
		}
		x.Close()
		lines := readLines(t, path)
		switch format {
		case config.FormatJSON:
			if f, _ := lines[0]["fields"].(map[string]any); len(lines) != 1 || f[event.FieldHeartbeat] != "true" {
				t.Errorf("json: lines %v; want the heartbeat", lines)
			}
		default:
			if len(lines) != 0 || x.Stats().Skipped != 1 {
				t.Errorf("ocsf: lines %v, stats %+v; want it skipped", lines, x.Stats())
			}
		}
	}
}

// Run writes a batch at a time: a burst that rotates the file mid-batch
// still lands whole, in order, and no file grows past max_bytes.
func TestFileExporterRunBatchesAndRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "burst.jsonl")
	x, err := NewFileExporter(config.FileExport{Path: path, Format: config.FormatJSON, MaxBytes: 16 << 10, Keep: 50}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ring := NewRing(1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx, ring) }()
	waitFor(t, "exporter waiting", func() bool { return len(*ring.wakers.Load()) == 1 })
	const total = 600
	for i := range total {
		ring.Publish(padded(i))
	}
	waitFor(t, "every line written", func() bool { return x.Stats().Written == total })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	st := x.Stats()
	if st.Rotations == 0 || st.Errors != 0 || st.Lost != 0 {
		t.Fatalf("stats %+v; want rotations and no errors", st)
	}
	var seqs []float64
	for i := int(st.Rotations); i >= 0; i-- {
		p := path
		if i > 0 {
			p = fmt.Sprintf("%s.%d", path, i)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 16<<10 {
			t.Errorf("%s is %d bytes; want at most %d", p, fi.Size(), 16<<10)
		}
		for _, m := range readLines(t, p) {
			seqs = append(seqs, m["seq"].(float64))
		}
	}
	if len(seqs) != total {
		t.Fatalf("%d lines in the files; want %d", len(seqs), total)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("lines out of order at %d: %v then %v", i, seqs[i-1], seqs[i])
		}
	}
}
