// Package cri asks the container runtime, over the Kubernetes Container
// Runtime Interface (k8s.io/cri-api runtime.v1 RuntimeService on a unix
// socket), which pod a container belongs to: pod name, namespace and UID,
// container name, image and pod labels.
//
// Lookups never block the caller: Get answers from a TTL cache and queues a
// background request on a miss; the answer arrives through Options.OnUpdate.
// The client survives the socket being absent, slow (every call has a
// timeout) or restarted (gRPC reconnects with a short back-off).
package cri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Kubernetes labels the kubelet puts on every CRI container.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
)

// Meta is what the runtime says about one container.
type Meta struct {
	ID string
	// Found is false when the runtime does not know the container.
	Found        bool
	Name         string
	Image        string
	PodName      string
	PodNamespace string
	PodUID       string
	SandboxID    string
	// Labels are the pod's labels (shared; do not modify).
	Labels map[string]string
}

// Options configure a Client. Zero values get defaults.
type Options struct {
	// Socket is the runtime's CRI socket path.
	Socket string
	// Timeout bounds each CRI call (default 2s).
	Timeout time.Duration
	// TTL is how long an answer is reused (default 1m).
	TTL time.Duration
	// OnUpdate is called, from the client's goroutine, with every new or
	// changed answer. It must not block for long.
	OnUpdate func(Meta)
	// QueueSize bounds pending requests (default 1024); requests beyond
	// it are dropped and counted, and asked again on a later Get.
	QueueSize int
	// MaxEntries bounds the cache (default 16384).
	MaxEntries int
	Logger     *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Client is a caching, non-blocking CRI client.
//
// It is safe for concurrent use.
type Client struct {
	opts  Options
	conn  *grpc.ClientConn
	rs    runtimeapi.RuntimeServiceClient
	queue chan string

	mu      sync.Mutex
	cache   map[string]*cached
	pending map[string]bool

	runtimeName atomic.Pointer[string]
	wg          sync.WaitGroup
	closeOnce   sync.Once
	stop        chan struct{}

	requests, hits, misses, errs, timeouts, dropped, notFound, lists atomic.Uint64
}

type cached struct {
	meta Meta
	at   time.Time
	// failed entries are retried sooner than TTL.
	failed bool
}

// DetectSocket returns the first of candidates that is a unix socket, or "".
func DetectSocket(candidates []string) string {
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return p
		}
	}
	return ""
}

// New returns a Client for opts.Socket. It does not connect yet: the
// connection is made, and remade, in the background as calls need it.
func New(opts *Options) (*Client, error) {
	c := &Client{cache: map[string]*cached{}, pending: map[string]bool{}, stop: make(chan struct{})}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.Socket == "" {
		return nil, errors.New("create CRI client: no socket path")
	}
	if c.opts.Timeout <= 0 {
		c.opts.Timeout = 2 * time.Second
	}
	if c.opts.TTL <= 0 {
		c.opts.TTL = time.Minute
	}
	if c.opts.QueueSize <= 0 {
		c.opts.QueueSize = 1024
	}
	if c.opts.MaxEntries <= 0 {
		c.opts.MaxEntries = 16384
	}
	if c.opts.Logger == nil {
		c.opts.Logger = slog.Default()
	}
	if c.opts.Now == nil {
		c.opts.Now = time.Now
	}
	socket := c.opts.Socket
	conn, err := grpc.NewClient("passthrough:///cri",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}),
		// A restarted runtime should be found again within seconds, not
		// after gRPC's default two-minute back-off.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: c.opts.Timeout,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
	)
	if err != nil {
		return nil, fmt.Errorf("create CRI client for %s: %w", socket, err)
	}
	c.conn = conn
	c.rs = runtimeapi.NewRuntimeServiceClient(conn)
	c.queue = make(chan string, c.opts.QueueSize)
	return c, nil
}

// Socket returns the socket path the client talks to.
func (c *Client) Socket() string { return c.opts.Socket }

// Start runs the background worker until ctx is done or Close is called:
// it asks the runtime's name, lists every container once, answers queued
// requests and re-lists every TTL.
func (c *Client) Start(ctx context.Context) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.run(ctx)
	}()
}

// Close stops the worker and closes the connection.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.stop)
		c.wg.Wait()
		err = c.conn.Close()
	})
	return err
}

// RuntimeName returns the runtime's name as its Version call reported it
// ("containerd", "cri-o"), or "" before the first answer.
func (c *Client) RuntimeName() string {
	if p := c.runtimeName.Load(); p != nil {
		return *p
	}
	return ""
}

// Get returns the cached answer for container id. A miss, or an answer
// older than TTL, queues a background request; the caller never waits.
func (c *Client) Get(id string) (Meta, bool) {
	now := c.opts.Now()
	c.mu.Lock()
	e := c.cache[id]
	fresh := e != nil && !c.staleLocked(e, now)
	c.mu.Unlock()
	if !fresh {
		c.Request(id)
	}
	if e == nil || e.failed {
		c.misses.Add(1)
		return Meta{ID: id}, false
	}
	c.hits.Add(1)
	return e.meta, true
}

func (c *Client) staleLocked(e *cached, now time.Time) bool {
	ttl := c.opts.TTL
	if e.failed {
		ttl = min(ttl, 2*time.Second)
	}
	return now.Sub(e.at) >= ttl
}

// Request queues a background lookup of id, unless one is pending.
func (c *Client) Request(id string) {
	c.mu.Lock()
	if c.pending[id] {
		c.mu.Unlock()
		return
	}
	c.pending[id] = true
	c.mu.Unlock()
	select {
	case c.queue <- id:
	default:
		c.dropped.Add(1)
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
}

func (c *Client) run(ctx context.Context) {
	c.version(ctx)
	c.listAll(ctx)
	tick := time.NewTicker(c.opts.TTL)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.stop:
			return
		case id := <-c.queue:
			if c.RuntimeName() == "" {
				c.version(ctx)
			}
			c.lookup(ctx, id)
			c.mu.Lock()
			delete(c.pending, id)
			c.mu.Unlock()
		case <-tick.C:
			if c.RuntimeName() == "" {
				c.version(ctx)
			}
			c.listAll(ctx)
		}
	}
}

func (c *Client) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.Timeout)
}

func (c *Client) noteErr(op string, err error) {
	c.errs.Add(1)
	if status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) {
		c.timeouts.Add(1)
	}
	c.opts.Logger.Debug("CRI call failed", "op", op, "socket", c.opts.Socket, "err", err)
}

func (c *Client) version(ctx context.Context) {
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	c.requests.Add(1)
	v, err := c.rs.Version(cctx, &runtimeapi.VersionRequest{})
	if err != nil {
		c.noteErr("Version", err)
		return
	}
	name := NormalizeRuntime(v.GetRuntimeName())
	c.runtimeName.Store(&name)
}

// NormalizeRuntime maps a CRI RuntimeName to the event.Container.Runtime
// vocabulary.
func NormalizeRuntime(name string) string {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "containerd"):
		return "containerd"
	case strings.Contains(n, "cri-o") || n == "crio":
		return "cri-o"
	case strings.Contains(n, "docker"):
		return "docker"
	case strings.Contains(n, "podman"):
		return "podman"
	case n == "":
		return ""
	}
	return n
}

// listAll refreshes the whole cache with two calls.
func (c *Client) listAll(ctx context.Context) {
	c.lists.Add(1)
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	c.requests.Add(2)
	pods, err := c.rs.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		c.noteErr("ListPodSandbox", err)
		return
	}
	ctrs, err := c.rs.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		c.noteErr("ListContainers", err)
		return
	}
	byID := make(map[string]*runtimeapi.PodSandbox, len(pods.GetItems()))
	for _, p := range pods.GetItems() {
		byID[p.GetId()] = p
	}
	statusBudget := maxStatusPerList
	for _, ct := range ctrs.GetContainers() {
		m := metaOf(ct.GetId(), ct.GetPodSandboxId(), ct.GetMetadata().GetName(),
			imageName(ct.GetImage().GetImage(), ct.GetImageRef()), ct.GetLabels())
		if p := byID[ct.GetPodSandboxId()]; p != nil {
			withPod(&m, p.GetMetadata(), p.GetLabels())
		}
		if m.Image == "" || strings.HasPrefix(m.Image, "sha256:") {
			// Lists carry only the image id (containerd); the status
			// names the image. Reuse a name already known.
			c.mu.Lock()
			old := c.cache[m.ID]
			c.mu.Unlock()
			switch {
			case old != nil && old.meta.Image != "" && !strings.HasPrefix(old.meta.Image, "sha256:"):
				m.Image = old.meta.Image
			case statusBudget > 0:
				statusBudget--
				m.Image = c.statusImage(ctx, m.ID, m.Image)
			}
		}
		c.store(m, false)
	}
}

// maxStatusPerList bounds the ContainerStatus calls one listing makes.
const maxStatusPerList = 256

// statusImage asks ContainerStatus for the image name of id.
func (c *Client) statusImage(ctx context.Context, id, fallback string) string {
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	c.requests.Add(1)
	st, err := c.rs.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		c.noteErr("ContainerStatus", err)
		return fallback
	}
	if img := imageName(st.GetStatus().GetImage().GetImage(), st.GetStatus().GetImageRef()); img != "" {
		return img
	}
	return fallback
}

// lookup asks about one container: its status (image, labels) and its pod.
func (c *Client) lookup(ctx context.Context, id string) {
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	c.requests.Add(1)
	lc, err := c.rs.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: id}})
	if err != nil {
		c.noteErr("ListContainers", err)
		c.store(Meta{ID: id}, true)
		return
	}
	var ct *runtimeapi.Container
	for _, x := range lc.GetContainers() {
		if x.GetId() == id {
			ct = x
		}
	}
	if ct == nil {
		c.notFound.Add(1)
		c.store(Meta{ID: id}, false)
		return
	}
	m := metaOf(id, ct.GetPodSandboxId(), ct.GetMetadata().GetName(),
		imageName(ct.GetImage().GetImage(), ct.GetImageRef()), ct.GetLabels())
	c.requests.Add(1)
	if st, err := c.rs.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: id}); err != nil {
		c.noteErr("ContainerStatus", err)
	} else if s := st.GetStatus(); s != nil {
		// The status carries the image as the user named it; the list
		// may carry only the image id.
		if img := imageName(s.GetImage().GetImage(), s.GetImageRef()); img != "" {
			m.Image = img
		}
	}
	if m.SandboxID != "" {
		c.requests.Add(1)
		ps, err := c.rs.PodSandboxStatus(cctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: m.SandboxID})
		if err != nil {
			c.noteErr("PodSandboxStatus", err)
		} else if s := ps.GetStatus(); s != nil {
			withPod(&m, s.GetMetadata(), s.GetLabels())
		}
	}
	c.store(m, false)
}

func metaOf(id, sandbox, name, image string, labels map[string]string) Meta {
	m := Meta{ID: id, Found: true, SandboxID: sandbox, Name: name, Image: image}
	if m.Name == "" {
		m.Name = labels[LabelContainerName]
	}
	m.PodName = labels[LabelPodName]
	m.PodNamespace = labels[LabelPodNamespace]
	m.PodUID = labels[LabelPodUID]
	return m
}

func withPod(m *Meta, md *runtimeapi.PodSandboxMetadata, labels map[string]string) {
	if md != nil {
		if md.GetName() != "" {
			m.PodName = md.GetName()
		}
		if md.GetNamespace() != "" {
			m.PodNamespace = md.GetNamespace()
		}
		if md.GetUid() != "" {
			m.PodUID = md.GetUid()
		}
	}
	if len(labels) > 0 {
		m.Labels = labels
	}
}

// imageName prefers the image as named over a bare image id.
func imageName(image, ref string) string {
	if image != "" && !strings.HasPrefix(image, "sha256:") {
		return image
	}
	if ref != "" {
		return ref
	}
	return image
}

func (c *Client) store(m Meta, failed bool) {
	now := c.opts.Now()
	c.mu.Lock()
	old := c.cache[m.ID]
	if failed && old != nil && !old.failed {
		// Keep serving the last good answer while the runtime is away.
		old.at = now.Add(-c.opts.TTL + 2*time.Second)
		c.mu.Unlock()
		return
	}
	if old == nil && len(c.cache) >= c.opts.MaxEntries {
		c.evictLocked(now)
	}
	c.cache[m.ID] = &cached{meta: m, at: now, failed: failed}
	changed := !failed && (old == nil || old.failed || !sameMeta(old.meta, m))
	c.mu.Unlock()
	if changed && c.opts.OnUpdate != nil {
		c.opts.OnUpdate(m)
	}
}

// evictLocked drops stale entries, or everything if none is stale.
func (c *Client) evictLocked(now time.Time) {
	n := 0
	for id, e := range c.cache {
		if c.staleLocked(e, now) {
			delete(c.cache, id)
			n++
		}
	}
	if n == 0 {
		clear(c.cache)
	}
}

func sameMeta(a, b Meta) bool {
	if a.ID != b.ID || a.Found != b.Found || a.Name != b.Name || a.Image != b.Image || a.PodName != b.PodName ||
		a.PodNamespace != b.PodNamespace || a.PodUID != b.PodUID || a.SandboxID != b.SandboxID || len(a.Labels) != len(b.Labels) {
		return false
	}
	for k, v := range a.Labels {
		if b.Labels[k] != v {
			return false
		}
	}
	return true
}

// Counters returns request, cache and error counts.
func (c *Client) Counters() map[string]uint64 {
	return map[string]uint64{
		"cri_requests":  c.requests.Load(),
		"cri_hits":      c.hits.Load(),
		"cri_misses":    c.misses.Load(),
		"cri_errors":    c.errs.Load(),
		"cri_timeouts":  c.timeouts.Load(),
		"cri_dropped":   c.dropped.Load(),
		"cri_not_found": c.notFound.Load(),
		"cri_lists":     c.lists.Load(),
	}
}
