package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/kestrel-sec/kestrel/internal/event"
	sensorv1 "github.com/kestrel-sec/kestrel/proto/sensor/v1"
)

// Cursor is a position in a sensor's event stream: the sensor instance and
// the sequence number of the last event received.
type Cursor struct {
	Instance string
	Seq      uint64
}

// SubscribeOptions are the optional settings of Client.SubscribeWith; a nil
// *SubscribeOptions is valid.
type SubscribeOptions struct {
	// ReplayLast asks for this many past events on the first connection when
	// there is no cursor.
	ReplayLast uint32
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 100ms
	// and 5s); the delay doubles after each failed attempt.
	MinBackoff, MaxBackoff time.Duration
	// OnHeartbeat, when set, is called for each heartbeat.
	OnHeartbeat func(head uint64)
	// StopOnDisconnect makes SubscribeWith return ErrDisconnected when the
	// sensor goes away (shuts down, dies, or the connection breaks) instead
	// of reconnecting: what an interactive viewer wants. A cut-off for being
	// slow or idle is resumed either way.
	StopOnDisconnect bool
}

// ErrDisconnected is returned (wrapped, with the cause) by SubscribeWith with
// StopOnDisconnect when the sensor went away.
var ErrDisconnected = errors.New("the sensor closed the feed")

// ErrRefused is returned (wrapped, with the sensor's reason) when the sensor
// refuses a subscription: bad or too costly filters, no permission, and
// with StopOnDisconnect no free slot (otherwise that is retried with
// backoff, as slots free up). Reconnecting at once would not help.
var ErrRefused = errors.New("the sensor refused the subscription")

// Client is a connection to a running sensor's gRPC feed (the tail mode).
// It is safe for concurrent use by multiple goroutines.
type Client struct {
	conn *grpc.ClientConn
	api  sensorv1.SensorServiceClient
	log  *slog.Logger
}

// Dial connects to the sensor's unix socket. The connection is established
// lazily; Dial checks it by asking for the sensor's status, so that
// `sensor --tail` can fall back to in-process mode when no daemon is there.
// The connection pings the sensor when quiet, so a daemon that stops
// answering (killed, stopped) ends a stream within seconds.
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	// "unix://rel.sock" would read rel.sock as an authority: make it absolute.
	if abs, err := filepath.Abs(socketPath); err == nil {
		socketPath = abs
	}
	conn, err := grpc.NewClient("unix://"+socketPath, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}))
	if err != nil {
		return nil, fmt.Errorf("dial sensor socket %s: %w", socketPath, err)
	}
	c := NewClient(conn)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c.api.GetStatus(pctx, &sensorv1.GetStatusRequest{}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("reach sensor at %s: %w", socketPath, err)
	}
	return c, nil
}

// NewClient wraps an existing connection (for example a mutual-TLS TCP
// connection). The Client takes ownership of conn.
func NewClient(conn *grpc.ClientConn) *Client {
	return &Client{conn: conn, api: sensorv1.NewSensorServiceClient(conn), log: slog.Default()}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Status returns the sensor's status.
func (c *Client) Status(ctx context.Context) (*sensorv1.GetStatusResponse, error) {
	r, err := c.api.GetStatus(ctx, &sensorv1.GetStatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("get status: %w", err)
	}
	return r, nil
}

// Inventory returns the sensor's AI bill of materials.
func (c *Client) Inventory(ctx context.Context) (*event.Inventory, error) {
	r, err := c.api.GetInventory(ctx, &sensorv1.GetInventoryRequest{})
	if err != nil {
		return nil, fmt.Errorf("get inventory: %w", err)
	}
	inv, err := InventoryFromProto(r.GetInventory())
	if err != nil {
		return nil, fmt.Errorf("decode inventory: %w", err)
	}
	return inv, nil
}

// resumable reports whether the sensor ended the stream for this
// subscriber alone and expects it back at once: too slow, or idle when its
// slot was needed.
func resumable(err error) bool {
	switch ErrorReason(err) {
	case ReasonTooSlow, ReasonIdle:
		return true
	}
	return false
}

// refused reports whether the sensor refused the subscription itself, for
// good: its filters. (No free slot is a refusal for now; see SubscribeWith.)
func refused(err error) bool {
	if ErrorReason(err) == ReasonFilterLimit {
		return true
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented, codes.FailedPrecondition:
		return true
	}
	return false
}

// retryable reports whether a stream error is worth reconnecting for: the
// daemon went away or restarted (Unavailable), cut us off for being slow
// (ResourceExhausted from a sensor that names no reason), or the stream
// broke.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown:
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF)
}

// Subscribe is SubscribeWith with default options.
func (c *Client) Subscribe(ctx context.Context, filters Filters, cursor *Cursor, fn func(*event.Event)) error {
	return c.SubscribeWith(ctx, filters, cursor, fn, nil)
}

// SubscribeWith streams events matching filters to fn until ctx is done, and
// returns ctx's error then. Lost records arrive as event.KindLost events.
// When the sensor cuts the stream off for being slow or idle it resumes at
// once after *cursor; when the stream breaks otherwise (daemon restart) it
// reconnects with backoff, or returns ErrDisconnected with
// opts.StopOnDisconnect. cursor is updated as events arrive and may be nil.
// A refusal (bad or too costly filters, no free slot: ErrRefused) and other
// permanent errors are returned at once. fn runs on Subscribe's goroutine.
func (c *Client) SubscribeWith(ctx context.Context, filters Filters, cursor *Cursor, fn func(*event.Event), opts *SubscribeOptions) error {
	if _, err := Compile(filters); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if cursor == nil {
		cursor = &Cursor{}
	}
	if opts == nil {
		opts = &SubscribeOptions{}
	}
	minB, maxB := opts.MinBackoff, opts.MaxBackoff
	if minB <= 0 {
		minB = 100 * time.Millisecond
	}
	if maxB < minB {
		maxB = max(5*time.Second, minB)
	}
	allow, deny := filters.ToProto()
	backoff := minB
	for {
		req := &sensorv1.SubscribeRequest{Allow: allow, Deny: deny}
		if cursor.Instance != "" {
			req.ResumeAfter = &sensorv1.Cursor{InstanceId: cursor.Instance, Seq: cursor.Seq}
		} else {
			req.ReplayLast = opts.ReplayLast
		}
		got, err := c.stream(ctx, req, cursor, fn, opts)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case resumable(err):
			c.log.Debug("the sensor cut the stream off; resuming", "err", err, "instance", cursor.Instance, "seq", cursor.Seq)
			backoff = minB
			continue
		case refused(err), opts.StopOnDisconnect && ErrorReason(err) == ReasonTooMany:
			return fmt.Errorf("subscribe: %w: %w", ErrRefused, err)
		case opts.StopOnDisconnect:
			return fmt.Errorf("subscribe: %w: %w", ErrDisconnected, err)
		case !retryable(err):
			return fmt.Errorf("subscribe: %w", err)
		}
		if got {
			backoff = minB
		}
		c.log.Debug("sensor stream broke; reconnecting", "err", err, "backoff", backoff, "instance", cursor.Instance, "seq", cursor.Seq)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxB)
	}
}

// stream runs one Subscribe stream; got reports whether anything arrived.
func (c *Client) stream(ctx context.Context, req *sensorv1.SubscribeRequest, cursor *Cursor, fn func(*event.Event), opts *SubscribeOptions) (got bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.api.Subscribe(sctx, req)
	if err != nil {
		return false, err
	}
	for {
		r, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				// The server ended the stream cleanly (shutdown): reconnect.
				return got, status.Error(codes.Unavailable, "stream ended by the sensor")
			}
			return got, err
		}
		got = true
		switch p := r.GetPayload().(type) {
		case *sensorv1.SubscribeResponse_Event:
			ev, err := EventFromProto(p.Event)
			if err != nil {
				return got, status.Errorf(codes.Internal, "decode event: %v", err)
			}
			fn(ev)
		case *sensorv1.SubscribeResponse_Lost:
			t := time.Now()
			fn(&event.Event{Kind: event.KindLost, Time: t, Lost: &event.Lost{Source: p.Lost.GetSource(), Count: p.Lost.GetCount(), Detail: p.Lost.GetDetail()}})
		case *sensorv1.SubscribeResponse_Heartbeat:
			if opts.OnHeartbeat != nil {
				opts.OnHeartbeat(p.Heartbeat.GetHeadSeq())
			}
		}
		if cur := r.GetCursor(); cur != nil {
			cursor.Instance, cursor.Seq = cur.GetInstanceId(), cur.GetSeq()
		}
	}
}
