package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/kestrel-sec/kestrel/internal/config"
	"github.com/kestrel-sec/kestrel/internal/event"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

// Sources is how the server asks the rest of the sensor for its state. Either
// function may be nil, and either may return nil when nothing is known yet.
// They are called from gRPC goroutines and must be safe for concurrent use.
type Sources struct {
	Status    func() *event.Status
	Inventory func() *event.Inventory
}

// Options are the optional settings of a Server; a nil *Options is valid.
type Options struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// NodeName is reported in every response; defaults to os.Hostname().
	NodeName string
}

// Loss sources reported by the export layer.
const (
	// LostSubscriber counts events a subscriber did not get because it fell
	// behind the ring (the counts of Lost records it missed included).
	LostSubscriber = "subscriber"
	// LostRestart marks a resume across a sensor restart: the events of the
	// previous instance after the client's cursor are gone (count unknown).
	LostRestart = "sensor_restart"
	// LostEncode replaces, in-band, an event that could not be encoded.
	LostEncode = "encode_error"
)

// ServiceName is the gRPC health service name that reports readiness: it is
// SERVING once the pipeline's status says Ready (every program attached, the
// pipeline running) and the feed is served. The empty service name reports
// liveness and is SERVING while the server runs.
const ServiceName = "sensor.v1.SensorService"

// GPUServiceName is the health service name of GPU attribution: SERVING
// while the GPU sampler runs (Status.GPUEnabled), NOT_SERVING on a node
// without NVML. A GPU node pool's readiness probe may ask for it.
const GPUServiceName = "sensor.v1.SensorService.gpu"

// Server serves the sensor.v1 API over the ring: on a unix socket (mode
// 0600) and, when configured, on a TCP port that requires mutual TLS 1.3.
//
// Lifecycle: NewServer validates and loads certificates; Listen opens the
// listeners (optional: Serve calls it); Serve runs until its context ends
// and then stops the listeners and removes the socket file, within a few
// seconds whatever the clients do.
//
// Every resource a client can hold is bounded: connections per listener and
// per TCP peer, the handshake time of a new connection, subscriber slots
// (an idle subscriber yields its slot), the filters of a subscription and
// their total cost, the bytes and time a slow subscriber may hold.
type Server struct {
	sensorv1.UnimplementedSensorServiceServer

	cfg       config.ExportConfig
	ring      *Ring
	src       Sources
	log       *slog.Logger
	node      string
	deadline  time.Duration
	heartbeat time.Duration

	health   *health.Server
	unix     *grpc.Server
	tcp      *grpc.Server
	healthGS *grpc.Server // plain-text, health service only
	certs    *certLoader

	lnMu     sync.Mutex
	unixLn   *net.UnixListener
	tcpLn    net.Listener
	healthLn net.Listener
	limiters map[string]*connLimiter // by listener name, while serving

	subsMu     sync.Mutex
	subs       map[uint64]*subscriber
	filterCost int // of the live subscribers
	nextID     atomic.Uint64

	// closing is closed when Serve begins shutting down, so Subscribe
	// streams end at once instead of holding GracefulStop.
	closing   chan struct{}
	closeOnce sync.Once
	serving   atomic.Bool

	// wire encodes events for the feed, once for every subscriber.
	wire *wire

	lostSubscriber atomic.Uint64
	lostRestart    atomic.Uint64
	cutoffs        atomic.Uint64
	encodeErrors   atomic.Uint64
	subsRefused    atomic.Uint64
	evictedIdle    atomic.Uint64
	filtersRefused atomic.Uint64
}

// withExportDefaults fills the limits a hand-built ExportConfig (tests,
// embedders) leaves zero with the defaults of config.Default.
func withExportDefaults(cfg config.ExportConfig) config.ExportConfig {
	def := config.Default().Export
	if cfg.MaxSubscribers <= 0 {
		cfg.MaxSubscribers = def.MaxSubscribers
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = def.IdleTimeout
	}
	if cfg.MaxFilters <= 0 {
		cfg.MaxFilters = def.MaxFilters
	}
	if cfg.MaxFilterCost <= 0 {
		cfg.MaxFilterCost = def.MaxFilterCost
	}
	if cfg.MaxTotalFilterCost <= 0 {
		cfg.MaxTotalFilterCost = def.MaxTotalFilterCost
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = def.MaxConnections
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = def.HandshakeTimeout
	}
	if cfg.SubscriberDeadline <= 0 {
		cfg.SubscriberDeadline = def.SubscriberDeadline
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = def.HeartbeatInterval
	}
	return cfg
}

// NewServer builds a server over ring. It fails when TCP is configured
// without mutual TLS, or when the TLS files cannot be loaded.
func NewServer(cfg config.ExportConfig, ring *Ring, src Sources, opts *Options) (*Server, error) {
	if ring == nil {
		return nil, errors.New("create export server: nil ring")
	}
	if opts == nil {
		opts = &Options{}
	}
	cfg = withExportDefaults(cfg)
	s := &Server{
		cfg: cfg, ring: ring, src: src, log: opts.Logger, node: opts.NodeName,
		deadline: cfg.SubscriberDeadline.D(), heartbeat: cfg.HeartbeatInterval.D(),
		subs: make(map[uint64]*subscriber), closing: make(chan struct{}), wire: newWire(),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.node == "" {
		s.node, _ = os.Hostname()
	}
	if cfg.UnixSocket == "" && cfg.TCPListen == "" {
		return nil, errors.New("create export server: neither export.unix_socket nor export.tcp_listen is set")
	}
	if cfg.TCPListen != "" {
		if cfg.TLS.Cert == "" || cfg.TLS.Key == "" || cfg.TLS.ClientCA == "" {
			return nil, errors.New("create export server: export.tcp_listen is set but TCP is served only with mutual TLS: set export.tls.cert, export.tls.key and export.tls.client_ca")
		}
		l, err := newCertLoader(cfg.TLS, s.log)
		if err != nil {
			return nil, fmt.Errorf("create export server: %w", err)
		}
		s.certs = l
	}
	s.health = health.NewServer()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	s.health.SetServingStatus(GPUServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	if cfg.UnixSocket != "" {
		s.unix = s.newGRPC()
	}
	if s.certs != nil {
		s.tcp = s.newGRPC(grpc.Creds(credentials.NewTLS(s.certs.serverTLSConfig())))
	}
	if cfg.HealthListen != "" {
		s.healthGS = grpc.NewServer(grpc.MaxConcurrentStreams(8), grpc.ConnectionTimeout(cfg.HandshakeTimeout.D()),
			grpc.MaxRecvMsgSize(4<<10), grpc.MaxHeaderListSize(16<<10))
		healthpb.RegisterHealthServer(s.healthGS, s.health)
	}
	return s, nil
}

// maxRequestBytes bounds a request: filters and cursors fit in far less.
const maxRequestBytes = 256 << 10

func (s *Server) newGRPC(extra ...grpc.ServerOption) *grpc.Server {
	opts := append([]grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// Dead peers are found by pings; connections with no call at all
		// are closed after a while, so they do not hold connection slots.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second,
			MaxConnectionIdle: 5 * time.Minute}),
		// A peer that connects and never completes TLS and the HTTP/2
		// preface is dropped after this (gRPC's default is 120s).
		grpc.ConnectionTimeout(s.cfg.HandshakeTimeout.D()),
		grpc.MaxRecvMsgSize(maxRequestBytes),
		grpc.MaxHeaderListSize(64 << 10),
		// Subscribe streams are bounded separately; leave room for unary calls.
		grpc.MaxConcurrentStreams(uint32(s.cfg.MaxSubscribers) + 16),
		// Subscribe marshals its messages itself (see codec.go).
		grpc.ForceServerCodecV2(newFeedCodec()),
	}, extra...)
	g := grpc.NewServer(opts...)
	sensorv1.RegisterSensorServiceServer(g, s)
	healthpb.RegisterHealthServer(g, s.health)
	reflection.Register(g)
	return g
}

// Listen opens the configured listeners. It is idempotent; Serve calls it.
func (s *Server) Listen() error {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.unix != nil && s.unixLn == nil {
		l, err := listenUnix(s.cfg.UnixSocket)
		if err != nil {
			return fmt.Errorf("listen on unix socket: %w", err)
		}
		s.unixLn = l
	}
	if s.tcp != nil && s.tcpLn == nil {
		l, err := net.Listen("tcp", s.cfg.TCPListen)
		if err != nil {
			s.closeListenersLocked()
			return fmt.Errorf("listen on %s: %w", s.cfg.TCPListen, err)
		}
		s.tcpLn = l
	}
	if s.healthGS != nil && s.healthLn == nil {
		l, err := net.Listen("tcp", s.cfg.HealthListen)
		if err != nil {
			s.closeListenersLocked()
			return fmt.Errorf("listen on %s for health probes: %w", s.cfg.HealthListen, err)
		}
		s.healthLn = l
	}
	return nil
}

// Close releases the listeners of a server that will not Serve (start-up
// failed after Listen) and removes its socket file.
func (s *Server) Close() {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	s.closeListenersLocked()
}

func (s *Server) closeListenersLocked() {
	if s.unixLn != nil {
		s.unixLn.Close()
		s.removeSocket()
		s.unixLn = nil
	}
	if s.tcpLn != nil {
		s.tcpLn.Close()
		s.tcpLn = nil
	}
	if s.healthLn != nil {
		s.healthLn.Close()
		s.healthLn = nil
	}
}

// removeSocket removes the socket file if it is still the one we created.
func (s *Server) removeSocket() {
	fi, err := os.Lstat(s.cfg.UnixSocket)
	if err == nil && fi.Mode().Type() == os.ModeSocket {
		os.Remove(s.cfg.UnixSocket)
	}
}

// HealthAddr returns the health listener's address after Listen, or nil.
func (s *Server) HealthAddr() net.Addr {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.healthLn == nil {
		return nil
	}
	return s.healthLn.Addr()
}

// TCPAddr returns the TCP listener's address after Listen, or nil.
func (s *Server) TCPAddr() net.Addr {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}

// Serve serves the listeners until ctx is done, then stops: Subscribe
// streams end at once (UNAVAILABLE, SHUTTING_DOWN), unary calls get half a
// second to finish, and connections are closed. It returns within a few seconds of
// ctx ending whatever the clients do: nil after a clean shutdown, or the
// first listener error.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.lnMu.Lock()
	s.limiters = map[string]*connLimiter{}
	type listener struct {
		name    string
		ln      net.Listener
		perPeer int
		g       *grpc.Server
	}
	var lns []listener
	if s.unixLn != nil {
		lns = append(lns, listener{"unix", s.unixLn, 0, s.unix})
	}
	if s.tcpLn != nil {
		lns = append(lns, listener{"tcp", s.tcpLn, s.cfg.MaxConnectionsPerPeer, s.tcp})
	}
	if s.healthLn != nil {
		lns = append(lns, listener{"health", s.healthLn, s.cfg.MaxConnectionsPerPeer, s.healthGS})
	}
	for i := range lns {
		cl := newConnLimiter(lns[i].ln, s.cfg.MaxConnections, lns[i].perPeer)
		s.limiters[lns[i].name] = cl
		lns[i].ln = cl
	}
	s.lnMu.Unlock()

	errc := make(chan error, len(lns))
	for _, l := range lns {
		go func() { errc <- l.g.Serve(l.ln) }()
		s.log.Info("gRPC listening", "listener", l.name, "addr", l.ln.Addr().String(), "mutual_tls", l.name == "tcp")
	}
	s.serving.Store(true)
	readyDone := make(chan struct{})
	go s.watchReady(ctx, readyDone)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("serve gRPC: %w", err)
	}
	s.serving.Store(false)
	s.closeOnce.Do(func() { close(s.closing) })
	<-readyDone
	s.health.Shutdown()
	s.stop()
	s.lnMu.Lock()
	if s.unixLn != nil {
		s.removeSocket()
		s.unixLn = nil
	}
	s.tcpLn, s.healthLn = nil, nil
	s.lnMu.Unlock()
	return err
}

// stop stops every gRPC server: gracefully for half a second (unary calls
// in flight finish; a stream whose client stopped reading cannot even take
// its final status), then by closing every connection. It never waits more
// than a second after that: a handler that does not return must not keep
// the sensor from exiting (its goroutine dies with the process).
func (s *Server) stop() {
	servers := []*grpc.Server{s.unix, s.tcp, s.healthGS}
	done := make(chan struct{})
	go func() {
		for _, g := range servers {
			if g != nil {
				g.GracefulStop()
			}
		}
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(500 * time.Millisecond):
	}
	for _, g := range servers {
		if g != nil {
			g.Stop()
		}
	}
	select {
	case <-done:
	case <-time.After(time.Second):
		s.log.Error("gRPC handlers still running a second after the connections were closed; stopping without them",
			"subscribers", len(s.Subscribers()))
	}
}

// watchReady keeps the health statuses current: readiness follows the
// pipeline's Ready while the feed is served, GPU health follows the GPU
// sampler.
func (s *Server) watchReady(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last := [2]healthpb.HealthCheckResponse_ServingStatus{healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_NOT_SERVING}
	for {
		want := [2]healthpb.HealthCheckResponse_ServingStatus{healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_NOT_SERVING}
		st := s.pipelineStatus()
		if st != nil && st.Ready && s.serving.Load() {
			want[0] = healthpb.HealthCheckResponse_SERVING
		}
		if st != nil && st.GPUEnabled {
			want[1] = healthpb.HealthCheckResponse_SERVING
		}
		for i, name := range [2]string{ServiceName, GPUServiceName} {
			if want[i] != last[i] {
				s.health.SetServingStatus(name, want[i])
				last[i] = want[i]
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) pipelineStatus() *event.Status {
	if s.src.Status == nil {
		return nil
	}
	return s.src.Status()
}

// GetStatus implements sensorv1.SensorServiceServer.
func (s *Server) GetStatus(context.Context, *sensorv1.GetStatusRequest) (*sensorv1.GetStatusResponse, error) {
	rs := s.ring.Stats()
	resp := &sensorv1.GetStatusResponse{
		InstanceId: rs.InstanceID,
		NodeName:   s.node,
		Ring: &sensorv1.RingStatus{Size: rs.Size, Fill: rs.Fill, HeadSeq: rs.Head, OldestSeq: rs.Oldest,
			Published: rs.Published, Overwritten: rs.Overwritten},
		ExportLost: map[string]uint64{
			LostSubscriber:       s.lostSubscriber.Load(),
			LostRestart:          s.lostRestart.Load(),
			LostEncode:           s.encodeErrors.Load(),
			"subscriber_cutoffs": s.cutoffs.Load(),
		},
	}
	if st := s.pipelineStatus(); st != nil {
		resp.Status = statusToProto(st)
		resp.NvmlState = vt(st.Fields["nvml"])
		resp.Ready = st.Ready && s.serving.Load()
		resp.Gpu = &sensorv1.GpuStatus{Enabled: st.GPUEnabled, State: resp.NvmlState}
	}
	resp.ExportCounters = s.Counters()
	for _, sub := range s.Subscribers() {
		resp.Subscribers = append(resp.Subscribers, &sensorv1.SubscriberStatus{
			Id: sub.ID, Peer: sub.Peer, CursorSeq: sub.Cursor, Lag: sub.Lag, Sent: sub.Sent, Lost: sub.Lost, Since: ts(sub.Since),
		})
	}
	return resp, nil
}

// Counters returns the feed's limit counters: connections refused per
// listener, subscribers refused and evicted, slow-subscriber cut-offs,
// filters refused, events that could not be encoded. Safe for concurrent use.
func (s *Server) Counters() map[string]uint64 {
	m := map[string]uint64{
		"subscriber_cutoffs":       s.cutoffs.Load(),
		"subscribers_refused":      s.subsRefused.Load(),
		"subscribers_evicted_idle": s.evictedIdle.Load(),
		"filters_refused":          s.filtersRefused.Load(),
		"encode_errors":            s.encodeErrors.Load(),
	}
	s.lnMu.Lock()
	for name, l := range s.limiters {
		m["connections_refused_"+name] = l.refused.Load()
		m["connections_open_"+name] = uint64(l.Open())
	}
	s.lnMu.Unlock()
	s.subsMu.Lock()
	m["subscribers"] = uint64(len(s.subs))
	m["filter_cost"] = uint64(s.filterCost)
	s.subsMu.Unlock()
	return m
}

// SubscriberInfo is a snapshot of one live subscriber.
type SubscriberInfo struct {
	ID                      uint64
	Peer                    string
	Cursor, Lag, Sent, Lost uint64
	Since                   time.Time
}

// Subscribers returns a snapshot of the live subscribers, by id.
func (s *Server) Subscribers() []SubscriberInfo {
	head := s.ring.Head()
	s.subsMu.Lock()
	out := make([]SubscriberInfo, 0, len(s.subs))
	for _, sub := range s.subs {
		c := sub.cursor.Load()
		out = append(out, SubscriberInfo{ID: sub.id, Peer: sub.peer, Cursor: c, Lag: head - min(c, head),
			Sent: sub.sent.Load(), Lost: sub.lost.Load(), Since: sub.since})
	}
	s.subsMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// GetInventory implements sensorv1.SensorServiceServer.
func (s *Server) GetInventory(context.Context, *sensorv1.GetInventoryRequest) (*sensorv1.GetInventoryResponse, error) {
	var inv *event.Inventory
	if s.src.Inventory != nil {
		inv = s.src.Inventory()
	}
	if inv == nil {
		inv = &event.Inventory{Node: s.node, Time: time.Now()}
	}
	return &sensorv1.GetInventoryResponse{Inventory: InventoryToProto(inv)}, nil
}
