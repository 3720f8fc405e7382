package gpu

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/kestrel-sec/kestrel/internal/config"
)

// fakeKubelet serves the real PodResourcesLister API on a unix socket.
type fakeKubelet struct {
	podresourcesv1.UnimplementedPodResourcesListerServer

	mu    sync.Mutex
	pods  []*podresourcesv1.PodResources
	calls int

	srv *grpc.Server
}

func (k *fakeKubelet) List(context.Context, *podresourcesv1.ListPodResourcesRequest) (*podresourcesv1.ListPodResourcesResponse, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	return &podresourcesv1.ListPodResourcesResponse{PodResources: k.pods}, nil
}

// startKubelet serves pods on socket until stop is called (or the test ends).
func startKubelet(t *testing.T, socket string, pods ...*podresourcesv1.PodResources) *fakeKubelet {
	t.Helper()
	os.Remove(socket) // a restarted kubelet replaces its socket
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatalf("listen on %s: %v", socket, err)
	}
	k := &fakeKubelet{pods: pods, srv: grpc.NewServer()}
	podresourcesv1.RegisterPodResourcesListerServer(k.srv, k)
	go k.srv.Serve(l)
	t.Cleanup(k.stop)
	return k
}

func (k *fakeKubelet) stop() { k.srv.Stop() }

func pod(ns, name string, containers ...*podresourcesv1.ContainerResources) *podresourcesv1.PodResources {
	return &podresourcesv1.PodResources{Namespace: ns, Name: name, Containers: containers}
}

func ctr(name string, devs ...*podresourcesv1.ContainerDevices) *podresourcesv1.ContainerResources {
	return &podresourcesv1.ContainerResources{Name: name, Devices: devs}
}

func devs(resource string, ids ...string) *podresourcesv1.ContainerDevices {
	return &podresourcesv1.ContainerDevices{ResourceName: resource, DeviceIds: ids}
}

func assignerConfig(socket string) config.GPUConfig {
	c := config.Default().GPU
	c.PodResourcesSocket = socket
	c.PodResourcesRefresh = config.Duration(50 * time.Millisecond)
	return c
}

func TestPodResourcesAssignments(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "kubelet.sock")
	startKubelet(t, socket,
		pod("ml", "llama-0",
			ctr("infer",
				devs("nvidia.com/gpu", "GPU-aaaa", "GPU-bbbb"),
				devs("example.com/fpga", "fpga-0")),
			ctr("sidecar"),
			ctr("warmup", devs("nvidia.com/gpu", "GPU-bbbb", "GPU-dddd")),
		),
		pod("ml", "mig-pod",
			ctr("worker", devs("nvidia.com/mig-1g.10gb", "MIG-1111"), devs("nvidia.com/mig-2g.20gb", "MIG-2222"))),
		pod("shared", "ts-pod",
			ctr("a", devs("nvidia.com/gpu.shared", "GPU-cccc::0", "GPU-cccc::3"))),
		pod("other", "cpu-only", ctr("main", devs("cpu", "1", "2"))),
	)
	resolver := map[string]podRef{"uid-mig": {"ml", "mig-pod"}}
	a, err := NewAssigner(assignerConfig(socket), &AssignerOptions{
		PodName: func(uid string) (string, string, bool) {
			r, ok := resolver[uid]
			return r.namespace, r.name, ok
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	a.RememberPod("uid-llama", "ml", "llama-0")

	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"whole GPUs", a.GPUsForPod("ml", "llama-0", "infer"), []string{"GPU-aaaa", "GPU-bbbb"}},
		{"container without GPUs", a.GPUsForPod("ml", "llama-0", "sidecar"), nil},
		{"whole pod: union over containers", a.GPUsForPod("ml", "llama-0", ""), []string{"GPU-aaaa", "GPU-bbbb", "GPU-dddd"}},
		{"whole pod by UID", a.GPUsFor("uid-llama", ""), []string{"GPU-aaaa", "GPU-bbbb", "GPU-dddd"}},
		{"MIG slices of two profiles", a.GPUsForPod("ml", "mig-pod", "worker"), []string{"MIG-1111", "MIG-2222"}},
		{"time-sliced replicas collapse to one UUID", a.GPUsForPod("shared", "ts-pod", "a"), []string{"GPU-cccc"}},
		{"non-GPU devices ignored", a.GPUsForPod("other", "cpu-only", "main"), nil},
		{"unknown pod", a.GPUsForPod("ml", "nope", "infer"), nil},
		{"wrong namespace", a.GPUsForPod("default", "llama-0", "infer"), nil},
		{"by UID, remembered", a.GPUsFor("uid-llama", "infer"), []string{"GPU-aaaa", "GPU-bbbb"}},
		{"by UID, resolved", a.GPUsFor("uid-mig", "worker"), []string{"MIG-1111", "MIG-2222"}},
		{"by unknown UID", a.GPUsFor("uid-unknown", "infer"), nil},
	}
	for _, tt := range tests {
		if fmt.Sprint(tt.got) != fmt.Sprint(tt.want) || (tt.want == nil) != (tt.got == nil) {
			t.Errorf("%s: got %q; want %q", tt.name, tt.got, tt.want)
		}
	}
	if st := a.Stats(); st.Refreshes != 1 || st.Errors != 0 || st.Containers != 4 {
		t.Errorf("Stats: got %+v; want 1 refresh, 0 errors, 4 containers", st)
	}

	// The caller owns the returned slice.
	got := a.GPUsForPod("ml", "llama-0", "infer")
	got[0] = "mutated"
	if again := a.GPUsForPod("ml", "llama-0", "infer"); again[0] != "GPU-aaaa" {
		t.Errorf("cache changed through a returned slice: %q", again)
	}
}

func TestPodResourcesSocketAbsentThenRestarted(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "kubelet.sock")
	a, err := NewAssigner(assignerConfig(socket), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()

	if err := a.Refresh(ctx); err == nil {
		t.Fatal("Refresh with no socket: got nil; want an error")
	}
	if st := a.Stats(); st.Errors != 1 || st.LastError == "" {
		t.Errorf("Stats after a failure: got %+v; want 1 error with its message", st)
	}

	k := startKubelet(t, socket, pod("ml", "p", ctr("c", devs("nvidia.com/gpu", "GPU-1"))))
	if err := a.Refresh(ctx); err != nil {
		t.Fatalf("Refresh once the kubelet is up: %v", err)
	}
	if got := a.GPUsForPod("ml", "p", "c"); fmt.Sprint(got) != "[GPU-1]" {
		t.Fatalf("got %q; want [GPU-1]", got)
	}

	// Kubelet goes away: the last assignments stand.
	k.stop()
	if err := a.Refresh(ctx); err == nil {
		t.Fatal("Refresh with the kubelet down: got nil; want an error")
	}
	if got := a.GPUsForPod("ml", "p", "c"); fmt.Sprint(got) != "[GPU-1]" {
		t.Fatalf("kubelet down: got %q; want the cached [GPU-1]", got)
	}

	// Kubelet comes back with a new socket and new assignments.
	startKubelet(t, socket, pod("ml", "p", ctr("c", devs("nvidia.com/gpu", "GPU-2"))))
	if err := a.Refresh(ctx); err != nil {
		t.Fatalf("Refresh after the kubelet restarted: %v", err)
	}
	if got := a.GPUsForPod("ml", "p", "c"); fmt.Sprint(got) != "[GPU-2]" {
		t.Fatalf("after restart: got %q; want [GPU-2]", got)
	}
	if st := a.Stats(); st.LastError != "" || st.Refreshes != 2 || st.Errors != 2 {
		t.Errorf("Stats: got %+v; want 2 refreshes, 2 errors, no last error", st)
	}
}

func TestAssignerRunPicksUpLateKubelet(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "kubelet.sock")
	a, err := NewAssigner(assignerConfig(socket), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	// A few failed refreshes first.
	deadline := time.Now().Add(5 * time.Second)
	for a.Stats().Errors < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no failed refreshes within 5s; stats %+v", a.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	k := startKubelet(t, socket, pod("ml", "late", ctr("c", devs("nvidia.com/gpu", "GPU-late"))))
	deadline = time.Now().Add(5 * time.Second)
	for a.GPUsForPod("ml", "late", "c") == nil {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not pick up the kubelet within 5s; stats %+v", a.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: got %v; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	k.mu.Lock()
	calls := k.calls
	k.mu.Unlock()
	if calls == 0 {
		t.Error("the kubelet was never asked")
	}
	if a.Stats().Errors == 0 {
		t.Error("no failed refresh counted before the kubelet appeared")
	}
}

func TestAssignerNoSocket(t *testing.T) {
	cfg := config.Default().GPU
	cfg.PodResourcesSocket = ""
	a, err := NewAssigner(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := a.Run(ctx); err != nil || time.Since(start) > time.Second {
		t.Errorf("Run without a socket: got %v after %s; want nil at once", err, time.Since(start))
	}
	if a.GPUsForPod("a", "b", "c") != nil {
		t.Error("assignments without a kubelet")
	}
}

func TestStaticAlloc(t *testing.T) {
	cfg := config.Default().GPU
	cfg.StaticAlloc = map[string][]int{
		"^/simctr-infer-":                       {0},
		"^/simctr-(sidecar|nogpu|build|agent)-": {},
		"^/multi/":                              {1, 3},
		"^/multi/b":                             {2},
	}
	a, err := NewAssigner(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path   string
		want   []int
		wantOK bool
	}{
		{"/simctr-infer-1a2b", []int{0}, true},
		{"/simctr-sidecar-7", []int{}, true},
		{"/simctr-agent-x", []int{}, true},
		{"/system.slice/sshd.service", nil, false},
		{"/x/simctr-infer-1", nil, false},
		{"/multi/a", []int{1, 3}, true},
		{"/multi/b", []int{1, 3}, true}, // lexically first pattern wins
		{"", nil, false},
	}
	for _, tt := range tests {
		got, ok := a.StaticAlloc(tt.path)
		if ok != tt.wantOK || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("StaticAlloc(%q): got %v, %v; want %v, %v", tt.path, got, ok, tt.want, tt.wantOK)
		}
	}
	got, _ := a.StaticAlloc("/multi/a")
	got[0] = 99
	if again, _ := a.StaticAlloc("/multi/a"); again[0] != 1 {
		t.Error("static table changed through a returned slice")
	}
}

func TestNewAssignerBadPattern(t *testing.T) {
	cfg := config.Default().GPU
	cfg.StaticAlloc = map[string][]int{"^/x(": {0}}
	if _, err := NewAssigner(cfg, nil); err == nil {
		t.Fatal("got nil; want an error naming the pattern")
	}
}

func TestNilAssigner(t *testing.T) {
	var a *Assigner
	if a.GPUsFor("u", "c") != nil || a.GPUsForPod("n", "p", "c") != nil {
		t.Error("nil Assigner returned GPUs")
	}
	if _, ok := a.StaticAlloc("/x"); ok {
		t.Error("nil Assigner matched a static pattern")
	}
	if err := a.Run(context.Background()); err != nil {
		t.Errorf("nil Assigner Run: %v", err)
	}
}

// syncBuffer is a log sink safe for the Run goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAssignerRunLogsStateChangesOnce(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T, socket string)
		wantLevel string
	}{
		// Not a Kubernetes node: debug only.
		{"socket absent", func(*testing.T, string) {}, "level=DEBUG"},
		// A socket nobody answers on: a warning, once.
		{"socket dead", func(t *testing.T, socket string) {
			if err := os.WriteFile(socket, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "level=WARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket := filepath.Join(t.TempDir(), "kubelet.sock")
			tt.setup(t, socket)
			var buf syncBuffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			a, err := NewAssigner(assignerConfig(socket), &AssignerOptions{Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			deadline := time.Now().Add(5 * time.Second)
			for a.Stats().Errors < 4 {
				if time.Now().After(deadline) {
					t.Fatal("fewer than 4 refreshes in 5s")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if tt.name == "socket dead" {
				os.Remove(socket)
				startKubelet(t, socket)
				for a.Stats().LastError != "" {
					if time.Now().After(deadline) {
						t.Fatal("no recovery within 5s")
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			cancel()
			<-done

			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			fails := 0
			for _, l := range lines {
				if strings.Contains(l, "pod-resources") && !strings.Contains(l, "reachable again") {
					fails++
					if !strings.Contains(l, tt.wantLevel) {
						t.Errorf("got %q; want %s", l, tt.wantLevel)
					}
				}
			}
			if fails != 1 {
				t.Errorf("got %d failure lines over %d failed refreshes; want 1:\n%s", fails, a.Stats().Errors, buf.String())
			}
			if tt.name == "socket dead" && !strings.Contains(buf.String(), "reachable again") {
				t.Errorf("no recovery line:\n%s", buf.String())
			}
		})
	}
}
