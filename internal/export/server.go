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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

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
	// behind the ring.
	LostSubscriber = "subscriber"
	// LostRestart marks a resume across a sensor restart: the events of the
	// previous instance after the client's cursor are gone (count unknown).
	LostRestart = "sensor_restart"
)

// ServiceName is the gRPC health service name that reports readiness: it is
// SERVING once the pipeline's status says Ready. The empty service name
// reports liveness and is SERVING while the server runs.
const ServiceName = "sensor.v1.SensorService"

// Server serves the sensor.v1 API over the ring: on a unix socket (mode
// 0600) and, when configured, on a TCP port that requires mutual TLS 1.3.
//
// Lifecycle: NewServer validates and loads certificates; Listen opens the
// listeners (optional: Serve calls it); Serve runs until its context ends
// and then stops the listeners and removes the socket file.
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

	subsMu sync.Mutex
	subs   map[uint64]*subscriber
	nextID atomic.Uint64

	// closing is closed when Serve begins shutting down, so Subscribe
	// streams end at once instead of holding GracefulStop.
	closing   chan struct{}
	closeOnce sync.Once

	lostSubscriber atomic.Uint64
	lostRestart    atomic.Uint64
	cutoffs        atomic.Uint64
}

// subscriber is the server's view of one Subscribe stream.
type subscriber struct {
	id     uint64
	peer   string
	since  time.Time
	cursor atomic.Uint64 // last sequence examined
	sent   atomic.Uint64
	lost   atomic.Uint64
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
	s := &Server{
		cfg: cfg, ring: ring, src: src, log: opts.Logger, node: opts.NodeName,
		deadline: cfg.SubscriberDeadline.D(), heartbeat: cfg.HeartbeatInterval.D(),
		subs: make(map[uint64]*subscriber), closing: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.node == "" {
		s.node, _ = os.Hostname()
	}
	if s.deadline <= 0 {
		s.deadline = 5 * time.Second
	}
	if s.heartbeat <= 0 {
		s.heartbeat = 10 * time.Second
	}
	if cfg.MaxSubscribers <= 0 {
		s.cfg.MaxSubscribers = 32
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
	if cfg.UnixSocket != "" {
		s.unix = s.newGRPC()
	}
	if s.certs != nil {
		s.tcp = s.newGRPC(grpc.Creds(credentials.NewTLS(s.certs.serverTLSConfig())))
	}
	if cfg.HealthListen != "" {
		s.healthGS = grpc.NewServer(grpc.MaxConcurrentStreams(8))
		healthpb.RegisterHealthServer(s.healthGS, s.health)
	}
	return s, nil
}

func (s *Server) newGRPC(extra ...grpc.ServerOption) *grpc.Server {
	opts := append([]grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// Subscribe streams are bounded separately; leave room for unary calls.
		grpc.MaxConcurrentStreams(uint32(s.cfg.MaxSubscribers) + 16),
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

// Serve serves the listeners until ctx is done, then stops gracefully
// (bounded by a second) and removes the socket file. It returns nil after a
// clean shutdown, or the first listener error.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.lnMu.Lock()
	unixLn, tcpLn, healthLn := s.unixLn, s.tcpLn, s.healthLn
	s.lnMu.Unlock()

	errc := make(chan error, 3)
	if unixLn != nil {
		go func() { errc <- s.unix.Serve(unixLn) }()
		s.log.Info("gRPC feed listening", "unix", s.cfg.UnixSocket)
	}
	if tcpLn != nil {
		go func() { errc <- s.tcp.Serve(tcpLn) }()
		s.log.Info("gRPC feed listening with mutual TLS", "tcp", tcpLn.Addr().String())
	}
	if healthLn != nil {
		go func() { errc <- s.healthGS.Serve(healthLn) }()
		s.log.Info("gRPC health probes listening", "tcp", healthLn.Addr().String())
	}
	readyDone := make(chan struct{})
	go s.watchReady(ctx, readyDone)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("serve gRPC: %w", err)
	}
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

func (s *Server) stop() {
	done := make(chan struct{})
	go func() {
		for _, g := range []*grpc.Server{s.unix, s.tcp, s.healthGS} {
			if g != nil {
				g.GracefulStop()
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		for _, g := range []*grpc.Server{s.unix, s.tcp, s.healthGS} {
			if g != nil {
				g.Stop()
			}
		}
		<-done
	}
}

// watchReady flips the readiness health status when the pipeline reports
// Ready, and back when it stops being ready.
func (s *Server) watchReady(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last := healthpb.HealthCheckResponse_NOT_SERVING
	for {
		want := healthpb.HealthCheckResponse_NOT_SERVING
		if s.src.Status != nil {
			if st := s.src.Status(); st != nil && st.Ready {
				want = healthpb.HealthCheckResponse_SERVING
			}
		}
		if want != last {
			s.health.SetServingStatus(ServiceName, want)
			last = want
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// batchSize is how many ring events a subscriber takes per read.
const batchSize = 256

// Subscribe implements sensorv1.SensorServiceServer.
func (s *Server) Subscribe(req *sensorv1.SubscribeRequest, stream grpc.ServerStreamingServer[sensorv1.SubscribeResponse]) error {
	fs, err := FiltersFromProto(req.GetAllow(), req.GetDeny())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "filter %v", err)
	}
	m, err := Compile(fs)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "filter %v", err)
	}
	ctx := stream.Context()
	inst := s.ring.InstanceID()

	var pending []*sensorv1.SubscribeResponse
	head, oldest := s.ring.Head(), s.ring.Oldest()
	next := head + 1
	switch c := req.GetResumeAfter(); {
	case c != nil && c.GetInstanceId() == inst:
		if c.GetSeq() > head {
			return status.Errorf(codes.InvalidArgument, "resume_after.seq %d is beyond the newest event %d", c.GetSeq(), head)
		}
		next = c.GetSeq() + 1
	case c != nil:
		// The sensor restarted: everything this instance still holds is new
		// to the client; what the old instance had after the cursor is gone.
		next = max(oldest, 1)
		s.lostRestart.Add(1)
		pending = append(pending, &sensorv1.SubscribeResponse{
			Payload: &sensorv1.SubscribeResponse_Lost{Lost: &sensorv1.Lost{Source: LostRestart}},
			Cursor:  &sensorv1.Cursor{InstanceId: inst, Seq: next - 1}, NodeName: s.node,
		})
	case req.GetReplayLast() > 0:
		n := uint64(req.GetReplayLast())
		if head >= n {
			next = head - n + 1
		} else {
			next = 1
		}
		next = max(next, oldest)
	}

	sub := &subscriber{id: s.nextID.Add(1), since: time.Now()}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		sub.peer = p.Addr.String()
		if sub.peer == "" || sub.peer == "@" {
			sub.peer = "unix"
		}
	}
	sub.cursor.Store(next - 1)
	s.subsMu.Lock()
	if len(s.subs) >= s.cfg.MaxSubscribers {
		s.subsMu.Unlock()
		return status.Errorf(codes.ResourceExhausted, "too many subscribers (export.max_subscribers = %d)", s.cfg.MaxSubscribers)
	}
	s.subs[sub.id] = sub
	s.subsMu.Unlock()
	defer func() {
		s.subsMu.Lock()
		delete(s.subs, sub.id)
		s.subsMu.Unlock()
	}()

	snd := newSender(stream)
	defer snd.close()
	waiter := s.ring.NewWaiter()
	defer waiter.Close()
	hb := time.NewTicker(s.heartbeat)
	defer hb.Stop()
	check := time.NewTicker(max(s.deadline/4, 5*time.Millisecond))
	defer check.Stop()

	buf := make([]*event.Event, batchSize)
	batch := pending
	for {
		n, lost := s.ring.Read(next, buf)
		if lost > 0 {
			sub.lost.Add(lost)
			s.lostSubscriber.Add(lost)
			next += lost
			batch = append(batch, &sensorv1.SubscribeResponse{
				Payload: &sensorv1.SubscribeResponse_Lost{Lost: &sensorv1.Lost{Source: LostSubscriber, Count: lost}},
				Cursor:  &sensorv1.Cursor{InstanceId: inst, Seq: next - 1}, NodeName: s.node,
			})
		}
		for i := 0; i < n; i++ {
			ev := buf[i]
			buf[i] = nil
			next = ev.Seq + 1
			if !m.Match(ev) {
				continue
			}
			batch = append(batch, &sensorv1.SubscribeResponse{
				Payload: &sensorv1.SubscribeResponse_Event{Event: EventToProto(ev)},
				Cursor:  &sensorv1.Cursor{InstanceId: inst, Seq: ev.Seq}, NodeName: s.node,
			})
		}
		sub.cursor.Store(next - 1)
		if len(batch) > 0 {
			if err := s.flush(ctx, snd, check, sub, batch); err != nil {
				return err
			}
			clear(batch)
			batch = batch[:0]
			continue
		}
		if n > 0 || lost > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return status.Error(codes.Unavailable, "the sensor is shutting down; resume with your last cursor")
		case <-waiter.C:
		case <-hb.C:
			if snd.idleFor() >= s.heartbeat/2 {
				batch = append(batch, &sensorv1.SubscribeResponse{
					Payload: &sensorv1.SubscribeResponse_Heartbeat{Heartbeat: &sensorv1.Heartbeat{
						Time: timestamppb.Now(), HeadSeq: s.ring.Head()}},
					Cursor: &sensorv1.Cursor{InstanceId: inst, Seq: next - 1}, NodeName: s.node,
				})
			}
		}
	}
}

// flush hands batch to the sender and waits until it is sent, the stream
// ends, or the sender makes no progress for longer than the deadline, in
// which case the stream is closed with RESOURCE_EXHAUSTED.
func (s *Server) flush(ctx context.Context, snd *sender, check *time.Ticker, sub *subscriber, batch []*sensorv1.SubscribeResponse) error {
	snd.submit(batch)
	for {
		select {
		case err := <-snd.results:
			if err != nil {
				return err
			}
			sub.sent.Add(uint64(len(batch)))
			return nil
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return status.Error(codes.Unavailable, "the sensor is shutting down; resume with your last cursor")
		case <-check.C:
			if stuck := snd.idleFor(); stuck > s.deadline {
				s.cutoffs.Add(1)
				s.log.Warn("closing a subscriber whose stream send is blocked", "subscriber", sub.id, "peer", sub.peer,
					"blocked", stuck.Round(time.Millisecond), "deadline", s.deadline, "cursor", sub.cursor.Load())
				return status.Errorf(codes.ResourceExhausted,
					"subscriber %d: stream send blocked for %s, longer than export.subscriber_deadline %s; resume with your last cursor (instance %s)",
					sub.id, stuck.Round(time.Millisecond), s.deadline, s.ring.InstanceID())
			}
		}
	}
}

// sender owns stream.Send, so a send blocked by a client that stopped
// reading cannot hold the subscriber loop: the loop returns, which finishes
// the stream and unblocks the send.
type sender struct {
	stream   grpc.ServerStreamingServer[sensorv1.SubscribeResponse]
	work     chan []*sensorv1.SubscribeResponse
	results  chan error
	progress atomic.Int64 // unix nanos of the last completed send or submit
}

func newSender(stream grpc.ServerStreamingServer[sensorv1.SubscribeResponse]) *sender {
	s := &sender{stream: stream, work: make(chan []*sensorv1.SubscribeResponse), results: make(chan error, 1)}
	s.progress.Store(time.Now().UnixNano())
	go s.run()
	return s
}

func (s *sender) run() {
	for batch := range s.work {
		var err error
		for _, m := range batch {
			if err = s.stream.Send(m); err != nil {
				break
			}
			s.progress.Store(time.Now().UnixNano())
		}
		s.results <- err
		if err != nil {
			return
		}
	}
}

func (s *sender) submit(batch []*sensorv1.SubscribeResponse) {
	s.progress.Store(time.Now().UnixNano())
	s.work <- batch
}

func (s *sender) idleFor() time.Duration {
	return time.Duration(time.Now().UnixNano() - s.progress.Load())
}

func (s *sender) close() { close(s.work) }

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
			"subscriber_cutoffs": s.cutoffs.Load(),
		},
	}
	if s.src.Status != nil {
		if st := s.src.Status(); st != nil {
			resp.Status = statusToProto(st)
			resp.NvmlState = st.Fields["nvml"]
		}
	}
	for _, sub := range s.Subscribers() {
		resp.Subscribers = append(resp.Subscribers, &sensorv1.SubscriberStatus{
			Id: sub.ID, Peer: sub.Peer, CursorSeq: sub.Cursor, Lag: sub.Lag, Sent: sub.Sent, Lost: sub.Lost, Since: ts(sub.Since),
		})
	}
	return resp, nil
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
