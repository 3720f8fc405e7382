package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

const (
	ctrA = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	ctrB = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testServer is a running Server on a unix socket in a temp dir.
type testServer struct {
	srv    *Server
	ring   *Ring
	sock   string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startServer(t *testing.T, ringSize int, mutate func(*config.ExportConfig), src Sources) *testServer {
	t.Helper()
	cfg := config.Default().Export
	cfg.RingSize = ringSize
	cfg.UnixSocket = filepath.Join(t.TempDir(), "sensor.sock")
	if mutate != nil {
		mutate(&cfg)
	}
	ring := NewRing(cfg.RingSize)
	srv, err := NewServer(cfg, ring, src, &Options{Logger: testLogger(t), NodeName: "node-1"})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: srv, ring: ring, sock: cfg.UnixSocket, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ctx) }()
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	ts.once.Do(func() {
		ts.cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				panic(fmt.Sprintf("Serve: %v", err))
			}
		case <-time.After(5 * time.Second):
			panic("Serve did not return within 5s of cancel")
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func finding(rule string, sev event.Severity, ctr string) *event.Event {
	ev := &event.Event{
		Kind:    event.KindFinding,
		Time:    time.Now(),
		Process: &event.Process{PID: 4242, PPID: 1, Comm: "sh", Exe: "/bin/sh", Args: []string{"sh", "-c", "x"}},
		Finding: &event.Finding{Rule: rule, Title: "title " + rule, Severity: sev, MITRE: []string{"T1611"}, Count: 1},
	}
	if ctr != "" {
		ev.Container = &event.Container{ID: ctr, Runtime: "containerd", Pod: "llm-0", Namespace: "inference"}
	}
	return ev
}

func openEvent(ctr, path string) *event.Event {
	ev := &event.Event{Kind: event.KindOpen, Time: time.Now(),
		Process: &event.Process{PID: 77, Comm: "python3", Exe: "/usr/bin/python3"},
		File:    &event.File{Path: path, RawPath: path, Size: -1}}
	if ctr != "" {
		ev.Container = &event.Container{ID: ctr, Runtime: "containerd"}
	}
	return ev
}

// Must show 1: a filter of severity ≥ high and one container gets exactly
// the matching findings, and nothing else.
func TestSubscribeFilterSeverityAndContainer(t *testing.T) {
	ts := startServer(t, 1024, nil, Sources{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, ts.sock)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()

	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	filters := Filters{Allow: []Filter{{MinSeverity: event.SevHigh, ContainerIDs: []string{ctrA[:12]}}}}
	sctx, scancel := context.WithCancel(ctx)
	go func() {
		defer close(done)
		c.Subscribe(sctx, filters, nil, func(ev *event.Event) {
			mu.Lock()
			defer mu.Unlock()
			if ev.Kind != event.KindFinding {
				got = append(got, "non-finding:"+ev.Kind.String())
				return
			}
			got = append(got, ev.Finding.Rule)
			if ev.Finding.Rule == "END" {
				scancel()
			}
		})
	}()
	waitFor(t, "subscriber", func() bool { return len(ts.srv.Subscribers()) == 1 })

	for _, ev := range []*event.Event{
		finding("ESC-001", event.SevCritical, ctrA), // match
		finding("ESC-002", event.SevCritical, ctrB), // other container
		finding("EXE-003", event.SevLow, ctrA),      // too low
		finding("GPU-001", event.SevHigh, ctrA),     // match (floor is inclusive)
		finding("EXF-004", event.SevMedium, ctrA),   // too low
		finding("ESC-004", event.SevCritical, ""),   // host
		openEvent(ctrA, "/models/llama/model.safetensors"),
		finding("EXF-001", event.SevCritical, ctrA), // match
		finding("END", event.SevHigh, ctrA),         // match, ends the test
	} {
		ts.ring.Publish(ev)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("timed out waiting for END")
	}
	want := []string{"ESC-001", "GPU-001", "EXF-001", "END"}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("got %v; want %v", got, want)
	}
}

func TestSubscribeBadFilterIsInvalidArgument(t *testing.T) {
	ts := startServer(t, 64, nil, Sources{})
	conn := rawConn(t, ts.sock)
	api := sensorv1.NewSensorServiceClient(conn)
	tests := []struct {
		name  string
		req   *sensorv1.SubscribeRequest
		field string
	}{
		{"bad pod regex", &sensorv1.SubscribeRequest{Allow: []*sensorv1.Filter{{PodRegex: "llm-("}}}, "allow[0].pod_regex"},
		{"bad binary regex in deny", &sensorv1.SubscribeRequest{Deny: []*sensorv1.Filter{{}, {BinaryRegex: "*sh"}}}, "deny[1].binary_regex"},
		{"unknown kind", &sensorv1.SubscribeRequest{Allow: []*sensorv1.Filter{{Kinds: []sensorv1.EventKind{99}}}}, "allow[0].kinds"},
		{"short container id", &sensorv1.SubscribeRequest{Allow: []*sensorv1.Filter{{ContainerIds: []string{"abc"}}}}, "allow[0].container_ids"},
		{"future cursor", &sensorv1.SubscribeRequest{ResumeAfter: &sensorv1.Cursor{InstanceId: ts.ring.InstanceID(), Seq: 50}}, "resume_after.seq"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := api.Subscribe(ctx, tt.req)
			if err == nil {
				_, err = st.Recv()
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("got %v; want InvalidArgument naming %s", err, tt.field)
			}
		})
	}
}

func rawConn(t *testing.T, sock string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func padded(i int) *event.Event {
	return &event.Event{
		Kind: event.KindExec,
		Time: time.Now(),
		Process: &event.Process{PID: uint32(1000 + i), Comm: "worker", Exe: "/usr/bin/worker",
			Args: []string{"worker", strings.Repeat("x", 512)}},
	}
}

// Must show 2: with one subscriber that never reads, the other still gets
// every event quickly; the stuck one is cut off with RESOURCE_EXHAUSTED,
// and resumes with its cursor: it is told how many events it lost and gets
// what is still in the ring.
func TestStuckSubscriberDoesNotHoldOthers(t *testing.T) {
	const (
		ringSize = 1024
		total    = 4000
		burst    = 8
		gap      = 2 * time.Millisecond // 8 events / 2ms = 4000 events/s
	)
	ts := startServer(t, ringSize, func(c *config.ExportConfig) {
		c.SubscriberDeadline = config.Duration(300 * time.Millisecond)
		c.HeartbeatInterval = config.Duration(time.Second)
	}, Sources{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The stuck subscriber: small fixed flow-control windows, never reads.
	stuckConn := rawConn(t, ts.sock, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	stuckStream, err := sensorv1.NewSensorServiceClient(stuckConn).Subscribe(ctx, &sensorv1.SubscribeRequest{})
	if err != nil {
		t.Fatalf("stuck Subscribe: %v", err)
	}

	// The healthy subscriber.
	c, err := Dial(ctx, ts.sock)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	var (
		mu        sync.Mutex
		seqs      []uint64
		latencies []time.Duration
		losses    uint64
	)
	fastCtx, fastCancel := context.WithCancel(ctx)
	fastDone := make(chan struct{})
	go func() {
		defer close(fastDone)
		c.Subscribe(fastCtx, Filters{}, nil, func(ev *event.Event) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if ev.Kind == event.KindLost {
				losses += ev.Lost.Count
				return
			}
			seqs = append(seqs, ev.Seq)
			latencies = append(latencies, now.Sub(ev.Time))
			if len(seqs) == total {
				fastCancel()
			}
		})
	}()
	waitFor(t, "two subscribers", func() bool { return len(ts.srv.Subscribers()) == 2 })

	for i := 0; i < total; i += burst {
		for j := i; j < i+burst && j < total; j++ {
			ts.ring.Publish(padded(j))
		}
		time.Sleep(gap)
	}
	select {
	case <-fastDone:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("healthy subscriber got %d of %d events", len(seqs), total)
	}

	mu.Lock()
	if losses != 0 {
		t.Errorf("healthy subscriber lost %d events; want 0", losses)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("healthy subscriber: event %d has seq %d; want %d (every event, in order)", i, s, i+1)
		}
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	p50, p99, pmax := latencies[len(latencies)/2], latencies[len(latencies)*99/100], latencies[len(latencies)-1]
	mu.Unlock()
	t.Logf("healthy subscriber, %d events with a stuck peer: latency p50 %s, p99 %s, max %s", total, p50, p99, pmax)
	// The target is 100ms p99 (docs/architecture.md#performance-targets). Measured here it is a few
	// milliseconds, so the bound holds on a loaded 2-core CI box too.
	if p99 > 100*time.Millisecond {
		t.Errorf("p99 latency %s; want ≤ 100ms", p99)
	}

	// The stuck subscriber was cut off while we published.
	waitFor(t, "stuck subscriber cut off", func() bool { return len(ts.srv.Subscribers()) == 0 })

	// It now reads what was buffered, then the RESOURCE_EXHAUSTED status.
	var last uint64
	inst := ""
	for {
		r, err := stuckStream.Recv()
		if err != nil {
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("stuck stream ended with %v; want ResourceExhausted", err)
			}
			t.Logf("stuck subscriber cut off after seq %d: %v", last, err)
			break
		}
		if ev := r.GetEvent(); ev != nil {
			if ev.GetSeq() != last+1 {
				t.Fatalf("stuck stream: seq %d after %d", ev.GetSeq(), last)
			}
			last = ev.GetSeq()
			inst = r.GetCursor().GetInstanceId()
		}
	}
	if last == 0 || last >= total-ringSize {
		t.Fatalf("stuck subscriber got up to seq %d; want it stuck well before %d", last, total-ringSize)
	}

	// It resumes with its cursor: a Lost record for what fell out of the
	// ring, then exactly the ring's contents.
	cur := &Cursor{Instance: inst, Seq: last}
	var resumed []uint64
	var lost []event.Lost
	rctx, rcancel := context.WithCancel(ctx)
	err = c.Subscribe(rctx, Filters{}, cur, func(ev *event.Event) {
		if ev.Kind == event.KindLost {
			lost = append(lost, *ev.Lost)
			return
		}
		resumed = append(resumed, ev.Seq)
		if ev.Seq == total {
			rcancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("resume: %v", err)
	}
	oldest := uint64(total - ringSize + 1)
	wantLost := oldest - last - 1
	if len(lost) != 1 || lost[0].Source != LostSubscriber || lost[0].Count != wantLost {
		t.Fatalf("resume: lost records %+v; want one {subscriber %d}", lost, wantLost)
	}
	if len(resumed) != ringSize || resumed[0] != oldest || resumed[len(resumed)-1] != total {
		t.Fatalf("resume: got %d events %d..%d; want %d events %d..%d", len(resumed), resumed[0], resumed[len(resumed)-1], ringSize, oldest, total)
	}
	if cur.Seq != total || cur.Instance != ts.ring.InstanceID() {
		t.Errorf("cursor after resume: %+v; want seq %d", cur, total)
	}

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.GetExportLost()["subscriber_cutoffs"] != 1 || st.GetExportLost()[LostSubscriber] != wantLost {
		t.Errorf("status export_lost = %v; want 1 cutoff and %d subscriber losses", st.GetExportLost(), wantLost)
	}
	if r := st.GetRing(); r.GetHeadSeq() != total || r.GetFill() != ringSize || r.GetOverwritten() != total-ringSize {
		t.Errorf("status ring = %v", r)
	}
	t.Logf("stuck subscriber: cut off at seq %d, resumed with Lost{subscriber, %d} and %d retained events", last, wantLost, len(resumed))
}

func TestReplayLastAndRestartCursor(t *testing.T) {
	ts := startServer(t, 16, nil, Sources{})
	for i := 0; i < 20; i++ {
		ts.ring.Publish(padded(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := rawConn(t, ts.sock)
	api := sensorv1.NewSensorServiceClient(conn)

	recv := func(req *sensorv1.SubscribeRequest, n int) []*sensorv1.SubscribeResponse {
		t.Helper()
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		st, err := api.Subscribe(sctx, req)
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		var out []*sensorv1.SubscribeResponse
		for len(out) < n {
			r, err := st.Recv()
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			out = append(out, r)
		}
		return out
	}
	// Replay of the last 5: seqs 16..20.
	got := recv(&sensorv1.SubscribeRequest{ReplayLast: 5}, 5)
	for i, r := range got {
		if r.GetEvent().GetSeq() != uint64(16+i) {
			t.Fatalf("replay[%d] seq %d; want %d", i, r.GetEvent().GetSeq(), 16+i)
		}
	}
	// Replay of more than the ring holds is bounded by the ring, without a loss record.
	got = recv(&sensorv1.SubscribeRequest{ReplayLast: 100}, 16)
	if got[0].GetEvent().GetSeq() != 5 || got[15].GetEvent().GetSeq() != 20 {
		t.Fatalf("replay 100: first %d last %d; want 5 and 20", got[0].GetEvent().GetSeq(), got[15].GetEvent().GetSeq())
	}
	// A cursor from another instance (the sensor restarted): a restart
	// marker, then everything this instance holds.
	got = recv(&sensorv1.SubscribeRequest{ResumeAfter: &sensorv1.Cursor{InstanceId: "previous-run", Seq: 9000}}, 17)
	if l := got[0].GetLost(); l == nil || l.GetSource() != LostRestart {
		t.Fatalf("first item %v; want Lost{sensor_restart}", got[0])
	}
	if got[1].GetEvent().GetSeq() != 5 || got[16].GetEvent().GetSeq() != 20 {
		t.Fatalf("after restart: %d..%d; want 5..20", got[1].GetEvent().GetSeq(), got[16].GetEvent().GetSeq())
	}
	if got[16].GetCursor().GetInstanceId() != ts.ring.InstanceID() || got[16].GetNodeName() != "node-1" {
		t.Errorf("cursor %v node %q", got[16].GetCursor(), got[16].GetNodeName())
	}
}

func TestHeartbeat(t *testing.T) {
	ts := startServer(t, 16, func(c *config.ExportConfig) { c.HeartbeatInterval = config.Duration(50 * time.Millisecond) }, Sources{})
	ts.ring.Publish(padded(0))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := sensorv1.NewSensorServiceClient(rawConn(t, ts.sock)).Subscribe(ctx, &sensorv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	hb := r.GetHeartbeat()
	if hb == nil || hb.GetHeadSeq() != 1 || r.GetCursor().GetSeq() != 1 {
		t.Fatalf("got %v; want a heartbeat with head 1 and cursor 1", r)
	}
}

func TestStatusInventoryAndHealth(t *testing.T) {
	var mu sync.Mutex
	ready := false
	src := Sources{
		Status: func() *event.Status {
			mu.Lock()
			defer mu.Unlock()
			return &event.Status{Ready: ready, Programs: []string{"exec", "openat"},
				Fields: map[string]string{"nvml": "unavailable: libnvidia-ml.so.1 not found"}, Counters: map[string]uint64{"drops.kernel_ringbuf": 3}}
		},
		Inventory: func() *event.Inventory {
			return &event.Inventory{Node: "node-1", GPUs: []event.InventoryGPU{{UUID: "GPU-1", Index: 0, Owners: []event.InventoryOwner{{
				Process: &event.Process{PID: 10, Exe: "/usr/bin/python3"}, UsedBytes: 1 << 30,
				Models: []event.ModelFile{{Path: "/models/m.safetensors", Size: 5}},
				Peers:  []event.Peer{{Addr: netip.MustParseAddr("10.0.0.9"), Port: 443, Protocol: "tcp", Class: "external", BytesSent: 99}},
			}}}}}
		},
	}
	ts := startServer(t, 16, nil, src)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	fi, err := os.Stat(ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %o; want 600", fi.Mode().Perm())
	}

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetNvmlState() != "unavailable: libnvidia-ml.so.1 not found" || st.GetStatus().GetCounters()["drops.kernel_ringbuf"] != 3 ||
		!slices.Equal(st.GetStatus().GetPrograms(), []string{"exec", "openat"}) || st.GetInstanceId() != ts.ring.InstanceID() {
		t.Errorf("status = %v", st)
	}
	inv, err := c.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.GPUs) != 1 || inv.GPUs[0].Owners[0].Peers[0].Addr != netip.MustParseAddr("10.0.0.9") || inv.GPUs[0].Owners[0].Models[0].Path != "/models/m.safetensors" {
		t.Errorf("inventory = %+v", inv)
	}

	hc := healthpb.NewHealthClient(rawConn(t, ts.sock))
	check := func(svc string) healthpb.HealthCheckResponse_ServingStatus {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("health %q: %v", svc, err)
		}
		return r.GetStatus()
	}
	if s := check(""); s != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("liveness: %v", s)
	}
	if s := check(ServiceName); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("readiness before ready: %v", s)
	}
	mu.Lock()
	ready = true
	mu.Unlock()
	waitFor(t, "readiness", func() bool { return check(ServiceName) == healthpb.HealthCheckResponse_SERVING })
}

func TestUnixSocketLifecycle(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "kestrel", "sensor.sock")

	// A stale socket file (nobody listening) is replaced.
	l, err := listenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("stale socket should still exist for the test: %v", err)
	}
	ts := startServer(t, 16, func(c *config.ExportConfig) { c.UnixSocket = sock }, Sources{})

	// A second daemon on the same socket is refused.
	cfg := config.Default().Export
	cfg.UnixSocket = sock
	second, err := NewServer(cfg, NewRing(16), Sources{}, &Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Listen(); !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("second Listen: %v; want ErrSocketInUse", err)
	}

	// A regular file at the path is never removed.
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenUnix(plain); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listen over a regular file: %v", err)
	}

	// Shutdown removes the socket.
	ts.stop()
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket after shutdown: %v; want it removed", err)
	}
}

func TestNewServerRefusesTCPWithoutTLS(t *testing.T) {
	cfg := config.Default().Export
	cfg.TCPListen = "127.0.0.1:0"
	_, err := NewServer(cfg, NewRing(16), Sources{}, nil)
	if err == nil || !strings.Contains(err.Error(), "mutual TLS") {
		t.Fatalf("got %v; want an error about mutual TLS", err)
	}
}

func TestMaxSubscribers(t *testing.T) {
	ts := startServer(t, 16, func(c *config.ExportConfig) { c.MaxSubscribers = 1 }, Sources{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	api := sensorv1.NewSensorServiceClient(rawConn(t, ts.sock))
	if _, err := api.Subscribe(ctx, &sensorv1.SubscribeRequest{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first subscriber", func() bool { return len(ts.srv.Subscribers()) == 1 })
	st, err := api.Subscribe(ctx, &sensorv1.SubscribeRequest{})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second subscriber: %v; want ResourceExhausted", err)
	}
}

// The tail client reconnects with its cursor when the daemon restarts on
// the same socket, and is told of the restart.
func TestClientReconnectsAcrossRestart(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	first := startServer(t, 64, func(c *config.ExportConfig) { c.UnixSocket = sock }, Sources{})
	for i := 0; i < 3; i++ {
		first.ring.Publish(padded(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	var got []string
	cur := &Cursor{}
	sctx, scancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		errc <- c.SubscribeWith(sctx, Filters{}, cur, func(ev *event.Event) {
			mu.Lock()
			defer mu.Unlock()
			if ev.Kind == event.KindLost {
				got = append(got, "lost:"+ev.Lost.Source)
			} else {
				got = append(got, fmt.Sprintf("%d", ev.Process.PID))
			}
			if len(got) == 6 {
				scancel()
			}
		}, &SubscribeOptions{ReplayLast: 10, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	}()
	waitFor(t, "3 replayed events", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	first.stop()
	second := startServer(t, 64, func(c *config.ExportConfig) { c.UnixSocket = sock }, Sources{})
	second.ring.Publish(padded(7))
	second.ring.Publish(padded(8))
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("SubscribeWith: %v", err)
	}
	want := []string{"1000", "1001", "1002", "lost:sensor_restart", "1007", "1008"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v; want %v", got, want)
	}
	if cur.Instance != second.ring.InstanceID() || cur.Seq != 2 {
		t.Errorf("cursor %+v; want the new instance at seq 2", cur)
	}
}

// The plain-text health port serves the health service and nothing else.
func TestHealthListenerServesOnlyHealth(t *testing.T) {
	ts := startServer(t, 16, func(c *config.ExportConfig) { c.HealthListen = "127.0.0.1:0" }, Sources{
		Status: func() *event.Status { return &event.Status{Ready: true} },
	})
	conn, err := grpc.NewClient(ts.srv.HealthAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(conn)
	waitFor(t, "readiness over the health port", func() bool {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: ServiceName})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
	if _, err := sensorv1.NewSensorServiceClient(conn).GetStatus(ctx, &sensorv1.GetStatusRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("GetStatus on the health port: %v; want Unimplemented", err)
	}
}
