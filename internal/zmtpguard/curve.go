package zmtpguard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/logmesh/logmesh/curve"
)

// CurveScheme is the guarded transport of sockets closed with CURVE (a
// curve.Security): the screening of Scheme, then curve+tcp's framing. On
// the wire it is ZMTP over TCP, as curve+tcp is. Keyed clients dial it
// too, so that a server answering with another mechanism is counted and
// its connection closed.
//
// Why not curve+tcp alone: its listener hands each accepted connection
// straight to zmq4, whose accept loop then runs the greeting and CURVE
// handshake inline; a peer that connects and stalls holds every other
// client off until the handshake deadline. Here each connection is first
// screened in its own goroutine (the 10-byte signature), as on Scheme,
// and only then wrapped by curve.WrapConn, which keeps the handshake
// deadline until CURVE is established.
const CurveScheme = "guarded+curve+tcp"

// CurveEndpoint turns "tcp://host:port" into the same address on
// CurveScheme, for the Listen or Dial of a socket with a curve Security.
// Other endpoints are returned as they are.
func CurveEndpoint(ep string) string {
	if rest, ok := strings.CutPrefix(ep, "tcp://"); ok {
		return CurveScheme + "://" + rest
	}
	return ep
}

// ListenEndpoint is the endpoint a ROUTER listens on: CurveEndpoint(ep)
// when it has a curve Security (keyed), else Endpoint(ep).
func ListenEndpoint(ep string, keyed bool) string {
	if keyed {
		return CurveEndpoint(ep)
	}
	return Endpoint(ep)
}

func wrapCurve(ctx context.Context, c *conn) net.Conn {
	wc := curve.WrapConn(ctx, c)
	_ = wc.SetDeadline(time.Now().Add(handshakeTimeout))
	return wc
}

// ErrMechanism reports a peer that greeted with another security
// mechanism than ours: no downgrade from CURVE to NULL, in either
// direction.
var ErrMechanism = errors.New("zmtpguard: peer greets with another security mechanism")

// Counters counts the connections the guard refused on the sockets whose
// context carries them. Safe for concurrent use; the zero value is ready.
type Counters struct {
	stalled   atomic.Uint64
	mechanism atomic.Uint64
	shed      atomic.Uint64
}

// Shed returns the connections closed at once by the per-source limits
// (package admission): their address had as many connections in their
// handshake as allowed, or started CURVE handshakes too fast.
func (c *Counters) Shed() uint64 { return c.shed.Load() }

// Stalled returns the connections closed because their peer sent no ZMTP
// signature within the deadline.
func (c *Counters) Stalled() uint64 { return c.stalled.Load() }

// Mechanism returns the connections refused because the peer greeted
// with another security mechanism (ErrMechanism).
func (c *Counters) Mechanism() uint64 { return c.mechanism.Load() }

type countersKey struct{}

// WithCounters returns ctx carrying c. Give the result to zmq4.NewRouter
// (or NewDealer): zmq4 passes the socket's context to the transport.
func WithCounters(ctx context.Context, c *Counters) context.Context {
	return context.WithValue(ctx, countersKey{}, c)
}

// discard counts for sockets without Counters.
var discard Counters

func countersOf(ctx context.Context) *Counters {
	if ctx != nil {
		if c, ok := ctx.Value(countersKey{}).(*Counters); ok && c != nil {
			return c
		}
	}
	return &discard
}

// ZMTP 3 greeting: signature (10), version (2), mechanism (20), ...
const (
	mechOff = 12
	mechEnd = 32
)

// mechCheck compares the mechanism of the greeting zmq4 writes with the
// one the peer sends. zmq4 writes its greeting before it reads the
// peer's, so ours is known when theirs arrives.
type mechCheck struct {
	our, their   [mechEnd]byte
	ourN, theirN int
}

func (m *mechCheck) ours(p []byte) {
	if m.ourN < mechEnd {
		m.ourN += copy(m.our[m.ourN:], p)
	}
}

// theirs notes the peer's bytes and returns ErrMechanism once its
// mechanism is known and differs from ours.
func (m *mechCheck) theirs(p []byte) error {
	if m.theirN >= mechEnd || len(p) == 0 {
		return nil
	}
	m.theirN += copy(m.their[m.theirN:], p)
	if m.theirN < mechEnd || m.ourN < mechEnd {
		return nil
	}
	our, their := m.our[mechOff:mechEnd], m.their[mechOff:mechEnd]
	if bytes.Equal(our, their) {
		return nil
	}
	return fmt.Errorf("%w: ours %q, the peer's %q", ErrMechanism, trimNUL(our), trimNUL(their))
}

func trimNUL(b []byte) string { return string(bytes.TrimRight(b, "\x00")) }

// Refusal reports whether a failed Dial through these transports was a
// security refusal (another mechanism, an ERROR from the server, a key
// that does not match, a malformed handshake) rather than a connection
// lost during the handshake, which a retry may get past.
func Refusal(err error) bool {
	for _, e := range []error{ErrMechanism, curve.ErrRefused, curve.ErrAuth, curve.ErrMalformed, curve.ErrUnauthorized} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
