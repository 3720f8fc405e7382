package otlp

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export"
	"github.com/kestrel-sec/kestrel/internal/export/ocsfschema"
)

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startReceiver runs the OpenTelemetry Collector's own OTLP receiver (the
// component a collector build serves OTLP with) on a loopback port, feeding
// a sink, and returns its endpoint.
func startReceiver(t *testing.T, protocol string) (string, *consumertest.LogsSink) {
	t.Helper()
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	addr := freeAddr(t)
	if protocol == config.OTLPProtocolHTTP {
		h := cfg.Protocols.HTTP.GetOrInsertDefault()
		h.ServerConfig.NetAddr.Endpoint = addr
		cfg.Protocols.GRPC = configoptional.None[configgrpc.ServerConfig]()
	} else {
		g := cfg.Protocols.GRPC.GetOrInsertDefault()
		g.NetAddr.Endpoint = addr
	}
	sink := new(consumertest.LogsSink)
	r, err := f.CreateLogs(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, sink)
	if err != nil {
		t.Fatalf("create OTLP receiver: %v", err)
	}
	if err := r.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatalf("start OTLP receiver: %v", err)
	}
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	return addr, sink
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testConfig(endpoint, protocol, body string) config.OTLPExport {
	c := config.Default().Export.OTLP
	c.Endpoint, c.Protocol, c.Body, c.Insecure = endpoint, protocol, body, true
	c.ClusterName = "prod-gpu"
	c.MaxBatch = 4
	return c
}

// badPath is a file name that is not valid UTF-8.
const badPath = "/models/w\xff\xfe.safetensors"

// sample is one event of each shape the exporter treats differently.
func sample(now time.Time) []*event.Event {
	proc := &event.Process{PID: 4242, PPID: 1, Comm: "python3", Exe: "/usr/bin/python3.11", Args: []string{"python3", "serve.py"}}
	ctr := &event.Container{ID: "0123456789abcdef0123", Runtime: "containerd", Pod: "vllm-0", Namespace: "inference"}
	return []*event.Event{
		{Kind: event.KindExec, Time: now, Process: proc, Container: ctr},
		{Kind: event.KindOpen, Time: now, Process: proc, Container: ctr, File: &event.File{Path: "/models/llama.safetensors", RawPath: "llama.safetensors"}},
		// A name that is not UTF-8: the record's body must still be valid
		// UTF-8 (a proto string), with the exact bytes beside it.
		{Kind: event.KindOpen, Time: now, Process: proc, Container: ctr, File: &event.File{Path: badPath, RawPath: badPath}},
		{Kind: event.KindFinding, Time: now, Process: proc, Container: ctr, Finding: &event.Finding{
			Rule: "EXF-001", Title: "Model weights sent out", Severity: event.SevCritical, MITRE: []string{"T1048"}}},
		{Kind: event.KindFinding, Time: now, Process: proc, Finding: &event.Finding{Rule: "EXE-001", Title: "Shell", Severity: event.SevLow}},
		{Kind: event.KindGPU, Time: now, GPU: &event.GPU{UUID: "GPU-1", PID: 4242, UsedBytes: 1 << 30}},
		{Kind: event.KindLost, Time: now, Lost: &event.Lost{Source: "kernel_ringbuf", Count: 7}},
	}
}

type received struct {
	res  map[string]any
	recs []plog.LogRecord
}

func collect(sink *consumertest.LogsSink) received {
	var out received
	for _, ld := range sink.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			out.res = rl.Resource().Attributes().AsRaw()
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				sl := rl.ScopeLogs().At(j)
				for k := 0; k < sl.LogRecords().Len(); k++ {
					out.recs = append(out.recs, sl.LogRecords().At(k))
				}
			}
		}
	}
	return out
}

func run(t *testing.T, cfg config.OTLPExport, ring *export.Ring) (*Exporter, context.CancelFunc, <-chan error) {
	t.Helper()
	x, err := New(context.Background(), cfg, &Options{NodeName: "gpu-node-7", Version: "v1.2.3", InstanceID: ring.InstanceID(), From: 1})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = x.Shutdown(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx, ring) }()
	return x, cancel, done
}

func TestExportToCollectorReceiver(t *testing.T) {
	for _, tc := range []struct {
		protocol, body string
		// want is what reaches the collector: OCSF has no class for gpu
		// and lost events, the native JSON body carries everything.
		want, skipped int
	}{
		{config.OTLPProtocolGRPC, config.OTLPBodyOCSF, 5, 2},
		{config.OTLPProtocolHTTP, config.OTLPBodyJSON, 7, 0},
	} {
		t.Run(tc.protocol+"/"+tc.body, func(t *testing.T) {
			schema, err := ocsfschema.OCSF180()
			if err != nil {
				t.Fatal(err)
			}
			endpoint, sink := startReceiver(t, tc.protocol)
			ring := export.NewRing(64)
			x, cancel, done := run(t, testConfig(endpoint, tc.protocol, tc.body), ring)
			now := time.Now()
			for _, ev := range sample(now) {
				ring.Publish(ev)
			}
			waitFor(t, "the collector to receive every record", func() bool { return sink.LogRecordCount() >= tc.want })
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			got := collect(sink)
			st := x.Stats()
			if len(got.recs) != tc.want || st.Sent != uint64(tc.want) || st.Skipped != uint64(tc.skipped) || st.Failed != 0 || st.Lost != 0 {
				t.Fatalf("collector got %d records; exporter stats %+v; want %d sent, %d skipped", len(got.recs), st, tc.want, tc.skipped)
			}
			for k, want := range map[string]any{"service.name": "kestrel-sensor", "service.version": "v1.2.3",
				"k8s.node.name": "gpu-node-7", "k8s.cluster.name": "prod-gpu", "service.instance.id": ring.InstanceID()} {
				if got.res[k] != want {
					t.Errorf("resource %s: got %v; want %v", k, got.res[k], want)
				}
			}
			if got.res["host.name"] == "" || got.res["host.name"] == nil {
				t.Errorf("resource host.name missing: %v", got.res)
			}
			var critical *plog.LogRecord
			exact := 0
			classes := map[int]int{}
			for i := range got.recs {
				r := got.recs[i]
				var body struct {
					Kind string `json:"kind"`
					File struct {
						PathB64 []byte `json:"path_b64"`
					} `json:"file"`
					Unmapped struct {
						Raw map[string][]byte `json:"raw_b64"`
					} `json:"unmapped"`
				}
				if err := json.Unmarshal([]byte(r.Body().Str()), &body); err != nil {
					t.Fatalf("record %d body is not JSON: %v: %q", i, err, r.Body().Str())
				}
				if tc.body == config.OTLPBodyOCSF {
					// What the collector received is what a SIEM parses:
					// it must be valid OCSF 1.8.0, not only carry a class.
					res := schema.Validate([]byte(r.Body().Str()))
					classes[res.ClassUID]++
					if res.ClassUID == 0 || !res.OK() {
						t.Errorf("record %d: OCSF body of class %d does not validate: %v\n%s", i, res.ClassUID, res.All(), r.Body().Str())
					}
					if string(body.Unmapped.Raw["file.path"]) == badPath {
						exact++
					}
				}
				if tc.body == config.OTLPBodyJSON {
					if body.Kind == "" {
						t.Errorf("record %d: native body without kind: %s", i, r.Body().Str())
					}
					if string(body.File.PathB64) == badPath {
						exact++
					}
				}
				if !r.Timestamp().AsTime().Equal(now) {
					t.Errorf("record %d: timestamp %v; want the event's %v", i, r.Timestamp().AsTime(), now)
				}
				if rule, ok := r.Attributes().Get("kestrel.rule"); ok && rule.Str() == "EXF-001" {
					critical = &got.recs[i]
				}
			}
			if tc.body == config.OTLPBodyOCSF {
				t.Logf("validated the %d OCSF bodies the collector received against OCSF 1.8.0 (records per class: %v)", len(got.recs), classes)
			}
			if exact != 1 {
				t.Errorf("%d records carry the exact bytes of %q; want 1", exact, badPath)
			}
			if critical == nil {
				t.Fatal("no record for the EXF-001 finding")
			}
			if critical.SeverityNumber() != plog.SeverityNumberFatal || critical.SeverityText() != "critical" {
				t.Errorf("critical finding: severity %v %q; want FATAL \"critical\"", critical.SeverityNumber(), critical.SeverityText())
			}
			if critical.EventName() != "kestrel.finding" {
				t.Errorf("event name %q; want kestrel.finding", critical.EventName())
			}
			if v, _ := critical.Attributes().Get("k8s.pod.name"); v.Str() != "vllm-0" {
				t.Errorf("k8s.pod.name: got %q; want vllm-0", v.Str())
			}
		})
	}
}

// A stop right after a burst sends the burst: Run drains the ring up to its
// head before it returns.
func TestExportDrainsOnStop(t *testing.T) {
	endpoint, sink := startReceiver(t, config.OTLPProtocolGRPC)
	ring := export.NewRing(1024)
	cfg := testConfig(endpoint, config.OTLPProtocolGRPC, config.OTLPBodyJSON)
	cfg.Kinds = []string{"exec"}
	x, cancel, done := run(t, cfg, ring)
	const n = 300
	for i := 0; i < n; i++ {
		ring.Publish(&event.Event{Kind: event.KindExec, Time: time.Now(), Process: &event.Process{PID: uint32(i + 1)}})
		ring.Publish(&event.Event{Kind: event.KindOpen, Time: time.Now()})
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := x.Stats()
	if st.Sent != n || st.Filtered != n || sink.LogRecordCount() != n || st.Failed+st.Lost != 0 {
		t.Fatalf("collector got %d records; stats %+v; want %d execs sent and %[3]d opens filtered", sink.LogRecordCount(), st, n)
	}
}

// With no collector, every event is still accounted for: failed after the
// retries, or lost to the ring; none vanishes. (The OCSF body carries no
// in-band lost record, so the counts add up exactly.)
func TestExportCountsEveryLoss(t *testing.T) {
	ring := export.NewRing(16)
	cfg := testConfig(freeAddr(t), config.OTLPProtocolGRPC, config.OTLPBodyOCSF)
	cfg.Timeout = config.Duration(100 * time.Millisecond)
	x, cancel, done := run(t, cfg, ring)
	const n = 200
	proc := &event.Process{PID: 1, Comm: "sh", Exe: "/bin/sh"}
	for i := 0; i < n; i++ {
		ring.Publish(&event.Event{Kind: event.KindExec, Time: time.Now(), Process: proc})
	}
	accounted := func(st Stats) uint64 { return st.Sent + st.Failed + st.Skipped + st.Filtered + st.Lost }
	waitFor(t, "every event to be accounted for", func() bool { return accounted(x.Stats()) == n })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := x.Stats()
	if st.Sent != 0 || st.Failed == 0 || st.Lost == 0 || accounted(st) != n {
		t.Fatalf("stats %+v; want nothing sent, failures and ring losses counted, %d in all", st, n)
	}
}
