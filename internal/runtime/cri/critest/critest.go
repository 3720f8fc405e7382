// Package critest runs a fake CRI runtime: a gRPC server implementing the
// real k8s.io/cri-api runtime.v1 RuntimeService on a unix socket, for tests
// of CRI clients. It answers Version, ListContainers, ContainerStatus,
// ListPodSandbox and PodSandboxStatus from an in-memory table, and can be
// slowed down, stopped and restarted on the same socket.
package critest

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pod is a sandbox of the fake runtime.
type Pod struct {
	ID, Name, Namespace, UID string
	Labels                   map[string]string
}

// Container is a container of the fake runtime.
type Container struct {
	ID, PodID, Name string
	// Image is the image as named; ImageID is what ListContainers reports
	// (containerd reports the image id there).
	Image, ImageID string
}

// Runtime is the fake runtime's state and server.
//
// It is safe for concurrent use.
type Runtime struct {
	runtimeapi.UnimplementedRuntimeServiceServer

	// Name is the RuntimeName Version reports.
	Name string

	socket string
	mu     sync.Mutex
	pods   map[string]Pod
	ctrs   map[string]Container
	delay  time.Duration
	srv    *grpc.Server
	calls  atomic.Int64
}

// New returns a Runtime that will serve on socket once Start is called.
func New(socket, name string) *Runtime {
	return &Runtime{Name: name, socket: socket, pods: map[string]Pod{}, ctrs: map[string]Container{}}
}

// AddPod adds or replaces a pod.
func (r *Runtime) AddPod(p Pod) { r.mu.Lock(); r.pods[p.ID] = p; r.mu.Unlock() }

// AddContainer adds or replaces a container.
func (r *Runtime) AddContainer(c Container) { r.mu.Lock(); r.ctrs[c.ID] = c; r.mu.Unlock() }

// SetDelay makes every call wait d before answering.
func (r *Runtime) SetDelay(d time.Duration) { r.mu.Lock(); r.delay = d; r.mu.Unlock() }

// Calls returns how many calls the runtime answered or started.
func (r *Runtime) Calls() int64 { return r.calls.Load() }

// Start listens on the socket (removing a stale one) and serves.
func (r *Runtime) Start() error {
	_ = os.Remove(r.socket)
	ln, err := net.Listen("unix", r.socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", r.socket, err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, r)
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// Stop stops serving and removes the socket, as a runtime restart would.
func (r *Runtime) Stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
	_ = os.Remove(r.socket)
}

func (r *Runtime) wait(ctx context.Context) error {
	r.calls.Add(1)
	r.mu.Lock()
	d := r.delay
	r.mu.Unlock()
	if d <= 0 {
		return nil
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// Version implements RuntimeService.
func (r *Runtime) Version(ctx context.Context, _ *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	if err := r.wait(ctx); err != nil {
		return nil, err
	}
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: r.Name, RuntimeVersion: "test", RuntimeApiVersion: "v1"}, nil
}

func (r *Runtime) container(c Container) *runtimeapi.Container {
	p := r.pods[c.PodID]
	return &runtimeapi.Container{
		Id: c.ID, PodSandboxId: c.PodID,
		Metadata: &runtimeapi.ContainerMetadata{Name: c.Name},
		Image:    &runtimeapi.ImageSpec{Image: c.ImageID},
		ImageRef: c.ImageID,
		State:    runtimeapi.ContainerState_CONTAINER_RUNNING,
		Labels: map[string]string{
			"io.kubernetes.pod.name": p.Name, "io.kubernetes.pod.namespace": p.Namespace,
			"io.kubernetes.pod.uid": p.UID, "io.kubernetes.container.name": c.Name,
		},
	}
}

// ListContainers implements RuntimeService.
func (r *Runtime) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	if err := r.wait(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := &runtimeapi.ListContainersResponse{}
	for _, c := range r.ctrs {
		if f := req.GetFilter(); f != nil && f.GetId() != "" && f.GetId() != c.ID {
			continue
		}
		out.Containers = append(out.Containers, r.container(c))
	}
	return out, nil
}

// ContainerStatus implements RuntimeService.
func (r *Runtime) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	if err := r.wait(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.ctrs[req.GetContainerId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "container %q not found", req.GetContainerId())
	}
	lc := r.container(c)
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{
		Id: c.ID, Metadata: lc.Metadata, State: lc.State, Labels: lc.Labels,
		Image: &runtimeapi.ImageSpec{Image: c.Image}, ImageRef: c.ImageID,
	}}, nil
}

func (r *Runtime) sandbox(p Pod) *runtimeapi.PodSandboxMetadata {
	return &runtimeapi.PodSandboxMetadata{Name: p.Name, Namespace: p.Namespace, Uid: p.UID}
}

// ListPodSandbox implements RuntimeService.
func (r *Runtime) ListPodSandbox(ctx context.Context, _ *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	if err := r.wait(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := &runtimeapi.ListPodSandboxResponse{}
	for _, p := range r.pods {
		out.Items = append(out.Items, &runtimeapi.PodSandbox{Id: p.ID, Metadata: r.sandbox(p), Labels: p.Labels,
			State: runtimeapi.PodSandboxState_SANDBOX_READY})
	}
	return out, nil
}

// PodSandboxStatus implements RuntimeService.
func (r *Runtime) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	if err := r.wait(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.pods[req.GetPodSandboxId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "pod sandbox %q not found", req.GetPodSandboxId())
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{
		Id: p.ID, Metadata: r.sandbox(p), Labels: p.Labels, State: runtimeapi.PodSandboxState_SANDBOX_READY,
	}}, nil
}
