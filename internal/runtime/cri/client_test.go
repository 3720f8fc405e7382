package cri

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kestrel-sec/kestrel/internal/runtime/cri/critest"
)

const (
	ctrID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	podID = "aaaabbbbccccddddaaaabbbbccccddddaaaabbbbccccddddaaaabbbbccccdddd"
	uid   = "0e6c4ba8-5b31-4a3e-9f55-2c8b1b8e2f11"
)

func fakeRuntime(t *testing.T, sock string) *critest.Runtime {
	t.Helper()
	rt := critest.New(sock, "containerd")
	rt.AddPod(critest.Pod{ID: podID, Name: "vllm-0", Namespace: "inference", UID: uid, Labels: map[string]string{"app": "vllm"}})
	rt.AddContainer(critest.Container{ID: ctrID, PodID: podID, Name: "server", Image: "docker.io/vllm/vllm-openai:v0.6.0", ImageID: "sha256:5f1e"})
	return rt
}

// updates collects OnUpdate calls.
type updates struct {
	mu sync.Mutex
	m  map[string]Meta
}

func (u *updates) on(m Meta) { u.mu.Lock(); u.m[m.ID] = m; u.mu.Unlock() }
func (u *updates) get(id string) (Meta, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	m, ok := u.m[id]
	return m, ok
}

func newClient(t *testing.T, sock string, timeout time.Duration) (*Client, *updates) {
	t.Helper()
	u := &updates{m: map[string]Meta{}}
	c, err := New(&Options{Socket: sock, Timeout: timeout, TTL: time.Minute, OnUpdate: u.on})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.Start(ctx)
	t.Cleanup(func() { cancel(); _ = c.Close() })
	return c, u
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func checkMeta(t *testing.T, m Meta) {
	t.Helper()
	want := Meta{ID: ctrID, Found: true, Name: "server", Image: "docker.io/vllm/vllm-openai:v0.6.0",
		PodName: "vllm-0", PodNamespace: "inference", PodUID: uid, SandboxID: podID}
	labels := m.Labels
	m.Labels = nil
	if !sameMeta(m, want) {
		t.Errorf("meta %+v; want %+v", m, want)
	}
	if labels["app"] != "vllm" {
		t.Errorf("pod labels %v; want app=vllm", labels)
	}
}

func TestClientLookup(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	rt := fakeRuntime(t, sock)
	if err := rt.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Stop)
	c, u := newClient(t, sock, time.Second)
	// The first listing fills the cache without any Get.
	waitFor(t, "first listing", 5*time.Second, func() bool { _, ok := u.get(ctrID); return ok })
	m, ok := c.Get(ctrID)
	if !ok {
		t.Fatal("Get after listing: miss")
	}
	checkMeta(t, m)
	if c.RuntimeName() != "containerd" {
		t.Errorf("runtime %q; want containerd", c.RuntimeName())
	}
	// A container created later is looked up on demand.
	const id2 = "1111111111111111111111111111111111111111111111111111111111111111"
	rt.AddContainer(critest.Container{ID: id2, PodID: podID, Name: "sidecar", Image: "busybox:1.36", ImageID: "sha256:77"})
	if _, ok := c.Get(id2); ok {
		t.Fatal("Get of a new container answered synchronously")
	}
	waitFor(t, "on-demand lookup", 5*time.Second, func() bool { m, ok := u.get(id2); return ok && m.Image == "busybox:1.36" })
	// An unknown id is a negative answer, not an error.
	c.Get("feedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeedfeed")
	waitFor(t, "not found", 5*time.Second, func() bool { return c.Counters()["cri_not_found"] == 1 })
	if n := c.Counters()["cri_errors"]; n != 0 {
		t.Errorf("cri_errors %d; want 0", n)
	}
}

// TestClientSocketAbsentThenRestarted: the runtime is not there at first,
// Get never blocks, and once the runtime comes up the client finds it.
func TestClientSocketAbsentThenRestarted(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	c, u := newClient(t, sock, 300*time.Millisecond)
	start := time.Now()
	for i := 0; i < 100; i++ {
		if _, ok := c.Get(ctrID); ok {
			t.Fatal("answer without a runtime")
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("100 Gets took %s with the socket absent; want non-blocking", d)
	}
	waitFor(t, "errors counted", 5*time.Second, func() bool { return c.Counters()["cri_errors"] > 0 })

	rt := fakeRuntime(t, sock)
	if err := rt.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Stop)
	waitFor(t, "answer after the runtime came up", 10*time.Second, func() bool {
		c.Get(ctrID)
		_, ok := u.get(ctrID)
		return ok
	})
	m, _ := u.get(ctrID)
	checkMeta(t, m)

	// Restart: while the runtime is down the last answer is still served;
	// a container created meanwhile is found after it is back.
	rt.Stop()
	const id2 = "2222222222222222222222222222222222222222222222222222222222222222"
	rt.AddContainer(critest.Container{ID: id2, PodID: podID, Name: "late", Image: "late:1", ImageID: "sha256:88"})
	if m, ok := c.Get(ctrID); !ok || m.PodName != "vllm-0" {
		t.Errorf("during restart: Get = %+v, %v; want the cached answer", m, ok)
	}
	c.Get(id2)
	time.Sleep(300 * time.Millisecond)
	if err := rt.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "answer after restart", 10*time.Second, func() bool {
		c.Get(id2)
		m, ok := u.get(id2)
		return ok && m.Image == "late:1"
	})
}

// TestClientSlowRuntime: calls that outlast the timeout are abandoned and
// counted, Get stays non-blocking, and answers come once the runtime is
// fast again.
func TestClientSlowRuntime(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	rt := fakeRuntime(t, sock)
	rt.SetDelay(2 * time.Second)
	if err := rt.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Stop)
	c, u := newClient(t, sock, 200*time.Millisecond)
	start := time.Now()
	if _, ok := c.Get(ctrID); ok {
		t.Fatal("answer from a runtime that has not answered")
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("Get took %s; want non-blocking", d)
	}
	waitFor(t, "timeouts counted", 5*time.Second, func() bool { return c.Counters()["cri_timeouts"] > 0 })
	rt.SetDelay(0)
	waitFor(t, "answer once fast", 10*time.Second, func() bool {
		c.Get(ctrID)
		_, ok := u.get(ctrID)
		return ok
	})
}

func TestClientQueueBounded(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	c, err := New(&Options{Socket: sock, QueueSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Not started: nothing drains the queue.
	for _, id := range []string{"a", "b", "c", "d", "a"} {
		c.Request(id)
	}
	if n := c.Counters()["cri_dropped"]; n != 2 {
		t.Errorf("dropped %d; want 2 (queue of 2, 4 distinct ids, 1 duplicate)", n)
	}
}

func TestNormalizeRuntimeAndDetect(t *testing.T) {
	for in, want := range map[string]string{"containerd": "containerd", "cri-o": "cri-o", "CRI-O": "cri-o", "docker": "docker", "": "", "youki": "youki"} {
		if got := NormalizeRuntime(in); got != want {
			t.Errorf("NormalizeRuntime(%q) = %q; want %q", in, got, want)
		}
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "x.sock")
	rt := critest.New(sock, "cri-o")
	if err := rt.Start(); err != nil {
		t.Fatal(err)
	}
	defer rt.Stop()
	if got := DetectSocket([]string{filepath.Join(dir, "none.sock"), dir, sock}); got != sock {
		t.Errorf("DetectSocket = %q; want %q", got, sock)
	}
	if got := DetectSocket([]string{filepath.Join(dir, "none.sock")}); got != "" {
		t.Errorf("DetectSocket = %q; want \"\"", got)
	}
	if _, err := New(&Options{}); err == nil {
		t.Error("New without a socket: no error")
	}
}
