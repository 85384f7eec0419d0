// Package zmtpguard is the zmq4 transport of the project's zmq4 ROUTER
// sockets (timer, FileMQ, Harmony): plain TCP on the wire, but a peer must
// finish the ZMTP greeting and its first command within a deadline.
//
// zmq4 v0.17.0 runs the ZMTP handshake of each accepted connection inside
// its accept loop, with no deadline: one connection that sends a few bytes
// and then nothing stops the socket from accepting anyone until it closes.
// Listening on Endpoint(ep) instead of ep bounds that to handshakeTimeout;
// peers dial the plain tcp:// endpoint, or Endpoint(ep) to have a server
// that answers with CURVE refused and counted.
//
// A socket closed with CURVE (package curve) listens on CurveEndpoint(ep)
// instead: the same screening, then the curve+tcp framing (see curve.go).
// Both transports close a connection whose peer greets with another
// security mechanism (a NULL peer at a CURVE socket, or the reverse), and
// count what they refuse in the Counters of the socket's context
// (WithCounters).
//
// One source address may have at most 256 connections that have not
// finished their greeting and first command, and start at most 50 CURVE
// handshakes a second (package admission); more are closed at once and
// counted in Counters.Shed.
package zmtpguard

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
	"github.com/logmesh/logmesh/internal/acceptloop"
	"github.com/logmesh/logmesh/internal/admission"
	"github.com/rs/zerolog"
)

// Scheme is the transport's name in zmq4 endpoints.
const Scheme = "guarded+tcp"

// handshakeTimeout bounds the greeting and first command of a peer.
// Generous for a slow link, short enough that a stalled peer holds the
// accept loop only briefly. Tests lower it.
var handshakeTimeout = 5 * time.Second

// maxPending bounds the connections of one source address that have not
// finished their greeting and first command; more are closed at once
// (package admission). Tests lower it.
var maxPending = admission.DefaultMaxPending

// handshakeRate is the CURVE handshakes one source address may start per
// second on a CURVE socket (bursts of twice that). Tests lower it.
var handshakeRate float64 = admission.DefaultHandshakesPerSecond

const greetingLen = 64 // ZMTP 3.x greeting

func init() {
	// The names are ours alone, so registration cannot fail.
	_ = zmq4.RegisterTransport(Scheme, guard{})
	_ = zmq4.RegisterTransport(CurveScheme, guard{curve: true})
}

// Endpoint turns "tcp://host:port" into the same address on Scheme, for a
// socket's Listen. Other endpoints are returned as they are.
func Endpoint(ep string) string {
	if rest, ok := strings.CutPrefix(ep, "tcp://"); ok {
		return Scheme + "://" + rest
	}
	return ep
}

// guard is the transport; with curve set, its connections carry CURVE.
type guard struct{ curve bool }

func (g guard) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// A dialled connection has no screening, only the mechanism check.
	c := &conn{Conn: nc, curve: g.curve, ctx: ctx, done: true}
	if g.curve {
		return wrapCurve(ctx, c), nil // closed if ctx ends before the handshake does
	}
	// zmq4's ZMTP handshake has no timeout and ignores the socket's
	// context: a peer that accepts TCP and never answers would hold Dial,
	// and the Close that waits for it, forever. So the connection closes
	// when the socket's context ends.
	c.stopClose = context.AfterFunc(ctx, func() { nc.Close() })
	return c, nil
}

func (g guard) Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	gl := &listener{Listener: l, ctx: ctx, curve: g.curve, ready: make(chan net.Conn),
		done: make(chan struct{}), screening: map[net.Conn]struct{}{},
		adm:     admission.New(maxPending, handshakeRate),
		shedLog: zerolog.Ctx(ctx).Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second})}
	gl.wg.Add(1)
	go gl.acceptLoop()
	return gl, nil
}

func (guard) Addr(ep string) (string, error) { return transport.New("tcp").Addr(ep) }

// listener accepts connections itself and screens each in its own
// goroutine: only a peer that sends the 10-byte ZMTP signature within the
// deadline reaches zmq4's accept loop, so peers that connect and send
// nothing (or next to nothing) cannot queue up in front of honest ones.
// It reads no further than the signature: libzmq waits for ours before it
// sends the rest of its greeting, and zmq4 sends ours only once it has the
// connection.
type listener struct {
	net.Listener
	ctx   context.Context // the zmq4 socket's: counters, logger
	curve bool
	ready chan net.Conn
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu        sync.Mutex
	screening map[net.Conn]struct{}

	// adm limits each source's connections still in their handshake, and
	// on a CURVE socket its handshakes per second; shedLog says so at
	// most once per 10 s.
	adm     *admission.Table
	shedLog zerolog.Logger
}

const signatureLen = 10

func (l *listener) acceptLoop() {
	defer l.wg.Done()
	var pace acceptloop.Pacer
	log := zerolog.Ctx(l.ctx)
	what := "zmtpguard " + l.Addr().String()
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) || !pace.Failed(l.done, log, what, err) {
				return
			}
			continue
		}
		pace.Accepted(log, what)
		release, ok := l.adm.Admit(c)
		if !ok {
			l.shed(c, "its source has as many connections in their handshake as allowed")
			continue
		}
		l.mu.Lock()
		l.screening[c] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(1)
		go l.screen(c, release)
	}
}

// shed counts, logs (sampled) and closes a connection refused by the
// per-source limits.
func (l *listener) shed(c net.Conn, why string) {
	countersOf(l.ctx).shed.Add(1)
	l.shedLog.Warn().Stringer("remote", c.RemoteAddr()).Msg("zmtpguard: connection closed at once: " + why)
	c.Close()
}

// screen waits for c's ZMTP signature, then hands c to zmq4. release ends
// c's pending state for the per-source limit: when its first command is
// in, or when it closes.
func (l *listener) screen(c net.Conn, release func()) {
	defer l.wg.Done()
	sig := make([]byte, signatureLen)
	err := c.SetReadDeadline(time.Now().Add(handshakeTimeout))
	if err == nil {
		_, err = io.ReadFull(c, sig)
	}
	l.mu.Lock()
	delete(l.screening, c)
	l.mu.Unlock()
	if err != nil {
		countersOf(l.ctx).stalled.Add(1)
		zerolog.Ctx(l.ctx).Debug().Err(err).Stringer("remote", c.RemoteAddr()).Msg("zmtpguard: no ZMTP greeting in time")
		release()
		c.Close()
		return
	}
	if l.curve && !l.adm.HandshakeFor(c) {
		release()
		l.shed(c, "its source starts CURVE handshakes faster than allowed")
		return
	}
	g := &conn{Conn: c, pre: sig, curve: l.curve, ctx: l.ctx, release: release}
	g.consume(sig)
	var out net.Conn = g
	if l.curve {
		out = wrapCurve(l.ctx, g)
	}
	select {
	case l.ready <- out:
	case <-l.done:
		release()
		c.Close()
	}
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the connections still being screened.
func (l *listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.Listener.Close()
		l.mu.Lock()
		for c := range l.screening {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return err
}

// conn follows the bytes the peer sends until the end of its first ZMTP
// frame (the READY or HELLO command after the greeting), then lifts the
// read deadline.
type conn struct {
	net.Conn
	pre []byte // the signature read while screening, for zmq4 to read
	// curve: the curve+tcp connection above keeps the handshake deadline,
	// so this one only checks the mechanism and closes on a read error.
	curve bool
	ctx   context.Context // the zmq4 socket's
	mech  mechCheck

	done bool
	// stopClose, on a dialled NULL connection, unties it from the socket's
	// context once it closes.
	stopClose func() bool
	seen      int     // bytes of the greeting and frame header seen
	head      [9]byte // flags and size of the first frame
	body      uint64  // bytes of the first frame's body still to come
	inBody    bool
	// release, on an accepted connection, ends its pending state for the
	// listener's per-source limit (idempotent); nil on a dialled one.
	release func()
}

// settled ends c's pending state, once: its first command is in, or it
// is closing.
func (c *conn) settled() {
	if c.release != nil {
		c.release()
	}
}

func (c *conn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		c.mech.theirs(p[:n])
		return n, nil
	}
	n, err := c.Conn.Read(p)
	if merr := c.mech.theirs(p[:n]); merr != nil {
		c.refuse(merr)
		return 0, merr
	}
	if c.curve {
		if err != nil {
			c.settled()
			c.Conn.Close() // as below: zmq4 may drop it without closing
		} else if !c.done && n > 0 && c.consume(p[:n]) {
			// HELLO is in; the curve+tcp layer keeps the deadline for
			// the rest of the handshake.
			c.done = true
			c.settled()
		}
		return n, err
	}
	if !c.done && err != nil {
		// zmq4 drops a connection whose handshake failed without closing
		// it: close it here, or every stalled peer keeps a descriptor.
		c.settled()
		c.Conn.Close()
		return n, err
	}
	if !c.done && n > 0 && c.consume(p[:n]) {
		c.done = true
		c.settled()
		if derr := c.Conn.SetReadDeadline(time.Time{}); derr != nil && err == nil {
			err = derr
		}
	}
	return n, err
}

// Close closes the connection.
func (c *conn) Close() error {
	c.settled()
	if c.stopClose != nil {
		c.stopClose()
	}
	return c.Conn.Close()
}

// Write passes zmq4's bytes on, noting its greeting's mechanism.
func (c *conn) Write(p []byte) (int, error) {
	c.mech.ours(p)
	return c.Conn.Write(p)
}

// refuse counts, logs and closes a connection whose peer speaks another
// security mechanism. zmq4 would refuse it too, but without closing it.
func (c *conn) refuse(err error) {
	c.settled()
	countersOf(c.ctx).mechanism.Add(1)
	zerolog.Ctx(c.ctx).Warn().Err(err).Stringer("remote", c.RemoteAddr()).Msg("zmtpguard: connection refused")
	c.Conn.Close()
}

// consume advances over b and reports whether the first frame is complete.
func (c *conn) consume(b []byte) bool {
	for len(b) > 0 {
		switch {
		case c.seen < greetingLen:
			k := min(len(b), greetingLen-c.seen)
			c.seen += k
			b = b[k:]
		case c.inBody:
			k := uint64(len(b))
			if k >= c.body {
				return true
			}
			c.body -= k
			return false
		default:
			h := c.seen - greetingLen
			c.head[h] = b[0]
			c.seen++
			b = b[1:]
			size := 1
			if c.head[0]&0x02 != 0 { // long frame: 8-byte size
				size = 8
			}
			if h < size {
				continue
			}
			var body uint64
			for _, x := range c.head[1 : 1+size] {
				body = body<<8 | uint64(x)
			}
			if body == 0 {
				return true
			}
			c.body, c.inBody = body, true
		}
	}
	return false
}
