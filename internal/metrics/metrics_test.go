package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// full is a snapshot with every field set, so every series is exported.
func full() Snapshot {
	return Snapshot{
		Events:      map[string]uint64{"exec": 10, "open": 20, "finding": 2},
		Lost:        map[string]uint64{"kernel_ringbuf": 3, "queue": 0},
		Findings:    []FindingCount{{Rule: "ESC-002", Severity: "critical", Count: 1}, {Rule: "EXE-001", Severity: "low", Count: 1}},
		QueueLength: 5, QueueCapacity: 65536,
		RingEvents: 30, RingCapacity: 65536, RingPublished: 30,
		KernelRingUsed: 4096, KernelRingSize: 8 << 20,
		Subscribers: 2, SubscriberMaxLag: 7,
		NVMLState: "ok", GPUSamples: 9, GPUSampleErrors: 1,
		Programs: []ProgramStat{{Name: "kestrel_exec", RunTime: 1500 * time.Microsecond, RunCount: 66, RecursionMisses: 0}},
		BPFStats: true,
		Maps:     []MapMemory{{Name: "events", Bytes: 8 << 20}},
		Exports:  []ExportCount{{Exporter: "otlp", Result: "sent", Count: 28}},
		Values:   map[string]uint64{"proc_table_size": 90},
	}
}

func TestCollectorExportsTheSnapshot(t *testing.T) {
	s := full()
	c := NewCollector(func(out *Snapshot) { *out = s }, "v1.2.3")
	want := `
# HELP kestrel_events_lost_total Events lost, by source (kernel ring buffer, decoder, pipeline queue, slow subscriber, exporters...). Every loss the sensor counts is here.
# TYPE kestrel_events_lost_total counter
kestrel_events_lost_total{source="kernel_ringbuf"} 3
kestrel_events_lost_total{source="queue"} 0
# HELP kestrel_findings_total Findings emitted, by rule and severity.
# TYPE kestrel_findings_total counter
kestrel_findings_total{rule="ESC-002",severity="critical"} 1
kestrel_findings_total{rule="EXE-001",severity="low"} 1
# HELP kestrel_bpf_program_run_seconds_total Time spent in each BPF program while statistics are enabled.
# TYPE kestrel_bpf_program_run_seconds_total counter
kestrel_bpf_program_run_seconds_total{program="kestrel_exec"} 0.0015
# HELP kestrel_nvml_state State of the GPU sampler (value 1 on the current state: ok, replay or disabled).
# TYPE kestrel_nvml_state gauge
kestrel_nvml_state{state="ok"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kestrel_events_lost_total", "kestrel_findings_total",
		"kestrel_bpf_program_run_seconds_total", "kestrel_nvml_state"); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// Without kernel statistics, run times would be stale or zero: they are not
// exported at all.
func TestCollectorHidesProgramStatsWhenOff(t *testing.T) {
	s := full()
	s.BPFStats = false
	c := NewCollector(func(out *Snapshot) { *out = s }, "v1")
	if n := testutil.CollectAndCount(c, "kestrel_bpf_program_run_seconds_total", "kestrel_bpf_program_runs_total"); n != 0 {
		t.Errorf("got %d program stat series with statistics off; want 0", n)
	}
	want := `
# HELP kestrel_bpf_stats_enabled 1 when the kernel keeps BPF run-time statistics (metrics.bpf_stats or the sysctl kernel.bpf_stats_enabled).
# TYPE kestrel_bpf_stats_enabled gauge
kestrel_bpf_stats_enabled 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kestrel_bpf_stats_enabled"); err != nil {
		t.Error(err)
	}
}

// The endpoint reads the stages at every scrape: a counter that moves
// between two scrapes shows it, and the Go and process collectors are there.
func TestServerScrapesLive(t *testing.T) {
	var events atomic.Uint64
	c := NewCollector(func(s *Snapshot) { s.Events = map[string]uint64{"exec": events.Load()} }, "v1")
	reg, err := NewRegistry(c)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Listen("127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	scrape := func() string {
		resp, err := http.Get("http://" + srv.Addr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics: %s: %s", resp.Status, b)
		}
		return string(b)
	}
	events.Store(5)
	first := scrape()
	events.Store(12)
	second := scrape()
	if !strings.Contains(first, `kestrel_events_total{kind="exec"} 5`) || !strings.Contains(second, `kestrel_events_total{kind="exec"} 12`) {
		t.Errorf("counter did not move between scrapes:\n%s\n---\n%s", grep(first, "kestrel_events_total"), grep(second, "kestrel_events_total"))
	}
	for _, want := range []string{"go_goroutines ", "process_resident_memory_bytes ", "kestrel_build_info{"} {
		if !strings.Contains(second, want) {
			t.Errorf("scrape has no %q", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestListenRejectsATakenPort(t *testing.T) {
	reg, _ := NewRegistry(NewCollector(nil, ""))
	a, err := Listen("127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.ln.Close()
	if _, err := Listen(a.Addr().String(), reg, nil); err == nil || !strings.Contains(err.Error(), "listen for metrics on") {
		t.Fatalf("got %v; want an error naming the metrics listener", err)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
