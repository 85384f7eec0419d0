package logpub

// CURVE on the log streams. A Hub with HubConfig.Curve upgrades every TCP
// connection of its publish endpoint (subscribers and --since queries) and
// every non-loopback connection of its writer endpoint with the CURVE
// handshake of package curve, in the connection's own goroutine, before
// reading anything from it. After the handshake the connection carries
// logpub's ordinary frames inside sealed ZMTP frames (curveStream), so the
// rest of the Hub, Subscribe and the Writer see a plain net.Conn.
//
// Local writers (loopback TCP, unix sockets) stay plaintext: their bytes
// never leave the host, a writer can only add events (never read any), and
// every app on the host would otherwise need the node's keys.
//
// There is no downgrade either way. A keyed hub sends its CURVE greeting
// first, so a plaintext client's first read starts with the ZMTP signature
// byte 0xFF, which no logpub frame can start with: it fails at once with
// ErrCurveRequired. A plaintext hub answers a ZMTP greeting with a NULL
// greeting and closes, so a keyed client fails at once with ErrNotCurve.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/zmtp"
)

// CurveServer closes a Hub's TCP endpoints with CURVE (HubConfig.Curve).
type CurveServer struct {
	// Keys is the hub's long-term key pair: logd's mesh keys, whose public
	// half peers learn from the mesh header X-PUBLICKEY.
	Keys curve.KeyPair
	// Authorize admits a client's public key, e.g. an AllowList's
	// Authorize. Required.
	Authorize curve.AuthorizeFunc
}

// CurveClient is what a subscriber or Writer needs to reach a keyed Hub
// (SubscribeOptions.Curve, WriterOptions.Curve).
type CurveClient struct {
	// Keys is the client's long-term key pair; the hub must admit its
	// public key.
	Keys curve.KeyPair
	// Server is the hub's public key (its node's X-PUBLICKEY): the
	// handshake fails unless the hub proves it holds the secret.
	Server curve.PublicKey
}

// Errors of a mismatch between a client's and a hub's security.
var (
	// ErrCurveRequired: the hub speaks CURVE and the client has no keys.
	ErrCurveRequired = errors.New("logpub: the hub requires CURVE (give this client the mesh keys)")
	// ErrNotCurve: the client has keys and the hub does not speak CURVE.
	ErrNotCurve = errors.New("logpub: the hub does not speak CURVE (refusing plaintext)")
)

// CurveStats counts the CURVE handshakes of a Hub's endpoints.
type CurveStats struct {
	Handshakes   uint64 // completed handshakes
	Refused      uint64 // connections refused at the handshake: plaintext, malformed, timed out or unauthorized
	Unauthorized uint64 // of Refused: a valid key the Authorize func did not admit
	BadMessages  uint64 // sealed frames that did not open; the connection was closed
	// CurveOnPlain counts CURVE clients a hub without keys turned away.
	CurveOnPlain uint64
}

// streamChunk is the largest ZMTP frame of a curveStream: writes are cut
// into frames of at most this size, larger received frames are refused
// before anything is allocated for them.
const streamChunk = 64 << 10

// hubCurve is a Hub's CURVE state; sec is nil on a hub without keys.
type hubCurve struct {
	sec                   *curve.Security
	refused, curveOnPlain atomic.Uint64
}

// initCurve checks HubConfig.Curve and makes the Hub's server Security.
func (h *Hub) initCurve() error {
	c := h.cfg.Curve
	if c == nil {
		return nil
	}
	if c.Authorize == nil {
		return errors.New("logpub: HubConfig.Curve.Authorize is required")
	}
	h.curve.sec = curve.NewServer(c.Keys, c.Authorize,
		curve.WithLogger(h.log), curve.WithMaxMessageSize(streamChunk))
	return nil
}

// CurveStats returns the counters of the Hub's CURVE handshakes.
func (h *Hub) CurveStats() CurveStats {
	s := CurveStats{Refused: h.curve.refused.Load(), CurveOnPlain: h.curve.curveOnPlain.Load()}
	if h.curve.sec != nil {
		cs := h.curve.sec.Stats()
		s.Handshakes, s.Unauthorized, s.BadMessages = cs.Handshakes, cs.Unauthorized, cs.BadMessages
	}
	return s
}

// PublicKey returns the hub's CURVE public key and true, or false when its
// endpoints are plaintext.
func (h *Hub) PublicKey() (curve.PublicKey, bool) {
	if h.curve.sec == nil {
		return curve.PublicKey{}, false
	}
	return h.curve.sec.PublicKey(), true
}

// admit prepares an accepted connection: the CURVE handshake where the
// Hub requires it, else the plaintext guard. pub tells the publish
// endpoint (always CURVE on TCP) from the writer endpoint (CURVE unless
// loopback).
func (h *Hub) admit(c net.Conn, pub bool) (net.Conn, error) {
	if h.curve.sec == nil || !needsCurve(c.LocalAddr(), pub) {
		return &plainServerConn{Conn: c, h: h}, nil
	}
	if !h.adm.HandshakeFor(c) {
		h.shedHandshakes.Add(1)
		h.log.Warn().Str("peer", c.RemoteAddr().String()).Float64("per_second", h.cfg.HandshakesPerSource).
			Msg("closing connection: its source is starting CURVE handshakes faster than allowed")
		c.Close()
		return nil, errShed
	}
	cc, err := h.curve.sec.Upgrade(h.ctx, c, map[string]string{"X-Logpub": "hub"})
	if err != nil {
		h.curve.refused.Add(1)
		if h.ctx.Err() == nil {
			h.log.Warn().Str("peer", c.RemoteAddr().String()).Err(err).Msg("CURVE handshake refused")
		}
		return nil, err
	}
	return newCurveStream(cc), nil
}

// needsCurve says whether a connection with this local address is CURVE
// when keys are configured: every TCP connection of the publish endpoint,
// and the writer endpoint's unless loopback.
func needsCurve(local net.Addr, pub bool) bool {
	ta, ok := local.(*net.TCPAddr)
	if !ok {
		return false // unix socket: file permissions guard it
	}
	return pub || !ta.IP.IsLoopback()
}

// dialHub connects to a hub endpoint, with the CURVE handshake when cc is
// set and the connection needs it (see needsCurve, seen from the client:
// pub for subscriptions, the writer rule for Writers).
func dialHub(ctx context.Context, ep string, cc *CurveClient, pub bool) (net.Conn, error) {
	c, err := dial(ctx, ep)
	if err != nil {
		return nil, err
	}
	ta, _ := c.RemoteAddr().(*net.TCPAddr)
	if cc == nil || ta == nil || !(pub || !ta.IP.IsLoopback()) {
		return &plainClientConn{Conn: c}, nil
	}
	sn := &sniffConn{Conn: c}
	sec := curve.NewClient(cc.Keys, cc.Server, curve.WithMaxMessageSize(streamChunk))
	up, err := sec.Upgrade(ctx, sn, map[string]string{"X-Logpub": "client"})
	if err != nil {
		if sn.notCurve() {
			return nil, fmt.Errorf("%w: %s: %w", ErrNotCurve, ep, err)
		}
		return nil, fmt.Errorf("logpub: CURVE handshake with %s: %w", ep, err)
	}
	return newCurveStream(up), nil
}

// nullGreeting is a ZMTP 3.0 greeting with the NULL mechanism: a plaintext
// hub's answer to a CURVE client, so that it fails at once and clearly.
var nullGreeting = func() []byte {
	g := make([]byte, 64)
	g[0], g[8], g[9], g[10] = 0xFF, 0x01, 0x7F, 3
	copy(g[12:], "NULL")
	return g
}()

// plainServerConn is a plaintext hub connection that turns away a client
// greeting with ZMTP (a CURVE client): no logpub frame starts with 0xFF, as
// frames are at most MaxFrame bytes.
type plainServerConn struct {
	net.Conn
	h       *Hub
	checked bool
}

func (c *plainServerConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.checked || n == 0 {
		return n, err
	}
	c.checked = true
	if p[0] != 0xFF {
		return n, err
	}
	c.h.curve.curveOnPlain.Add(1)
	c.h.log.Warn().Str("peer", c.RemoteAddr().String()).Msg("refused a CURVE client: this hub has no keys")
	// Take the rest of its greeting before answering, so that closing
	// does not reset the connection under the answer.
	c.SetDeadline(time.Now().Add(time.Second))
	if rest := 64 - n; rest > 0 {
		io.CopyN(io.Discard, c.Conn, int64(rest))
	}
	c.Conn.Write(nullGreeting)
	return 0, io.EOF
}

// plainClientConn is a plaintext client connection that recognises a
// keyed hub by the ZMTP greeting it sends first.
type plainClientConn struct {
	net.Conn
	checked bool
}

func (c *plainClientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.checked || n == 0 {
		return n, err
	}
	c.checked = true
	if p[0] == 0xFF {
		return 0, fmt.Errorf("%w: %s", ErrCurveRequired, c.RemoteAddr())
	}
	return n, err
}

// sniffConn keeps the first bytes a client reads during the handshake, to
// tell a plaintext hub (NULL greeting, or no greeting at all) from a
// failed CURVE handshake.
type sniffConn struct {
	net.Conn
	head []byte
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if len(c.head) < 32 {
		c.head = append(c.head, p[:min(n, 32-len(c.head))]...)
	}
	return n, err
}

func (c *sniffConn) notCurve() bool {
	if len(c.head) == 0 {
		return true // closed without a greeting: not a CURVE hub
	}
	if c.head[0] != 0xFF {
		return true
	}
	return len(c.head) == 32 && string(bytes.TrimRight(c.head[12:32], "\x00")) != "CURVE"
}

// curveStream carries logpub's byte stream in the plaintext ZMTP frames of
// a curve.Conn: each Write becomes frames of at most streamChunk bytes
// (sealed one by one by the Conn), and Read returns their bodies in order.
// Deadlines, addresses and Close are the Conn's.
type curveStream struct {
	net.Conn
	r    *bufio.Reader
	left uint64 // bytes of the current frame not yet read
	wmu  sync.Mutex
	hdr  []byte
}

func newCurveStream(c *curve.Conn) *curveStream {
	return &curveStream{Conn: c, r: bufio.NewReaderSize(c, 32<<10)}
}

// Read returns bytes of the frames' bodies. A frame with the MORE or
// COMMAND flag, reserved flags or over streamChunk bytes is an error
// wrapping ErrFrame.
func (s *curveStream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for s.left == 0 {
		flags, size, err := zmtp.ReadHeader(s.r, streamChunk)
		if err != nil {
			if errors.Is(err, zmtp.ErrFrame) {
				return 0, fmt.Errorf("%w: %w", ErrFrame, err)
			}
			return 0, err
		}
		if flags&(zmtp.FlagMore|zmtp.FlagCommand) != 0 {
			return 0, frameErr("ZMTP frame flags %#x in a log stream", flags)
		}
		s.left = size
	}
	if uint64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= uint64(n)
	if errors.Is(err, io.EOF) && s.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Write sends p as one or more frames. It is safe for concurrent use; the
// frames of one Write are never interleaved with another's.
func (s *curveStream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	done := 0
	for done < len(p) {
		k := min(len(p)-done, streamChunk)
		// The Conn assembles a frame from its header and body written
		// apart and seals it once whole: no copy of p here.
		s.hdr = zmtp.AppendHeader(s.hdr[:0], 0, k)
		if _, err := s.Conn.Write(s.hdr); err != nil {
			return done, err
		}
		if _, err := s.Conn.Write(p[done : done+k]); err != nil {
			return done, err
		}
		done += k
	}
	return done, nil
}
