package export

import (
	"net"
	"regexp/syntax"
	"sync"
	"sync/atomic"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of the feed's errors.
const ErrorDomain = "kestrel.sensor.v1"

// Reasons carried in the google.rpc.ErrorInfo of an error that ends or
// refuses a stream, so a client can tell "resume now" from "go away".
const (
	// ReasonTooSlow: a send stayed blocked longer than the subscriber
	// deadline. Resume with the last cursor.
	ReasonTooSlow = "SUBSCRIBER_TOO_SLOW"
	// ReasonIdle: the stream delivered nothing for the idle timeout and its
	// slot went to a new subscriber. Resume with the last cursor.
	ReasonIdle = "SUBSCRIBER_IDLE"
	// ReasonShutdown: the sensor is stopping.
	ReasonShutdown = "SHUTTING_DOWN"
	// ReasonTooMany: refused at admission, every subscriber slot is taken
	// by a subscriber that is not idle.
	ReasonTooMany = "TOO_MANY_SUBSCRIBERS"
	// ReasonFilterLimit: the filters exceed a limit.
	ReasonFilterLimit = "FILTER_LIMIT"
)

// feedError is a status error with an ErrorInfo detail naming reason.
func feedError(c codes.Code, reason, format string, args ...any) error {
	st := status.Newf(c, format, args...)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}); err == nil {
		st = d
	}
	return st.Err()
}

// ErrorReason returns the ErrorInfo reason of a feed error, or "".
func ErrorReason(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == ErrorDomain {
			return ei.GetReason()
		}
	}
	return ""
}

// filterCost is what a subscription's filters cost the pipeline per event:
// the size of every compiled regex program (RE2 matching is linear in it),
// plus one per filter and per list entry. A client cannot make the sensor
// spend more than the configured budgets on matching.
func filterCost(fs Filters) int {
	cost := 0
	for _, list := range [][]Filter{fs.Allow, fs.Deny} {
		for _, f := range list {
			cost += 1 + len(f.Kinds) + len(f.Rules) + len(f.ContainerIDs) + len(f.GPUs)
			for _, expr := range []string{f.Container, f.Pod, f.Namespace, f.Binary} {
				cost += regexCost(expr)
			}
		}
	}
	return cost
}

func regexCost(expr string) int {
	if expr == "" {
		return 0
	}
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return len(expr)
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return len(expr)
	}
	return len(prog.Inst)
}

// connLimiter bounds the connections of one listener: at most max at once,
// and at most perPeer from one remote address (0: no per-peer bound). A
// connection over a bound is accepted and closed at once and counted, so a
// flood neither fills the accept backlog nor takes the daemon's file
// descriptors, and the other listeners (the unix socket, the health probe)
// never share its budget. Together with the handshake deadline, a peer that
// connects and never speaks holds a slot for a few seconds at most.
type connLimiter struct {
	net.Listener
	max, perPeer int

	mu      sync.Mutex
	open    int
	byPeer  map[string]int
	refused atomic.Uint64
}

func newConnLimiter(l net.Listener, max, perPeer int) *connLimiter {
	return &connLimiter{Listener: l, max: max, perPeer: perPeer, byPeer: map[string]int{}}
}

// Accept returns the next connection within the bounds.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer := peerKey(c.RemoteAddr())
		if l.admit(peer) {
			return &limitedConn{Conn: c, l: l, peer: peer}, nil
		}
		c.Close()
		l.refused.Add(1)
	}
}

func (l *connLimiter) admit(peer string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.max || (l.perPeer > 0 && peer != "" && l.byPeer[peer] >= l.perPeer) {
		return false
	}
	l.open++
	if peer != "" {
		l.byPeer[peer]++
	}
	return true
}

func (l *connLimiter) release(peer string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if peer != "" {
		if l.byPeer[peer]--; l.byPeer[peer] <= 0 {
			delete(l.byPeer, peer)
		}
	}
}

// Open returns how many connections are open.
func (l *connLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// peerKey is the remote IP of a TCP peer; unix peers have none.
func peerKey(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return ""
}

type limitedConn struct {
	net.Conn
	l    *connLimiter
	peer string
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.peer) })
	return err
}
