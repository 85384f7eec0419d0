package curve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
	zmqtransport "github.com/go-zeromq/zmq4/transport"
)

// Why a transport: CURVE wraps every frame in a MESSAGE command whose box
// is 33 bytes longer than the frame, and carries the MORE flag inside the
// box. zmq4 v0.17.0 writes each frame header, with the plaintext length and
// its own MORE flag, before it calls Security.Encrypt, and reads the MORE flag
// from the wire header before Security.Decrypt. So a Security alone cannot
// produce or parse CURVE frames. zmq4 does let a package register a
// transport (zmq4.RegisterTransport), and every net.Conn of a socket comes
// from its transport: the curve+tcp transport's conn rewrites the ZMTP frame
// stream after the handshake (plaintext frames <-> MESSAGE commands), while
// the Security (Type "CURVE", Handshake) runs the handshake over it. No
// zmq4 source is changed or copied.

// Scheme is the zmq4 transport of CURVE connections: endpoints are
// "curve+tcp://host:port". On the wire it is plain ZMTP over TCP, so peers
// (libzmq, Zyre) use tcp://host:port as usual.
const Scheme = "curve+tcp"

func init() {
	if err := zmq4.RegisterTransport(Scheme, tcpTransport{}); err != nil {
		panic(fmt.Errorf("curve: register zmq4 transport: %w", err))
	}
}

// Endpoint turns "tcp://host:port" into "curve+tcp://host:port", the form a
// zmq4 socket with a CURVE Security must Dial or Listen on. Other
// endpoints are returned unchanged.
func Endpoint(ep string) string {
	if rest, ok := strings.CutPrefix(ep, "tcp://"); ok {
		return Scheme + "://" + rest
	}
	return ep
}

// WrapConn makes nc a curve+tcp connection, for a zmq4 transport that
// makes its own connections (internal/zmtpguard screens each accepted
// connection in its own goroutine before zmq4 sees it, which this
// package's listener does not). ctx is the zmq4 socket's: the connection
// is closed if ctx ends before the handshake does. The connection's
// deadline is set to DefaultHandshakeTimeout, and lifted once the
// handshake ends.
func WrapConn(ctx context.Context, nc net.Conn) net.Conn {
	return newWireConn(nc).closeWith(ctx)
}

type tcpTransport struct{}

func (tcpTransport) Dial(ctx context.Context, d zmqtransport.Dialer, addr string) (net.Conn, error) {
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return newWireConn(nc).closeWith(ctx), nil
}

func (tcpTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return listener{l, ctx}, nil
}

func (tcpTransport) Addr(ep string) (string, error) {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return "", err
	}
	if port == "*" || port == "" {
		port = "0"
	}
	if host == "" || host == "*" {
		host = "0.0.0.0"
	}
	return net.JoinHostPort(host, port), nil
}

type listener struct {
	net.Listener
	ctx context.Context
}

func (l listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newWireConn(nc).closeWith(l.ctx), nil
}

// closeWith closes the connection if ctx (the zmq4 socket's) ends before
// the handshake does: zmq4's Close does not reach a connection it is still
// opening, and its accept loop would wait for the handshake deadline.
func (c *wireConn) closeWith(ctx context.Context) *wireConn {
	c.stopClose = context.AfterFunc(ctx, func() {
		if !c.established.Load() {
			_ = c.Conn.Close()
		}
	})
	return c
}

const (
	greetingSize = 64
	keepBuffer   = 1 << 20 // larger frame buffers are not kept for reuse
)

// wireConn is a curve+tcp connection. Until the handshake ends it passes
// the ZMTP greeting through and lets the Security exchange commands; then
// it turns each plaintext frame zmq4 writes into a MESSAGE command, and
// each MESSAGE it reads into the plaintext frame zmq4 expects.
type wireConn struct {
	net.Conn

	rmu      sync.Mutex
	br       *bufio.Reader
	rgreet   int // greeting bytes zmq4 has read
	rerr     error
	rbuf     []byte   // wire frame
	rplain   []byte   // MESSAGE flags + body
	rhdr     []byte   // plaintext frame header for zmq4
	rpend    [][]byte // rest of rhdr and of the body, still to give
	rpendArr [2][]byte
	maxFrame int64

	wmu      sync.Mutex
	wgreet   []byte
	bound    bool
	wstate   int
	wflags   byte
	wsize    [8]byte
	wsizeGot int
	wsizeLen int
	wremain  uint64
	wplain   []byte
	wout     []byte

	sess        *session    // set once, under both locks, by establish
	sec         *Security   // for counters and logging
	stopClose   func() bool // see closeWith
	established atomic.Bool
}

func newWireConn(nc net.Conn) *wireConn {
	_ = nc.SetDeadline(time.Now().Add(DefaultHandshakeTimeout))
	return &wireConn{Conn: nc, br: bufio.NewReaderSize(nc, 32<<10)}
}

// protoError closes the connection in zmq4: its checkIO closes a Conn on a
// net.Error that is not a timeout.
type protoError struct{ err error }

func (e protoError) Error() string   { return e.err.Error() }
func (e protoError) Unwrap() error   { return e.err }
func (e protoError) Timeout() bool   { return false }
func (e protoError) Temporary() bool { return false }

var _ net.Error = protoError{}

// establish switches to MESSAGE framing; called at the end of Handshake.
func (c *wireConn) establish(sess *session, sec *Security) {
	c.rmu.Lock()
	c.wmu.Lock()
	c.sess, c.sec = sess, sec
	c.established.Store(true)
	c.maxFrame = sec.opts.maxMessageSize + messageMin
	c.wmu.Unlock()
	c.rmu.Unlock()
	if c.stopClose != nil {
		c.stopClose()
	}
	_ = c.SetDeadline(time.Time{})
}

// writeCommand writes one handshake command frame.
func (c *wireConn) writeCommand(cmd []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	out := appendFrameHeader(make([]byte, 0, 9+len(cmd)), flagCommand, len(cmd))
	_, err := c.Conn.Write(append(out, cmd...))
	return err
}

// readCommand reads one handshake command frame.
func (c *wireConn) readCommand() ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	flags, body, err := readFrame(c.br, nil, initiateMin+maxMetadata)
	if err != nil {
		return nil, err
	}
	if flags&flagCommand == 0 || flags&flagMore != 0 {
		return nil, fmt.Errorf("%w: frame flags %#x during handshake", ErrMalformed, flags)
	}
	return body, nil
}

// Read gives zmq4 the peer's greeting, then plaintext frames.
func (c *wireConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return 0, c.rerr
	}
	if c.sess == nil {
		if c.rgreet+len(p) > greetingSize {
			return 0, protoError{fmt.Errorf("curve: zmq4 read before the handshake ended: %w", ErrTransport)}
		}
		n, err := c.br.Read(p)
		c.rgreet += n
		return n, err
	}
	for len(c.rpend) == 0 {
		if err := c.nextFrame(); err != nil {
			c.rerr = err
			return 0, err
		}
	}
	// Fill p with as many frames as are already here, to save a caller
	// with a large buffer one Read per header and per body.
	n := 0
	for n < len(p) {
		k := copy(p[n:], c.rpend[0])
		n += k
		c.rpend[0] = c.rpend[0][k:]
		if len(c.rpend[0]) == 0 {
			c.rpend = c.rpend[1:]
		}
		if len(c.rpend) == 0 {
			if n == len(p) || !c.frameBuffered() {
				break
			}
			if err := c.nextFrame(); err != nil {
				c.rerr = err // reported by the next Read
				break
			}
		}
	}
	return n, nil
}

// frameBuffered reports whether a whole wire frame is already buffered, so
// that reading it cannot block.
func (c *wireConn) frameBuffered() bool {
	avail := c.br.Buffered()
	if avail < 2 {
		return false
	}
	hdr, _ := c.br.Peek(2)
	size, hlen := uint64(hdr[1]), 2
	if hdr[0]&flagLong != 0 {
		if avail < 9 {
			return false
		}
		hdr, _ = c.br.Peek(9)
		size, hlen = beUint64(hdr[1:9]), 9
	}
	return size <= uint64(avail-hlen)
}

func (c *wireConn) nextFrame() error {
	if cap(c.rbuf) > keepBuffer || cap(c.rplain) > keepBuffer {
		c.rbuf, c.rplain = nil, nil // do not keep a rare huge frame's memory
	}
	_, body, err := readFrame(c.br, c.rbuf, c.maxFrame)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || !isProtocol(err) {
			return err
		}
		return c.reject(err)
	}
	c.rbuf = body
	plain, err := c.sess.open(c.rplain[:0], body)
	if err != nil {
		return c.reject(err)
	}
	c.rplain = plain
	var flags byte
	if plain[0]&msgFlagMore != 0 {
		flags |= flagMore
	}
	if plain[0]&msgFlagCommand != 0 {
		flags |= flagCommand
	}
	c.rhdr = appendFrameHeader(c.rhdr[:0], flags, len(plain)-1)
	c.rpendArr = [2][]byte{c.rhdr, plain[1:]}
	c.rpend = c.rpendArr[:]
	return nil
}

func isProtocol(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge)
}

// reject counts a bad MESSAGE and closes the connection, as RFC 26 asks.
func (c *wireConn) reject(err error) error {
	c.sec.badMessages.Add(1)
	c.sec.opts.log.Warn().Err(err).Stringer("remote", c.RemoteAddr()).Msg("curve message rejected")
	_ = c.Conn.Close()
	return protoError{fmt.Errorf("curve: from %s: %w", c.RemoteAddr(), err)}
}

const (
	wsFlags = iota
	wsSize
	wsBody
)

// Write takes zmq4's greeting, then the bind token, then plaintext frames,
// which it seals one by one into MESSAGE commands.
func (c *wireConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.write(p)
}

func (c *wireConn) write(p []byte) (int, error) {
	if len(c.wgreet) < greetingSize {
		return c.writeGreeting(p)
	}
	if !c.bound {
		b := lookupBinding(p)
		if b == nil {
			return 0, protoError{fmt.Errorf("curve: zmq4 wrote before the handshake: %w", ErrTransport)}
		}
		b.conn, c.bound = c, true
		return len(p), nil
	}
	if c.sess == nil {
		return 0, protoError{fmt.Errorf("curve: zmq4 wrote during the handshake: %w", ErrTransport)}
	}
	n := len(p)
	for len(p) > 0 {
		switch c.wstate {
		case wsFlags:
			c.wflags = p[0]
			p = p[1:]
			c.wsizeGot, c.wsizeLen = 0, 1
			if c.wflags&flagLong != 0 {
				c.wsizeLen = 8
			}
			c.wstate = wsSize
		case wsSize:
			k := copy(c.wsize[c.wsizeGot:c.wsizeLen], p)
			p = p[k:]
			c.wsizeGot += k
			if c.wsizeGot < c.wsizeLen {
				continue
			}
			c.wremain = uint64(c.wsize[0])
			if c.wsizeLen == 8 {
				c.wremain = beUint64(c.wsize[:])
			}
			var mf byte
			if c.wflags&flagMore != 0 {
				mf |= msgFlagMore
			}
			if c.wflags&flagCommand != 0 {
				mf |= msgFlagCommand
			}
			c.wplain = append(c.wplain[:0], mf)
			c.wstate = wsBody
			if c.wremain == 0 {
				if err := c.sendFrame(); err != nil {
					return 0, err
				}
			}
		case wsBody:
			k := len(p)
			if uint64(k) > c.wremain {
				k = int(c.wremain)
			}
			c.wplain = append(c.wplain, p[:k]...)
			p = p[k:]
			c.wremain -= uint64(k)
			if c.wremain == 0 {
				if err := c.sendFrame(); err != nil {
					return 0, err
				}
			}
		}
	}
	if err := c.flush(); err != nil {
		return 0, err
	}
	return n, nil
}

func (c *wireConn) writeGreeting(p []byte) (int, error) {
	k := greetingSize - len(c.wgreet)
	if k > len(p) {
		k = len(p)
	}
	c.wgreet = append(c.wgreet, p[:k]...)
	if len(c.wgreet) < greetingSize {
		return k, nil
	}
	if mech := string(c.wgreet[12:17]); mech != string(zmq4.CurveSecurity) || c.wgreet[17] != 0 {
		return 0, protoError{fmt.Errorf("curve: zmq4 socket without curve Security on %s endpoint: %w", Scheme, ErrTransport)}
	}
	if _, err := c.Conn.Write(c.wgreet); err != nil {
		return 0, err
	}
	if k < len(p) {
		n, err := c.write(p[k:]) // not reached with zmq4, which writes the greeting alone
		return k + n, err
	}
	return k, nil
}

// sendFrame seals the assembled frame into c.wout; write sends c.wout once
// per call, so a caller that writes many frames at once (a bufio.Writer)
// gets one TCP write for them all.
func (c *wireConn) sendFrame() error {
	c.wstate = wsFlags
	size := len(cmdMessage) + shortNonceSz + len(c.wplain) + boxOverhead
	out, err := c.sess.seal(appendFrameHeader(c.wout, 0, size), c.wplain)
	if err != nil {
		return protoError{err}
	}
	c.wout = out
	return nil
}

func (c *wireConn) flush() error {
	if len(c.wout) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.wout)
	c.wout = c.wout[:0]
	if cap(c.wout) > keepBuffer {
		c.wout = nil
	}
	return err
}

func beUint64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}
