package runtime_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/detect"
	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export"
	"github.com/kestrel-sec/kestrel/internal/pipeline"
	"github.com/kestrel-sec/kestrel/internal/runtime"
	"github.com/kestrel-sec/kestrel/internal/runtime/enrich"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

// The pipeline benchmark runs the sensor's whole user-space path as the
// daemon wires it, from ring-buffer records to what leaves the process:
// decode (on its own goroutine, as the ring reader), the pipeline's queue,
// enrichment against the real /proc, the rules, the export ring, one gRPC
// subscriber on the unix socket and the OCSF file exporter. It reports the
// events each core's worth of CPU time carries and the allocations per
// event, for a mix without findings and for one where 1 event in 50 makes
// a finding.
//
// The CPU time is the benchmark process's: the subscriber runs in a child.

const (
	benchCgroup = 0x4b45535452454c // the container's cgroup id, learned as the kernel would report it
	benchCtrID  = "4b455354524556c1a5e5c0de4b455354524556c1a5e5c0de4b45535452455601"
	benchCgPath = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5d1c0f4e_7a0b_4e55_9d2c_0b1f3c1e9a21.slice/cri-containerd-" + benchCtrID + ".scope"
	benchServer = 1 << 21 // pids above pid_max: /proc never has them
)

var benchNS = event.Namespaces{Mnt: 4026532301, PID: 4026532302, Net: 4026532303, User: 4026531837, UTS: 4026532304, IPC: 4026532305, Cgroup: 4026532306}

// mix returns the records of n cycles of a quiet inference container: the
// server's model and config opens and connects, and a multiprocessing
// worker that it forks and execs, which connects back and exits. With findings, every 50th event
// is a shell started with LD_PRELOAD from a writable directory, a
// different library each time (so the findings do not fold into one).
func mix(dec *runtime.Decoder, n int, findings bool) [][]byte {
	t := dec.BootNS(time.Now())
	tick := func() uint64 { t += 1000; return t }
	srv := func() runtime.RecHdr {
		return runtime.RecHdr{PID: benchServer, UID: 1000, Comm: "python3", Cgroup: benchCgroup, BootNS: tick()}
	}
	var out [][]byte
	// The server is exec'd first, as it would have been when its container started.
	out = append(out, runtime.ExecRecord(srv(), 1, "/usr/bin/python3.11", "/app",
		[]string{"python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "/models/llama"},
		[]string{"NVIDIA_VISIBLE_DEVICES=0", "CUDA_VERSION=12.4.1", "HF_HOME=/models/hf"}, benchNS))
	serve := netip.MustParseAddrPort("127.0.0.1:8000")
	metrics := netip.MustParseAddrPort("127.0.0.1:9090")
	events := 0
	for i := 0; len(out) < n; i++ {
		child := uint32(benchServer + 1 + i%30000)
		kid := func(comm string) runtime.RecHdr {
			return runtime.RecHdr{PID: child, UID: 1000, Comm: comm, Cgroup: benchCgroup, BootNS: tick()}
		}
		start := t
		cycle := [][]byte{
			runtime.OpenRecord(srv(), "/models/llama/model-00001-of-00002.safetensors", 0x80000, 12, 1001, 5<<30),
			runtime.OpenRecord(srv(), "/models/llama/config.json", 0x80000, 13, 1002, 700),
			runtime.ConnectRecord(srv(), metrics, uint64(i)+1),
			runtime.ForkRecord(srv(), child),
			runtime.ExecRecord(kid("python3"), benchServer, "/usr/bin/python3.11", "/app",
				[]string{"python3", "-c", "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)", "--multiprocessing-fork"},
				[]string{"NVIDIA_VISIBLE_DEVICES=0", "CUDA_VERSION=12.4.1", "HF_HOME=/models/hf"}, benchNS),
			runtime.ConnectRecord(kid("python3"), serve, uint64(i)+1<<32),
			runtime.ExitRecord(kid("python3"), start),
		}
		for _, r := range cycle {
			events++
			if findings && events%50 == 0 {
				sh := uint32(benchServer + 40000 + i%1000)
				out = append(out,
					runtime.ForkRecord(srv(), sh),
					runtime.ExecRecord(runtime.RecHdr{PID: sh, UID: 1000, Comm: "sh", Cgroup: benchCgroup, BootNS: tick()}, benchServer,
						"/usr/bin/dash", "/tmp", []string{"sh", "-c", "id"}, []string{"LD_PRELOAD=/tmp/.x/libhook" + strconv.Itoa(i%1000) + ".so"}, benchNS))
			}
			out = append(out, r)
		}
	}
	return out[:n]
}

// The subscriber runs in a child process (this test binary again, with
// subscriberEnv naming the socket), so that the CPU time measured is the
// sensor's alone. It takes responses without unmarshalling them and
// writes a byte to stdout for every 256 it got.
const subscriberEnv = "KESTREL_BENCH_SUBSCRIBER"

func init() {
	if sock := os.Getenv(subscriberEnv); sock != "" {
		os.Exit(runSubscriber(sock))
	}
}

func runSubscriber(sock string) int {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	var got uint64
	stream, err := sensorv1.NewSensorServiceClient(conn).Subscribe(context.Background(), &sensorv1.SubscribeRequest{},
		grpc.ForceCodec(countCodec{&got}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tick := []byte{1}
	var m sensorv1.SubscribeResponse
	for stream.RecvMsg(&m) == nil {
		if got%256 == 0 {
			if _, err := os.Stdout.Write(tick); err != nil {
				return 0 // the benchmark is done
			}
		}
	}
	return 0
}

// countCodec sends requests as protobuf and counts responses without
// unmarshalling them.
type countCodec struct{ got *uint64 }

func (countCodec) Marshal(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }
func (c countCodec) Unmarshal(data []byte, v any) error {
	*c.got++
	return nil
}
func (countCodec) Name() string { return "proto" }

func BenchmarkPipeline(b *testing.B) {
	b.Run("quiet", func(b *testing.B) { benchPipeline(b, false) })
	b.Run("findings", func(b *testing.B) { benchPipeline(b, true) })
}

func benchPipeline(b *testing.B, findings bool) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	cfg.Context.CRISocket = config.CRIOff
	cfg.Context.NodeIPs = []string{"10.200.1.1"}
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()

	dec, err := runtime.NewDecoder()
	if err != nil {
		b.Fatal(err)
	}
	en, err := enrich.New(cfg.Context, &enrich.Options{Logger: log, NoNetlink: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := en.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if idx := en.Cgroups(); idx != nil {
		idx.Learn(benchCgroup, benchCgPath)
	}
	eng, err := detect.New(cfg.Detect, &detect.Options{Logger: log, HostNS: hostNamespaces(b)})
	if err != nil {
		b.Fatal(err)
	}

	ring := export.NewRing(cfg.Export.RingSize)
	dir := b.TempDir()
	ecfg := cfg.Export
	ecfg.UnixSocket = filepath.Join(dir, "s.sock")
	srv, err := export.NewServer(ecfg, ring, export.Sources{}, &export.Options{Logger: log, NodeName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		b.Fatal(err)
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ctx) }()
	fcfg := config.FileExport{Path: filepath.Join(dir, "ocsf.jsonl"), Format: config.FormatOCSF, MaxBytes: 64 << 20, Keep: 1}
	fx, err := export.NewFileExporter(fcfg, &export.FileOptions{Logger: log, OCSF: &export.OCSFOptions{Hostname: "bench", InstanceID: ring.InstanceID()}})
	if err != nil {
		b.Fatal(err)
	}
	defer fx.Close()
	fxDone := make(chan struct{})
	go func() { fx.Run(ctx, ring); close(fxDone) }()

	// The subscriber, on the daemon's socket, in a child process.
	var got atomic.Uint64
	progress := make(chan struct{}, 1)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	sub := exec.Command(self, "-test.run=^$")
	sub.Env = append(os.Environ(), subscriberEnv+"="+ecfg.UnixSocket)
	sub.Stderr = os.Stderr
	ticks, err := sub.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		sub.Process.Kill()
		sub.Wait()
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := ticks.Read(buf)
			if n > 0 {
				got.Add(uint64(n) * 256)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for len(srv.Subscribers()) == 0 { // the stream is open once the server lists it
		time.Sleep(time.Millisecond) // set-up, before the timer starts
	}

	recs := mix(dec, b.N, findings)
	// The source decodes on its own goroutine, as the ring reader does,
	// and stays at most window events ahead of what the subscriber got, as
	// the kernel's ring buffer would hold them. (The file exporter is not
	// waited for: one that fell a ring behind would count losses, which
	// fail the benchmark.)
	const window = 4096
	var p *pipeline.Pipeline
	done := make(chan struct{})
	src := pipeline.SourceFunc(func(ctx context.Context, emit func(*event.Event)) error {
		for i, r := range recs {
			for i%256 == 0 && got.Load()+window < uint64(i) {
				<-progress
			}
			ev, err := dec.Decode(r)
			if err != nil {
				return err
			}
			emit(ev)
		}
		close(done)
		<-ctx.Done()
		return nil
	})
	p = pipeline.New([]pipeline.Source{src}, en, eng, []pipeline.Sink{ring.Publish, func(ev *event.Event) {
		if ev.Kind == event.KindFinding && debugFindings {
			b.Logf("%s: %s", ev.Finding.Rule, ev.Finding.Explanation)
		}
	}}, &pipeline.Options{Logger: log, QueueSize: 2 * window})

	var ms0, ms1 goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&ms0)
	cpu0 := processCPU()
	b.ResetTimer()
	pctx, pcancel := context.WithCancel(ctx)
	pdone := make(chan error, 1)
	go func() { pdone <- p.Run(pctx) }()
	<-done
	// Everything the pipeline published has reached the subscriber and
	// the file: the condition is polled, the benchmark's only idle time.
	poll := time.NewTicker(100 * time.Microsecond)
	for head := ring.Head(); head < uint64(b.N) || got.Load()+256 <= head || filed(fx) < head; head = ring.Head() {
		<-poll.C
	}
	poll.Stop()
	b.StopTimer()
	cpu := processCPU() - cpu0
	goruntime.ReadMemStats(&ms1)
	pcancel()
	if err := <-pdone; err != nil {
		b.Fatal(err)
	}
	cancel()
	<-srvDone
	<-fxDone

	if lost := p.Counters()["lost_queue"]; lost != 0 {
		b.Fatalf("%d events lost in the queue", lost)
	}
	if lost := fx.Stats().Lost; lost != 0 {
		b.Fatalf("the file exporter lost %d events", lost)
	}
	found := p.Counters()["pipeline_findings"]
	if b.N >= 1000 && findings != (found > 0) {
		b.Fatalf("%d findings from the %s mix", found, map[bool]string{false: "quiet", true: "findings"}[findings])
	}
	n := float64(b.N)
	b.ReportMetric(n/cpu.Seconds(), "events/cpu-s")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/event")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/n, "allocs/event")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/n, "B/event")
	b.ReportMetric(float64(found)/n*1000, "findings/1k-events")
}

// filed is how many ring events the file exporter took: written, or
// skipped for want of an OCSF class.
func filed(fx *export.FileExporter) uint64 {
	s := fx.Stats()
	return s.Written + s.Skipped + s.Filtered + s.Errors
}

var debugFindings = false

func processCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func hostNamespaces(b *testing.B) event.Namespaces {
	var ns event.Namespaces
	for _, f := range []struct {
		name string
		v    *uint32
	}{{"mnt", &ns.Mnt}, {"pid", &ns.PID}, {"net", &ns.Net}, {"user", &ns.User}, {"uts", &ns.UTS}, {"ipc", &ns.IPC}, {"cgroup", &ns.Cgroup}} {
		var st unix.Stat_t
		if err := unix.Stat("/proc/2/ns/"+f.name, &st); err != nil {
			b.Skipf("host namespaces unreadable: %v", err)
		}
		*f.v = uint32(st.Ino)
	}
	return ns
}
