package export

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kestrel-sec/kestrel/internal/event"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

// A Subscribe handler ends when its client goes, whatever it is waiting on:
// every wait selects on the stream's context, on the server's shutdown and on
// its own eviction, and the one call that can block on the client
// (stream.SendMsg, when the client stops reading) runs on a sender goroutine
// the handler never waits for. Returning from the handler finishes the
// stream, which unblocks that send.

const (
	// batchSize is how many ring events a subscriber takes per read.
	batchSize = 256
	// maxBatchBytes bounds the encoded bytes a subscriber holds at once (on
	// top of gRPC's per-stream write quota), however large the events.
	maxBatchBytes = 1 << 20
)

// subscriber is the server's view of one Subscribe stream.
type subscriber struct {
	id     uint64
	peer   string
	since  time.Time
	cost   int
	cursor atomic.Uint64 // last sequence examined
	sent   atomic.Uint64
	lost   atomic.Uint64
	// delivered is the unix-nano time of the last event or loss record
	// sent (heartbeats do not count): what "idle" is measured against.
	delivered atomic.Int64

	evicted   chan struct{}
	evictOnce sync.Once
}

func (sub *subscriber) evict() { sub.evictOnce.Do(func() { close(sub.evicted) }) }

func (sub *subscriber) idleFor(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, sub.delivered.Load()))
}

// Subscribe implements sensorv1.SensorServiceServer.
func (s *Server) Subscribe(req *sensorv1.SubscribeRequest, stream grpc.ServerStreamingServer[sensorv1.SubscribeResponse]) error {
	if n := len(req.GetAllow()) + len(req.GetDeny()); n > s.cfg.MaxFilters {
		s.filtersRefused.Add(1)
		return feedError(codes.InvalidArgument, ReasonFilterLimit, "%d filters; at most %d (export.max_filters)", n, s.cfg.MaxFilters)
	}
	fs, err := FiltersFromProto(req.GetAllow(), req.GetDeny())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "filter %v", err)
	}
	cost := filterCost(fs)
	if cost > s.cfg.MaxFilterCost {
		s.filtersRefused.Add(1)
		return feedError(codes.InvalidArgument, ReasonFilterLimit,
			"filters cost %d (regex program size plus list entries); at most %d per subscription (export.max_filter_cost)", cost, s.cfg.MaxFilterCost)
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

	now := time.Now()
	sub := &subscriber{id: s.nextID.Add(1), since: now, cost: cost, evicted: make(chan struct{})}
	sub.delivered.Store(now.UnixNano())
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		sub.peer = p.Addr.String()
		if sub.peer == "" || sub.peer == "@" {
			sub.peer = "unix"
		}
	}
	sub.cursor.Store(next - 1)
	if err := s.admit(sub); err != nil {
		return err
	}
	defer s.leave(sub)

	f := &feed{s: s, sub: sub, ctx: ctx, snd: newSender(stream)}
	defer f.snd.close()
	waiter := s.ring.NewWaiter()
	defer waiter.Close()
	hb := time.NewTicker(s.heartbeat)
	defer hb.Stop()
	f.check = time.NewTicker(max(s.deadline/4, 5*time.Millisecond))
	defer f.check.Stop()

	buf := make([]*event.Event, batchSize)
	for _, r := range pending {
		f.add(r)
	}
	for {
		// A subscriber whose filter passes nothing of a flood never waits
		// below: look for its end here too.
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.closing:
			return errShutdown
		case <-sub.evicted:
			return s.errIdle(sub)
		default:
		}
		n, gap := s.ring.Read(next, buf)
		if gap.Skipped > 0 {
			sub.lost.Add(gap.Lost)
			s.lostSubscriber.Add(gap.Lost)
			next += gap.Skipped
			f.add(&sensorv1.SubscribeResponse{
				Payload: &sensorv1.SubscribeResponse_Lost{Lost: lostProto(gapEvent(gap).Lost)},
				Cursor:  &sensorv1.Cursor{InstanceId: inst, Seq: next - 1}, NodeName: s.node,
			})
		}
		for i := 0; i < n; i++ {
			ev := buf[i]
			buf[i] = nil
			if f.bytes >= maxBatchBytes {
				clear(buf[i:n])
				n = i // the rest is read again after this batch is sent
				break
			}
			next = ev.Seq + 1
			if !m.Match(ev) {
				continue
			}
			f.addEvent(ev, inst)
		}
		sub.cursor.Store(next - 1)
		if len(f.batch) > 0 {
			if err := f.flush(true); err != nil {
				return err
			}
			continue
		}
		if n > 0 || gap.Skipped > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.closing:
			return errShutdown
		case <-sub.evicted:
			return s.errIdle(sub)
		case <-waiter.C:
		case <-hb.C:
			if f.snd.idleFor() >= s.heartbeat/2 {
				f.add(&sensorv1.SubscribeResponse{
					Payload: &sensorv1.SubscribeResponse_Heartbeat{Heartbeat: &sensorv1.Heartbeat{
						Time: timestamppb.Now(), HeadSeq: s.ring.Head()}},
					Cursor: &sensorv1.Cursor{InstanceId: inst, Seq: next - 1}, NodeName: s.node,
				})
				if err := f.flush(false); err != nil {
					return err
				}
			}
		}
	}
}

var errShutdown = feedError(codes.Unavailable, ReasonShutdown, "the sensor is shutting down; resume with your last cursor")

func (s *Server) errIdle(sub *subscriber) error {
	return feedError(codes.Unavailable, ReasonIdle,
		"subscriber %d delivered nothing for %s (export.idle_timeout) and its slot went to a new subscriber; resume with your last cursor",
		sub.id, s.cfg.IdleTimeout.D())
}

// admit takes a subscriber slot and its share of the filter budget. When
// every slot is taken, the subscriber idle the longest gives up its slot if
// it has been idle for the idle timeout; otherwise the newcomer is refused.
func (s *Server) admit(sub *subscriber) error {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if s.filterCost+sub.cost > s.cfg.MaxTotalFilterCost {
		s.filtersRefused.Add(1)
		return feedError(codes.ResourceExhausted, ReasonFilterLimit,
			"the live subscriptions' filters cost %d and this one %d; the sensor's budget is %d (export.max_total_filter_cost)",
			s.filterCost, sub.cost, s.cfg.MaxTotalFilterCost)
	}
	if len(s.subs) >= s.cfg.MaxSubscribers {
		var victim *subscriber
		now := time.Now()
		for _, o := range s.subs {
			if o.idleFor(now) >= s.cfg.IdleTimeout.D() && (victim == nil || o.delivered.Load() < victim.delivered.Load()) {
				victim = o
			}
		}
		if victim == nil {
			s.subsRefused.Add(1)
			return feedError(codes.ResourceExhausted, ReasonTooMany,
				"too many subscribers (export.max_subscribers = %d), none idle for export.idle_timeout %s", s.cfg.MaxSubscribers, s.cfg.IdleTimeout.D())
		}
		s.log.Info("evicting an idle subscriber to admit a new one", "subscriber", victim.id, "peer", victim.peer,
			"idle", victim.idleFor(now).Round(time.Second), "new_peer", sub.peer)
		victim.evict()
		s.evictedIdle.Add(1)
		s.removeLocked(victim)
	}
	s.subs[sub.id] = sub
	s.filterCost += sub.cost
	return nil
}

func (s *Server) leave(sub *subscriber) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	s.removeLocked(sub)
}

func (s *Server) removeLocked(sub *subscriber) {
	if s.subs[sub.id] == sub {
		delete(s.subs, sub.id)
		s.filterCost -= sub.cost
	}
}

// feed is one Subscribe stream's batch in the making.
type feed struct {
	s     *Server
	sub   *subscriber
	ctx   context.Context
	snd   *sender
	check *time.Ticker

	batch    []*encoded
	bytes    int
	delivers bool // the batch holds an event or a loss record
}

// addEvent adds the response carrying ev (encoded once for every
// subscriber: wire.go) to the batch. An event that cannot be encoded never
// ends the stream: it becomes an in-band Lost record (source encode_error)
// with the event's cursor, and is counted.
func (f *feed) addEvent(ev *event.Event, inst string) {
	m, err := f.s.wire.event(ev, inst, f.s.node)
	if err != nil {
		f.s.encodeErrors.Add(1)
		f.sub.lost.Add(1)
		f.s.log.Warn("an event could not be encoded for a subscriber; sent a Lost record in its place",
			"subscriber", f.sub.id, "seq", ev.Seq, "kind", ev.Kind.String(), "err", err)
		f.add(&sensorv1.SubscribeResponse{
			Payload: &sensorv1.SubscribeResponse_Lost{Lost: &sensorv1.Lost{Source: LostEncode, Count: 1,
				Detail: vt(fmt.Sprintf("event %d (%s): %v", ev.Seq, ev.Kind, err))}},
			Cursor: &sensorv1.Cursor{InstanceId: inst, Seq: ev.Seq}, NodeName: f.s.node,
		})
		return
	}
	f.put(m, true)
}

// add encodes r, a record other than an event, into the batch.
func (f *feed) add(r *sensorv1.SubscribeResponse) {
	m, err := encode(r)
	if err != nil {
		// Not even a Lost record encodes: the codec itself is broken.
		f.s.encodeErrors.Add(1)
		f.s.log.Error("a feed record could not be encoded", "subscriber", f.sub.id, "err", err)
		return
	}
	f.put(m, r.GetHeartbeat() == nil)
}

// put appends an encoded record; delivers says it is an event or a loss
// record (a heartbeat is not).
func (f *feed) put(m *encoded, delivers bool) {
	f.batch = append(f.batch, m)
	f.bytes += len(m.b)
	if delivers {
		f.delivers = true
	}
}

// flush hands the batch to the sender and waits until it is sent, the
// stream ends, the sensor shuts down, the subscriber is evicted, or the
// sender makes no progress for longer than the deadline (then the stream is
// closed with RESOURCE_EXHAUSTED).
func (f *feed) flush(count bool) error {
	s, sub, snd := f.s, f.sub, f.snd
	batch, n, delivers := f.batch, len(f.batch), f.delivers
	f.batch, f.bytes, f.delivers = nil, 0, false
	snd.progress.Store(time.Now().UnixNano())
	select {
	case snd.work <- batch:
	case <-f.ctx.Done():
		return status.FromContextError(f.ctx.Err()).Err()
	case <-s.closing:
		return errShutdown
	case <-sub.evicted:
		return s.errIdle(sub)
	}
	for {
		select {
		case err := <-snd.results:
			if err != nil {
				return err
			}
			if count {
				sub.sent.Add(uint64(n))
			}
			if delivers {
				sub.delivered.Store(time.Now().UnixNano())
			}
			return nil
		case <-f.ctx.Done():
			return status.FromContextError(f.ctx.Err()).Err()
		case <-s.closing:
			return errShutdown
		case <-sub.evicted:
			return s.errIdle(sub)
		case <-f.check.C:
			if stuck := snd.idleFor(); stuck > s.deadline {
				s.cutoffs.Add(1)
				s.log.Warn("closing a subscriber whose stream send is blocked", "subscriber", sub.id, "peer", sub.peer,
					"blocked", stuck.Round(time.Millisecond), "deadline", s.deadline, "cursor", sub.cursor.Load())
				return feedError(codes.ResourceExhausted, ReasonTooSlow,
					"subscriber %d: stream send blocked for %s, longer than export.subscriber_deadline %s; resume with your last cursor (instance %s)",
					sub.id, stuck.Round(time.Millisecond), s.deadline, s.ring.InstanceID())
			}
		}
	}
}

// sender owns stream.SendMsg, so a send blocked by a client that stopped
// reading cannot hold the subscriber loop: the loop returns, which finishes
// the stream and unblocks the send. It takes one batch at a time and
// reports each on results (buffered, so it never blocks there either).
type sender struct {
	stream   grpc.ServerStream
	work     chan []*encoded
	results  chan error
	progress atomic.Int64 // unix nanos of the last completed send or submit
}

func newSender(stream grpc.ServerStream) *sender {
	s := &sender{stream: stream, work: make(chan []*encoded), results: make(chan error, 1)}
	s.progress.Store(time.Now().UnixNano())
	go s.run()
	return s
}

func (s *sender) run() {
	for batch := range s.work {
		var err error
		for _, m := range batch {
			if err = s.stream.SendMsg(m); err != nil {
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

func (s *sender) idleFor() time.Duration {
	return time.Duration(time.Now().UnixNano() - s.progress.Load())
}

func (s *sender) close() { close(s.work) }

// gapEvent is the Lost record of what a reader missed to ring overwrites.
func gapEvent(g Gap) *event.Event {
	l := &event.Lost{Source: LostSubscriber, Count: g.Lost}
	if g.Approx {
		l.Detail = "at least: the cursor is older than the loss records the sensor still indexes"
	}
	return &event.Event{Kind: event.KindLost, Time: time.Now(), Lost: l}
}

func lostProto(l *event.Lost) *sensorv1.Lost {
	return &sensorv1.Lost{Source: vt(l.Source), Count: l.Count, Detail: vt(l.Detail)}
}
