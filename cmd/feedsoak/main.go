// Command feedsoak runs the sensor daemon under mixed load for a while and
// checks that its feed never breaks and never lies (issue 14): watched-file
// opens at a steady rate, clients that connect, stall and hang up at random,
// and a file name that is not valid UTF-8 every minute. It samples the
// daemon's goroutines, file descriptors and RSS, and checks that a healthy
// subscriber's received plus reported-lost events add up to what was
// generated.
//
//	sudo ./bin/feedsoak -sensor bin/sensor -duration 30m
//
// It needs root (the daemon loads eBPF programs). It is `make soak`; it is not
// part of `make test`. Exit code 0 when every check passes, 1 otherwise.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

type options struct {
	sensor   string
	duration time.Duration
	rate     int
	churn    int
	sample   time.Duration
	hostile  time.Duration
	keep     bool
}

func main() {
	var o options
	flag.StringVar(&o.sensor, "sensor", "bin/sensor", "the sensor binary")
	flag.DurationVar(&o.duration, "duration", 30*time.Minute, "how long to run the load")
	flag.IntVar(&o.rate, "rate", 2000, "watched-file opens per second")
	flag.IntVar(&o.churn, "churn", 8, "rude clients at once (connect, stall, hang up at random)")
	flag.DurationVar(&o.sample, "sample", 10*time.Second, "how often to sample the daemon")
	flag.DurationVar(&o.hostile, "hostile-every", time.Minute, "how often to open a file whose name is not valid UTF-8")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (config, daemon log)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "feedsoak:", err)
		os.Exit(1)
	}
}

// sample is one look at the daemon.
type sample struct {
	at              time.Duration
	goroutines, fds uint64
	rssKiB, threads uint64
	subscribers     uint64
	ringFull        bool // the export ring holds its size: memory is at its steady state
	counters        map[string]uint64
}

type tally struct {
	generated atomic.Uint64 // watched opens made (each is one open event)
	hostile   atomic.Uint64
	// churn
	connected, cutOff, refused, hungUp, statusCalls atomic.Uint64
}

func run(o options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: the daemon loads eBPF programs")
	}
	bin, err := filepath.Abs(o.sensor)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("sensor binary: %w (make build first)", err)
	}
	// Short paths: the kernel compares watched prefixes of at most 64 bytes.
	work, err := os.MkdirTemp("/tmp", "ksoak")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(work)
	}
	watched := filepath.Join(work, "m") + "/"
	if err := os.MkdirAll(watched, 0o755); err != nil {
		return err
	}
	sock := filepath.Join(work, "s.sock")
	cfg := filepath.Join(work, "sensor.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`log_level: info
capture:
  watch_prefixes: [%q]
  open_repeat_window: 0s # every open an event: the load is the feed's, not the kernel's repeat counting
context:
  cri_socket: "off"
gpu:
  source: "off"
export:
  unix_socket: %s
  subscriber_deadline: 2s
  idle_timeout: 5s
  max_subscribers: 16
`, watched, sock)), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(work, "daemon.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	daemon := exec.Command(bin, "--config", cfg)
	daemon.Stderr = logf
	if err := daemon.Start(); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	defer daemon.Process.Kill()
	pid := daemon.Process.Pid

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := waitReady(ctx, sock, exited)
	if err != nil {
		return fmt.Errorf("%w (daemon log: %s)", err, filepath.Join(work, "daemon.log"))
	}
	defer conn.Close()
	api := sensorv1.NewSensorServiceClient(conn)
	st, err := api.GetStatus(ctx, &sensorv1.GetStatusRequest{})
	if err != nil {
		return err
	}
	fmt.Printf("feedsoak: daemon pid %d ready (%d programs), %s of load: %d opens/s, %d rude clients, a non-UTF-8 name every %s\n",
		pid, len(st.GetStatus().GetPrograms()), o.duration, o.rate, o.churn, o.hostile)

	var t tally
	// The healthy subscriber: every open this process makes, from the head.
	self, _ := os.Executable()
	healthy := &subscriberTally{}
	c, err := export.Dial(ctx, sock)
	if err != nil {
		return err
	}
	defer c.Close()
	head := &export.Cursor{Instance: st.GetInstanceId(), Seq: st.GetRing().GetHeadSeq()}
	filt := export.Filters{Allow: []export.Filter{{Kinds: []event.Kind{event.KindOpen}, Binary: "^" + regexp.QuoteMeta(self) + "$"}}}
	subDone := make(chan error, 1)
	subCtx, subCancel := context.WithCancel(ctx)
	defer subCancel()
	go func() {
		subDone <- c.SubscribeWith(subCtx, filt, head, healthy.add(watched), &export.SubscribeOptions{OnHeartbeat: func(uint64) {}})
	}()

	loadCtx, stopLoad := context.WithTimeout(ctx, o.duration)
	defer stopLoad()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); openLoad(loadCtx, watched, o.rate, &t) }()
	go func() { defer wg.Done(); hostileNames(loadCtx, watched, o.hostile, &t, healthy) }()
	go func() { defer wg.Done(); churn(loadCtx, sock, o.churn, &t) }()

	var samples []sample
	start := time.Now()
	tick := time.NewTicker(o.sample)
	defer tick.Stop()
	take := func() {
		s, err := sampleDaemon(ctx, api, pid)
		if err != nil {
			fmt.Printf("  sample failed: %v\n", err)
			return
		}
		s.at = time.Since(start).Round(time.Second)
		samples = append(samples, s)
		fmt.Printf("  %8s goroutines %5d  fds %4d  rss %7.1f MiB  threads %3d  subscribers %2d  opens %9d  received %9d  lost %d\n",
			s.at, s.goroutines, s.fds, float64(s.rssKiB)/1024, s.threads, s.subscribers, t.generated.Load(), healthy.received.Load(), healthy.lost.Load())
	}
	take()
loop:
	for {
		select {
		case <-loadCtx.Done():
			break loop
		case err := <-exited:
			return fmt.Errorf("the daemon died during the soak: %v (log %s)", err, filepath.Join(work, "daemon.log"))
		case <-tick.C:
			take()
		}
	}
	wg.Wait()
	// Let the healthy subscriber catch up with the last opens.
	generated := t.generated.Load() + t.hostile.Load()
	deadline := time.Now().Add(30 * time.Second)
	for healthy.received.Load()+healthy.lost.Load() < generated && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // nothing more may arrive: a late extra would be a duplicate
	take()
	subCancel()
	<-subDone

	// SIGTERM with a client that never reads still attached.
	stuck, _ := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if stuck != nil {
		sensorv1.NewSensorServiceClient(stuck).Subscribe(ctx, &sensorv1.SubscribeRequest{})
		defer stuck.Close()
	}
	stopStart := time.Now()
	daemon.Process.Signal(syscall.SIGTERM)
	var stopErr error
	select {
	case stopErr = <-exited:
	case <-time.After(30 * time.Second):
		stopErr = errors.New("still running 30s after SIGTERM")
	}
	stopTook := time.Since(stopStart)

	return report(o, samples, &t, healthy, generated, stopTook, stopErr, sock)
}

// subscriberTally counts what the healthy subscriber got.
type subscriberTally struct {
	received, lost atomic.Uint64
	mu             sync.Mutex
	hostileSeen    map[string]bool
}

func (h *subscriberTally) add(watched string) func(*event.Event) {
	h.hostileSeen = map[string]bool{}
	return func(ev *event.Event) {
		switch {
		case ev.Kind == event.KindLost:
			h.lost.Add(ev.Lost.Count)
		case ev.File != nil && strings.HasPrefix(ev.File.Path, watched):
			h.received.Add(1)
			if strings.HasPrefix(ev.File.Path, watched+"bad-") {
				h.mu.Lock()
				h.hostileSeen[ev.File.Path] = true
				h.mu.Unlock()
			}
		}
	}
}

func waitReady(ctx context.Context, sock string, exited <-chan error) (*grpc.ClientConn, error) {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("the daemon exited before it was ready: %v", err)
		default:
		}
		if _, err := os.Stat(sock); err == nil {
			conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err == nil {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				st, err := sensorv1.NewSensorServiceClient(conn).GetStatus(cctx, &sensorv1.GetStatusRequest{})
				cancel()
				if err == nil && st.GetReady() {
					return conn, nil
				}
				conn.Close()
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, errors.New("the daemon did not become ready within 90s")
}

// openLoad opens a watched file rate times a second, in bursts every 10ms.
func openLoad(ctx context.Context, watched string, rate int, t *tally) {
	path := filepath.Join(watched, "w.safetensors")
	if os.WriteFile(path, []byte("x"), 0o644) == nil {
		t.generated.Add(1) // the create is an open too
	}
	per := max(rate/100, 1)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for range per {
			f, err := os.Open(path)
			if err != nil {
				continue
			}
			f.Close()
			t.generated.Add(1)
		}
	}
}

// hostileNames creates and opens a file whose name is not valid UTF-8 (with
// a terminal escape in it) every period.
func hostileNames(ctx context.Context, watched string, every time.Duration, t *tally, h *subscriberTally) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		name := filepath.Join(watched, fmt.Sprintf("bad-%d-\xff\xfe\x1b[2J.gguf", i))
		// O_CREAT|O_WRONLY is one open event; so is the open that reads it.
		if f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Close()
			t.hostile.Add(1)
		}
		if f, err := os.Open(name); err == nil {
			f.Close()
			t.hostile.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// churn keeps n rude clients going: each connects, subscribes with a random
// filter, then reads a while, stalls (long enough to be cut off, sometimes),
// calls GetStatus, or hangs up at once; then it leaves and another comes.
func churn(ctx context.Context, sock string, n int, t *tally) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				rudeClient(ctx, sock, t)
			}
		}()
	}
	wg.Wait()
}

func rudeClient(ctx context.Context, sock string, t *tally) {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		return
	}
	defer conn.Close()
	api := sensorv1.NewSensorServiceClient(conn)
	cctx, cancel := context.WithTimeout(ctx, time.Duration(1+rand.IntN(20))*time.Second)
	defer cancel()
	if rand.IntN(4) == 0 {
		if _, err := api.GetStatus(cctx, &sensorv1.GetStatusRequest{}); err == nil {
			t.statusCalls.Add(1)
		}
	}
	req := &sensorv1.SubscribeRequest{}
	switch rand.IntN(4) {
	case 0:
		req.Allow = []*sensorv1.Filter{{Kinds: []sensorv1.EventKind{sensorv1.EventKind_EVENT_KIND_OPEN}}}
	case 1:
		req.Allow = []*sensorv1.Filter{{MinSeverity: sensorv1.Severity_SEVERITY_HIGH}} // idle: matches nothing here
	case 2:
		req.ReplayLast = uint32(rand.IntN(5000))
	}
	st, err := api.Subscribe(cctx, req)
	if err != nil {
		return
	}
	t.connected.Add(1)
	switch rand.IntN(4) {
	case 0: // hang up at once
	case 1: // never read: cut off after the deadline, or hang up first
		<-cctx.Done()
	default: // read a while, then hang up
		for range rand.IntN(20000) {
			if _, err := st.Recv(); err != nil {
				switch export.ErrorReason(err) {
				case export.ReasonTooSlow, export.ReasonIdle:
					t.cutOff.Add(1)
				case export.ReasonTooMany:
					t.refused.Add(1)
				}
				return
			}
		}
	}
	t.hungUp.Add(1)
}

func sampleDaemon(ctx context.Context, api sensorv1.SensorServiceClient, pid int) (sample, error) {
	var s sample
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := api.GetStatus(cctx, &sensorv1.GetStatusRequest{})
	if err != nil {
		return s, fmt.Errorf("GetStatus: %w", err)
	}
	s.goroutines = st.GetStatus().GetCounters()["process_goroutines"]
	s.subscribers = uint64(len(st.GetSubscribers()))
	s.ringFull = st.GetRing().GetFill() == st.GetRing().GetSize()
	s.counters = st.GetExportCounters()
	for k, v := range st.GetExportLost() {
		s.counters["lost_"+k] = v
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = uint64(len(fds))
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseUint(f[0], 10, 64)
		switch k {
		case "VmRSS":
			s.rssKiB = n
		case "Threads":
			s.threads = n
		}
	}
	return s, nil
}

// report prints the figures and the verdicts; it returns an error when a
// check fails.
func report(o options, samples []sample, t *tally, h *subscriberTally, generated uint64, stopTook time.Duration, stopErr error, sock string) error {
	w := os.Stdout
	fmt.Fprintf(w, "\nfeedsoak: %s, %d samples\n", o.duration, len(samples))
	fmt.Fprintf(w, "  generated  %d watched opens + %d opens of non-UTF-8 names = %d\n", t.generated.Load(), t.hostile.Load(), generated)
	rec, lost := h.received.Load(), h.lost.Load()
	fmt.Fprintf(w, "  healthy subscriber: received %d, reported lost %d (losses are counted for every event, not only these)\n", rec, lost)
	fmt.Fprintf(w, "  rude clients: %d subscribed, %d cut off (slow or idle), %d refused, %d hung up, %d GetStatus calls\n",
		t.connected.Load(), t.cutOff.Load(), t.refused.Load(), t.hungUp.Load(), t.statusCalls.Load())
	fmt.Fprintf(w, "  SIGTERM with a stuck client: stopped in %s (%v); socket left: %v\n", stopTook.Round(time.Millisecond), stopErr, exists(sock))

	var fails []string
	switch {
	case lost == 0 && rec != generated:
		fails = append(fails, fmt.Sprintf("received %d without any loss reported; generated %d", rec, generated))
	case rec > generated:
		fails = append(fails, fmt.Sprintf("received %d > generated %d (duplicates?)", rec, generated))
	case rec+lost < generated:
		fails = append(fails, fmt.Sprintf("received %d + lost %d < generated %d: events vanished unreported", rec, lost, generated))
	}
	h.mu.Lock()
	seen := len(h.hostileSeen)
	h.mu.Unlock()
	if want := int(t.hostile.Load() / 2); seen < want && lost == 0 {
		fails = append(fails, fmt.Sprintf("saw %d of %d non-UTF-8 names with their exact bytes", seen, want))
	}
	fmt.Fprintf(w, "  non-UTF-8 names seen with their exact bytes: %d of %d\n", seen, t.hostile.Load()/2)
	if stopErr != nil || stopTook > 10*time.Second {
		fails = append(fails, fmt.Sprintf("SIGTERM: %v after %s", stopErr, stopTook))
	}
	if exists(sock) {
		fails = append(fails, "the socket was left behind")
	}
	if n := len(samples); n > 0 {
		c := samples[n-1].counters
		fmt.Fprintf(w, "  the daemon's counts: %d slow subscribers cut off, %d idle evicted, %d refused, %d events lost to slow subscribers, %d encode errors\n",
			c["subscriber_cutoffs"], c["subscribers_evicted_idle"], c["subscribers_refused"], c["lost_subscriber"], c["encode_errors"])
	}
	// Flat: memory grows until the export ring is full of events, so compare
	// only samples taken after that: the last fifth against the first.
	var steady []sample
	for _, s := range samples {
		if s.ringFull {
			steady = append(steady, s)
		}
	}
	if len(steady) < 5 {
		fmt.Fprintf(w, "  too few samples after the export ring filled (%d) to judge growth: run longer\n", len(steady))
	} else {
		k := max(len(steady)/5, 1)
		early, late := steady[:k], steady[len(steady)-k:]
		med := func(ss []sample, f func(sample) uint64) uint64 {
			v := make([]uint64, len(ss))
			for i, s := range ss {
				v[i] = f(s)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		for _, m := range []struct {
			name  string
			f     func(sample) uint64
			slack func(uint64) uint64
		}{
			{"goroutines", func(s sample) uint64 { return s.goroutines }, func(v uint64) uint64 { return v/5 + 40 }},
			{"fds", func(s sample) uint64 { return s.fds }, func(v uint64) uint64 { return v/10 + 20 }},
			{"rss KiB", func(s sample) uint64 { return s.rssKiB }, func(v uint64) uint64 { return v / 4 }},
		} {
			a, b := med(early, m.f), med(late, m.f)
			verdict := "flat"
			if b > a+m.slack(a) {
				verdict = "GROWING"
				fails = append(fails, fmt.Sprintf("%s grew from %d to %d", m.name, a, b))
			}
			fmt.Fprintf(w, "  %-10s early median %8d, late median %8d: %s\n", m.name, a, b, verdict)
		}
	}
	if len(fails) > 0 {
		return fmt.Errorf("%d checks failed:\n  %s", len(fails), strings.Join(fails, "\n  "))
	}
	fmt.Fprintln(w, "feedsoak: PASS")
	return nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
