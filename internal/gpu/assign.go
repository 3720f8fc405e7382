package gpu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/kestrel-sec/kestrel/internal/config"
)

// Limits of the Assigner.
const (
	// podResourcesMaxMsg is the largest List answer accepted; the kubelet's
	// own client allows 16 MiB, a node with hundreds of pods stays far below.
	podResourcesMaxMsg = 16 << 20
	// podResourcesTimeout bounds one List call.
	podResourcesTimeout = 5 * time.Second
	// maxRememberedPods bounds the pod UID -> name table of RememberPod.
	maxRememberedPods = 4096
)

// AssignerOptions are the optional arguments of NewAssigner. A nil
// *AssignerOptions is valid.
type AssignerOptions struct {
	// Logger receives connection state changes; nil means slog.Default().
	Logger *slog.Logger
	// PodName resolves a pod UID to its namespace and name. GPUsFor needs it
	// because PodResources names pods, not UIDs; the CRI client of the
	// enricher knows both. Nil means only RememberPod feeds the lookup.
	PodName func(podUID string) (namespace, name string, ok bool)
}

// AssignerStats counts what an Assigner did.
type AssignerStats struct {
	// Refreshes counts successful List calls.
	Refreshes uint64
	// Errors counts failed List calls; the previous assignments were kept.
	Errors uint64
	// Containers is how many containers hold at least one GPU now.
	Containers int
	// LastError is the last List failure, "" after a success.
	LastError string
}

// Assigner tells which GPUs a container was assigned: from the kubelet
// PodResources API (nvidia.com/gpu, nvidia.com/gpu.shared and
// nvidia.com/mig-* resources), and from gpu.static_alloc.
//
// The kubelet's answer is cached and refreshed by Run every
// gpu.podresources_refresh. When the socket is absent or the kubelet
// restarts, the last answer is kept and Run reconnects on the next refresh.
//
// All methods are safe for concurrent use.
type Assigner struct {
	log     *slog.Logger
	socket  string
	refresh time.Duration
	podName func(string) (string, string, bool)
	static  []staticRule

	connMu sync.Mutex // serialises Refresh and guards conn
	conn   *grpc.ClientConn

	mu          sync.RWMutex
	byContainer map[containerKey][]string
	byPod       map[podRef][]string // union over the pod's containers
	uids        map[string]podRef
	stats       AssignerStats
}

type containerKey struct{ namespace, pod, container string }

type podRef struct{ namespace, name string }

type staticRule struct {
	pattern string
	re      *regexp.Regexp
	gpus    []int
}

// NewAssigner compiles gpu.static_alloc and prepares the PodResources client.
// It does not connect: Run (or Refresh) does. An empty
// gpu.podresources_socket leaves only the static table.
func NewAssigner(cfg config.GPUConfig, opts *AssignerOptions) (*Assigner, error) {
	if opts == nil {
		opts = &AssignerOptions{}
	}
	a := &Assigner{
		log:         opts.Logger,
		socket:      cfg.PodResourcesSocket,
		refresh:     cfg.PodResourcesRefresh.D(),
		podName:     opts.PodName,
		byContainer: make(map[containerKey][]string),
		byPod:       make(map[podRef][]string),
		uids:        make(map[string]podRef),
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.log = a.log.With("component", "gpu-assign")
	if a.refresh <= 0 {
		a.refresh = 10 * time.Second
	}
	for p, gpus := range cfg.StaticAlloc {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("gpu.static_alloc: pattern %q: %w", p, err)
		}
		for _, i := range gpus {
			if i < 0 {
				return nil, fmt.Errorf("gpu.static_alloc: pattern %q: negative GPU index %d", p, i)
			}
		}
		a.static = append(a.static, staticRule{pattern: p, re: re, gpus: append([]int{}, gpus...)})
	}
	sort.Slice(a.static, func(i, j int) bool { return a.static[i].pattern < a.static[j].pattern })
	return a, nil
}

// StaticAlloc returns the GPU indexes gpu.static_alloc assigns to the
// container with the given cgroup path: the cgroup v2 path as in the "0::"
// line of /proc/<pid>/cgroup (event.Container.CgroupPath), e.g.
// "/simctr-infer-1a2b". ok is false when no pattern matches,
// which is not the same as a match with no GPUs. When several patterns match,
// the lexically first wins.
func (a *Assigner) StaticAlloc(cgroupPath string) (gpus []int, ok bool) {
	if a == nil {
		return nil, false
	}
	for _, r := range a.static {
		if r.re.MatchString(cgroupPath) {
			return append([]int{}, r.gpus...), true
		}
	}
	return nil, false
}

// GPUsForPod returns the GPU and MIG UUIDs the kubelet assigned to a
// container, or nil. An empty container name means the whole pod: the union
// over its containers. The slice is the caller's.
func (a *Assigner) GPUsForPod(namespace, pod, container string) []string {
	if a == nil {
		return nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	var ids []string
	if container == "" {
		ids = a.byPod[podRef{namespace, pod}]
	} else {
		ids = a.byContainer[containerKey{namespace, pod, container}]
	}
	if len(ids) == 0 {
		return nil
	}
	return append([]string(nil), ids...)
}

// GPUsFor returns the GPU and MIG UUIDs assigned to a container of the pod
// with the given UID (the whole pod when containerName is ""), or nil. PodResources does not carry UIDs, so the pod's
// namespace and name come from RememberPod or AssignerOptions.PodName; when
// neither knows the UID, GPUsFor returns nil.
func (a *Assigner) GPUsFor(podUID, containerName string) []string {
	if a == nil || podUID == "" {
		return nil
	}
	a.mu.RLock()
	ref, ok := a.uids[podUID]
	a.mu.RUnlock()
	if !ok && a.podName != nil {
		ref.namespace, ref.name, ok = a.podName(podUID)
		if ok {
			a.RememberPod(podUID, ref.namespace, ref.name)
		}
	}
	if !ok {
		return nil
	}
	return a.GPUsForPod(ref.namespace, ref.name, containerName)
}

// RememberPod records that the pod with uid is namespace/name, for GPUsFor.
// The table is bounded; when full, an arbitrary old entry is forgotten.
func (a *Assigner) RememberPod(uid, namespace, name string) {
	if a == nil || uid == "" || name == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.uids[uid]; !ok && len(a.uids) >= maxRememberedPods {
		for k := range a.uids {
			delete(a.uids, k)
			break
		}
	}
	a.uids[uid] = podRef{namespace, name}
}

// Stats returns the Assigner's counters.
func (a *Assigner) Stats() AssignerStats {
	if a == nil {
		return AssignerStats{}
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.stats
}

// Run lists the kubelet's pod resources now and every refresh period until
// ctx ends, then closes the connection. It logs once when the kubelet cannot
// be reached, and once when it can again. With no socket configured Run
// returns nil at once.
func (a *Assigner) Run(ctx context.Context) error {
	if a == nil || a.socket == "" {
		return nil
	}
	defer a.Close()
	t := time.NewTicker(a.refresh)
	defer t.Stop()
	failing := false
	for {
		err := a.Refresh(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
		case err != nil && !failing:
			failing = true
			if _, serr := os.Stat(a.socket); errors.Is(serr, fs.ErrNotExist) {
				// Not a Kubernetes node (or the kubelet is not up yet):
				// normal, so not worth a line at info.
				a.log.Debug("no kubelet pod-resources socket; pod GPU assignments from the kubelet are off until it appears",
					"socket", a.socket)
				break
			}
			a.log.Warn("kubelet pod-resources API unavailable; keeping the last GPU assignments and retrying",
				"socket", a.socket, "every", a.refresh, "err", err)
		case err == nil && failing:
			failing = false
			a.log.Info("kubelet pod-resources API reachable again", "socket", a.socket)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Refresh lists the kubelet's pod resources once and replaces the cached
// assignments. On failure the cache is kept and the connection dropped, so
// that the next call dials afresh (the kubelet may have restarted).
func (a *Assigner) Refresh(ctx context.Context) error {
	if a == nil || a.socket == "" {
		return errors.New("list pod resources: no socket configured")
	}
	a.connMu.Lock()
	defer a.connMu.Unlock()
	resp, err := a.list(ctx)
	if err != nil {
		if a.conn != nil {
			a.conn.Close()
			a.conn = nil
		}
		a.mu.Lock()
		a.stats.Errors++
		a.stats.LastError = err.Error()
		a.mu.Unlock()
		return err
	}
	m, pods := assignments(resp)
	a.mu.Lock()
	a.byContainer, a.byPod = m, pods
	a.stats.Refreshes++
	a.stats.Containers = len(m)
	a.stats.LastError = ""
	a.mu.Unlock()
	return nil
}

func (a *Assigner) list(ctx context.Context) (*podresourcesv1.ListPodResourcesResponse, error) {
	if a.conn == nil {
		socket := a.socket
		conn, err := grpc.NewClient("passthrough:///kubelet-pod-resources",
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			}),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(podResourcesMaxMsg)),
		)
		if err != nil {
			return nil, fmt.Errorf("list pod resources: create client for %s: %w", a.socket, err)
		}
		a.conn = conn
	}
	ctx, cancel := context.WithTimeout(ctx, podResourcesTimeout)
	defer cancel()
	resp, err := podresourcesv1.NewPodResourcesListerClient(a.conn).List(ctx, &podresourcesv1.ListPodResourcesRequest{})
	if err != nil {
		return nil, fmt.Errorf("list pod resources over %s: %w", a.socket, err)
	}
	return resp, nil
}

// Close drops the connection to the kubelet. Run calls it on return.
func (a *Assigner) Close() error {
	if a == nil {
		return nil
	}
	a.connMu.Lock()
	defer a.connMu.Unlock()
	if a.conn == nil {
		return nil
	}
	err := a.conn.Close()
	a.conn = nil
	return err
}

// assignments maps each container holding GPUs to its device IDs, and each
// pod to the union of its containers' IDs.
func assignments(resp *podresourcesv1.ListPodResourcesResponse) (map[containerKey][]string, map[podRef][]string) {
	m := make(map[containerKey][]string)
	pods := make(map[podRef][]string)
	for _, p := range resp.GetPodResources() {
		pk := podRef{p.GetNamespace(), p.GetName()}
		for _, c := range p.GetContainers() {
			var ids []string
			for _, d := range c.GetDevices() {
				if !isGPUResource(d.GetResourceName()) {
					continue
				}
				for _, id := range d.GetDeviceIds() {
					if id = deviceID(id); id != "" && !slices.Contains(ids, id) {
						ids = append(ids, id)
					}
				}
			}
			if len(ids) > 0 {
				m[containerKey{p.GetNamespace(), p.GetName(), c.GetName()}] = ids
				for _, id := range ids {
					if !slices.Contains(pods[pk], id) {
						pods[pk] = append(pods[pk], id)
					}
				}
			}
		}
	}
	return m, pods
}

// isGPUResource reports whether a device-plugin resource is an NVIDIA GPU:
// whole GPUs (nvidia.com/gpu), time-sliced or MPS-shared ones
// (nvidia.com/gpu.shared) and MIG slices (nvidia.com/mig-1g.10gb, ...).
func isGPUResource(name string) bool {
	return name == "nvidia.com/gpu" ||
		strings.HasPrefix(name, "nvidia.com/gpu.") ||
		strings.HasPrefix(name, "nvidia.com/mig-")
}

// deviceID turns a device plugin ID into a GPU or MIG UUID: shared GPUs are
// advertised as "<uuid>::<replica>". With the device plugin's index strategy
// the IDs are indexes, and stay so.
func deviceID(id string) string {
	if i := strings.Index(id, "::"); i >= 0 {
		id = id[:i]
	}
	return strings.TrimSpace(id)
}
