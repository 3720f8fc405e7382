package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kestrel-sec/kestrel/internal/event"
	"github.com/kestrel-sec/kestrel/internal/export"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

// TestDaemonFeedUnderHostileNamesAndRudeClients runs the real daemon and
// checks issue 14 end to end: readiness becomes SERVING; a file name that is
// not valid UTF-8 reaches a subscriber and --tail -o json with its exact
// bytes; clients that hang up mid-stream or never read leave no handler
// behind; SIGHUP does not kill the daemon; SIGTERM with stuck clients stops
// it within seconds, removes the socket, and the attached --tail says the
// daemon went away and exits non-zero.
func TestDaemonFeedUnderHostileNamesAndRudeClients(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	bin := buildSensor(t, dir)
	sock := filepath.Join(dir, "sensor.sock")
	// The kernel compares prefixes of at most 64 bytes: a short watched dir.
	short, err := os.MkdirTemp("/tmp", "kfeed")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	models := short + "/"
	cfg := filepath.Join(dir, "sensor.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`log_level: info
capture:
  watch_prefixes: [%q]
context:
  cri_socket: "off"
gpu:
  source: "off"
export:
  unix_socket: %s
  subscriber_deadline: 1s
`, models, sock)), 0o600)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	daemon := exec.Command(bin, "--config", cfg)
	var derr safeBuffer
	daemon.Stderr = &derr
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	defer func() {
		daemon.Process.Kill()
		<-exited
	}()

	// Readiness: SERVING once attached and serving, ready in GetStatus.
	var conn *grpc.ClientConn
	gone := false
	waitFor(t, 60*time.Second, func() bool {
		select {
		case err := <-exited:
			exited <- err
			gone = true
			return true
		default:
		}
		if _, err := os.Stat(sock); err != nil {
			return false
		}
		if conn == nil {
			conn, _ = grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		}
		r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: export.ServiceName})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
	if conn == nil || gone {
		t.Fatalf("daemon never became ready on %s\n%s", sock, derr.String())
	}
	defer conn.Close()
	api := sensorv1.NewSensorServiceClient(conn)
	st, err := api.GetStatus(ctx, &sensorv1.GetStatusRequest{})
	if err != nil || !st.GetReady() || st.GetGpu() == nil || st.GetGpu().GetEnabled() {
		t.Fatalf("GetStatus: ready=%v gpu=%v err=%v; want ready, GPU reported as disabled\n%s", st.GetReady(), st.GetGpu(), err, derr.String())
	}
	head := export.Cursor{Instance: st.GetInstanceId(), Seq: st.GetRing().GetHeadSeq()}

	// An attached --tail, and a subscriber of opens.
	tail := exec.Command(bin, "--tail", "-o", "json", "--kind", "open", "--socket", sock)
	tout, _ := tail.StdoutPipe()
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	tailExited := make(chan error, 1)
	defer tail.Process.Kill()
	var mu sync.Mutex
	var tailLines []map[string]any
	go func() {
		sc := bufio.NewScanner(tout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				mu.Lock()
				tailLines = append(tailLines, m)
				mu.Unlock()
			}
		}
		tailExited <- tail.Wait()
	}()
	c, err := export.Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var paths []string
	go c.SubscribeWith(ctx, export.Filters{Allow: []export.Filter{{Kinds: []event.Kind{event.KindOpen}}}}, &head, func(ev *event.Event) {
		if ev.File != nil {
			mu.Lock()
			paths = append(paths, ev.File.Path)
			mu.Unlock()
		}
	}, nil)
	waitFor(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(tailLines) > 0
	})

	// A name that is not valid UTF-8 (with a terminal escape in it).
	evil := models + "w\xff\xfe\x1b[2J.safetensors"
	if err := os.WriteFile(evil, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := func() (sub, tl bool) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range paths {
			sub = sub || p == evil
		}
		for _, l := range tailLines {
			if f, _ := l["file"].(map[string]any); f != nil {
				if b, _ := base64.StdEncoding.DecodeString(fmt.Sprint(f["path_b64"])); string(b) == evil {
					tl = true
				}
			}
		}
		return sub, tl
	}
	waitFor(t, 10*time.Second, func() bool { s, l := seen(); return s && l })
	if s, l := seen(); !s || !l {
		t.Fatalf("the non-UTF-8 name reached the subscriber: %v, --tail -o json with path_b64: %v\n%s", s, l, derr.String())
	}

	// Rude clients while opens flow: 30 hang up at random points, 3 never read.
	// Every open is of a new file (a new inode): the kernel counts repeated
	// opens of one file by one process within capture.open_repeat_window
	// instead of reporting each, and the rude clients need a flow.
	stopOpens := make(chan struct{})
	var opens sync.WaitGroup
	opens.Add(1)
	go func() {
		defer opens.Done()
		for i := 0; ; i++ {
			select {
			case <-stopOpens:
				return
			default:
			}
			name := filepath.Join(models, fmt.Sprintf("x-%d.safetensors", i))
			if os.WriteFile(name, nil, 0o644) == nil {
				if f, err := os.Open(name); err == nil {
					f.Close()
				}
				os.Remove(name)
			}
		}
	}()
	defer func() { close(stopOpens); opens.Wait() }()
	var rude sync.WaitGroup
	for i := 0; i < 30; i++ {
		rude.Add(1)
		go func() {
			defer rude.Done()
			rc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return
			}
			defer rc.Close()
			// Bounded, so a flow that stalls fails the count below
			// rather than eating the test's whole deadline.
			sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
			defer scancel()
			s, err := sensorv1.NewSensorServiceClient(rc).Subscribe(sctx, &sensorv1.SubscribeRequest{})
			if err != nil {
				return
			}
			for j := 0; j < i*10; j++ {
				if _, err := s.Recv(); err != nil {
					return
				}
			}
		}()
	}
	for i := 0; i < 3; i++ {
		rc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := sensorv1.NewSensorServiceClient(rc).Subscribe(ctx, &sensorv1.SubscribeRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	rude.Wait()
	// The hung-up ones are gone; the stuck ones are cut off after the 1s
	// subscriber deadline. Left: our subscriber and --tail.
	var subs int
	waitFor(t, 15*time.Second, func() bool {
		st, err := api.GetStatus(ctx, &sensorv1.GetStatusRequest{})
		subs = len(st.GetSubscribers())
		return err == nil && subs == 2
	})
	if subs != 2 {
		t.Fatalf("%d subscribers after the rude clients left; want 2 (ours and --tail)", subs)
	}

	// SIGHUP reloads; the daemon stays.
	if err := daemon.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(derr.String(), "SIGHUP") })
	if _, err := api.GetStatus(ctx, &sensorv1.GetStatusRequest{}); err != nil {
		t.Fatalf("GetStatus after SIGHUP: %v\n%s", err, derr.String())
	}

	// Three more that never read, then SIGTERM.
	for i := 0; i < 3; i++ {
		rc, _ := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
		defer rc.Close()
		sensorv1.NewSensorServiceClient(rc).Subscribe(ctx, &sensorv1.SubscribeRequest{})
	}
	start := time.Now()
	if err := daemon.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("daemon exit after SIGTERM: %v\n%s", err, derr.String())
		}
		t.Logf("daemon stopped %s after SIGTERM with stuck clients", time.Since(start).Round(time.Millisecond))
	case <-time.After(8 * time.Second):
		t.Fatalf("daemon still running 8s after SIGTERM\n%s", derr.String())
	}
	exited <- nil // for the deferred Kill/wait
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after shutdown: %v; want it removed", err)
	}
	select {
	case err := <-tailExited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("--tail exit: %v; want exit code 1", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--tail still running 10s after the daemon stopped")
	}
	mu.Lock()
	last := tailLines[len(tailLines)-1]
	mu.Unlock()
	if last["kind"] != "status" || last["ready"] != false {
		t.Errorf("--tail's last line %v; want a status line saying the daemon went away", last)
	}
}
