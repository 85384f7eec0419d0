package curve

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/rs/zerolog"
)

// Defaults of the Options.
const (
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultMaxMessageSize   = 64 << 20
)

// ErrTransport reports a Security used on an endpoint that is not
// curve+tcp:// (see Endpoint).
var ErrTransport = errors.New("curve: connection not made through the " + Scheme + " transport")

// AuthorizeFunc decides, like a ZAP handler, whether a client that proved it
// holds the secret of key may connect from remote. A nil error admits it.
type AuthorizeFunc func(key PublicKey, remote net.Addr) error

// Option tunes a Security.
type Option func(*options)

type options struct {
	log              zerolog.Logger
	handshakeTimeout time.Duration
	maxMessageSize   int64
	rand             io.Reader
	now              func() time.Time
}

// WithLogger logs refused handshakes and bad messages (default: no logging).
func WithLogger(l zerolog.Logger) Option { return func(o *options) { o.log = l } }

// WithHandshakeTimeout bounds the ZMTP greeting and CURVE handshake
// (default DefaultHandshakeTimeout). zmq4 accepts connections one at a time,
// so a client that stalls its handshake holds up the others until then.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(o *options) { o.handshakeTimeout = d }
}

// WithMaxMessageSize bounds a received frame (default DefaultMaxMessageSize);
// a larger one closes the connection before anything is allocated for it.
func WithMaxMessageSize(n int64) Option { return func(o *options) { o.maxMessageSize = n } }

// Stats counts what a Security has seen, over all its connections.
type Stats struct {
	Handshakes   uint64 // completed handshakes
	Failures     uint64 // handshakes failed: malformed, wrong key, timeout
	Unauthorized uint64 // clients refused by AuthorizeFunc
	BadMessages  uint64 // MESSAGE commands rejected: tampered, replayed, malformed, too large
}

// Security is the CURVE mechanism (ZMTP-CURVE, CurveZMQ RFC 26) as a
// zmq4.Security. One value serves every connection of a socket; it is safe
// for concurrent use. Use it only on curve+tcp:// endpoints (see Endpoint).
type Security struct {
	server    bool
	long      KeyPair
	serverKey PublicKey // client: the server's long-term key
	authorize AuthorizeFunc
	cookies   *cookieKeys
	opts      options

	handshakes, failures, unauthorized, badMessages atomic.Uint64
}

var _ zmq4.Security = (*Security)(nil)

// NewClient returns the client side of CURVE: own is this node's long-term
// key pair, server the long-term public key of the server it dials.
func NewClient(own KeyPair, server PublicKey, opts ...Option) *Security {
	s := newSecurity(own, opts)
	s.serverKey = server
	return s
}

// NewServer returns the server side of CURVE with own long-term key pair.
// authorize, when not nil, is asked about every client key (see AllowList);
// nil admits any client that completes the handshake.
func NewServer(own KeyPair, authorize AuthorizeFunc, opts ...Option) *Security {
	s := newSecurity(own, opts)
	s.server = true
	s.authorize = authorize
	s.cookies = &cookieKeys{now: s.opts.now, rand: s.opts.rand}
	return s
}

func newSecurity(own KeyPair, opts []Option) *Security {
	o := options{
		log:              zerolog.Nop(),
		handshakeTimeout: DefaultHandshakeTimeout,
		maxMessageSize:   DefaultMaxMessageSize,
		rand:             defaultRand,
		now:              time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return &Security{long: own, opts: o}
}

// PublicKey returns the long-term public key of this side.
func (s *Security) PublicKey() PublicKey { return s.long.Public }

// Stats returns the counters of this Security.
func (s *Security) Stats() Stats {
	return Stats{
		Handshakes:   s.handshakes.Load(),
		Failures:     s.failures.Load(),
		Unauthorized: s.unauthorized.Load(),
		BadMessages:  s.badMessages.Load(),
	}
}

// Type returns zmq4.CurveSecurity: the greeting announces "CURVE", so a
// NULL or PLAIN peer is refused by zmq4 before any command (no downgrade).
func (s *Security) Type() zmq4.SecurityType { return zmq4.CurveSecurity }

// Encrypt passes data through: the curve+tcp connection under conn seals
// whole frames (see transport.go for why it cannot happen here).
func (s *Security) Encrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }

// Decrypt passes data through: the curve+tcp connection has already
// checked and opened the MESSAGE box.
func (s *Security) Decrypt(w io.Writer, data []byte) (int, error) { return w.Write(data) }

// Handshake runs the CURVE handshake on conn. The role (client or server)
// is this Security's, whatever side dialled: CURVE roles are independent
// of bind and connect, as in libzmq.
func (s *Security) Handshake(conn *zmq4.Conn, _ bool) error {
	wc, err := bindConn(conn)
	if err != nil {
		s.failures.Add(1)
		_ = conn.Close() // zmq4 does not close a connection whose handshake failed
		return err
	}
	local, err := conn.Meta.MarshalZMTP()
	if err != nil {
		_ = wc.Close()
		return fmt.Errorf("curve: local metadata: %w", err)
	}
	_, meta, err := s.handshake(wc, local)
	if err != nil {
		return err
	}
	// handshake has checked with parseMetadata every bound zmq4's parser
	// relies on.
	if err := conn.Peer.Meta.UnmarshalZMTP(meta); err != nil {
		_ = wc.Close()
		return fmt.Errorf("curve: metadata from %s: %w", wc.RemoteAddr(), err)
	}
	return nil
}

// handshake runs the CURVE commands on wc, after the greeting, and switches
// wc to MESSAGE framing. It returns the peer's long-term key and metadata.
// On failure it closes wc.
func (s *Security) handshake(wc *wireConn, local []byte) (PublicKey, []byte, error) {
	_ = wc.SetDeadline(s.opts.now().Add(s.opts.handshakeTimeout))
	var (
		peer PublicKey
		meta []byte
		sess *session
		err  error
	)
	if s.server {
		peer, meta, sess, err = s.serverHandshake(wc, local)
	} else {
		peer = s.serverKey
		meta, sess, err = s.clientHandshake(wc, local)
	}
	if err == nil {
		if _, perr := parseMetadata(meta); perr != nil {
			err = fmt.Errorf("curve: metadata from %s: %w", wc.RemoteAddr(), perr)
		}
	}
	if err != nil {
		if !errors.Is(err, ErrUnauthorized) {
			s.failures.Add(1)
		}
		s.opts.log.Debug().Err(err).Stringer("remote", wc.RemoteAddr()).Msg("curve handshake failed")
		_ = wc.Close() // zmq4 does not close a connection whose handshake failed
		return PublicKey{}, nil, err
	}
	wc.establish(sess, s)
	s.handshakes.Add(1)
	return peer, meta, nil
}

func (s *Security) clientHandshake(wc *wireConn, local []byte) ([]byte, *session, error) {
	ch, err := newClientHandshake(s.long, s.serverKey, s.opts.rand)
	if err != nil {
		return nil, nil, err
	}
	if err := wc.writeCommand(ch.hello()); err != nil {
		return nil, nil, fmt.Errorf("curve: send HELLO to %s: %w", wc.RemoteAddr(), err)
	}
	cmd, err := wc.readCommand()
	if err != nil {
		return nil, nil, fmt.Errorf("curve: read WELCOME from %s: %w", wc.RemoteAddr(), err)
	}
	if hasName(cmd, cmdError) {
		_, _, err := ch.ready(cmd)
		return nil, nil, fmt.Errorf("curve: HELLO to %s: %w", wc.RemoteAddr(), err)
	}
	init, err := ch.initiate(cmd, local, s.opts.rand)
	if err != nil {
		return nil, nil, fmt.Errorf("curve: WELCOME from %s: %w", wc.RemoteAddr(), err)
	}
	if err := wc.writeCommand(init); err != nil {
		return nil, nil, fmt.Errorf("curve: send INITIATE to %s: %w", wc.RemoteAddr(), err)
	}
	if cmd, err = wc.readCommand(); err != nil {
		return nil, nil, fmt.Errorf("curve: read READY from %s: %w", wc.RemoteAddr(), err)
	}
	meta, sess, err := ch.ready(cmd)
	if err != nil {
		return nil, nil, fmt.Errorf("curve: READY from %s: %w", wc.RemoteAddr(), err)
	}
	return meta, sess, nil
}

func (s *Security) serverHandshake(wc *wireConn, local []byte) (PublicKey, []byte, *session, error) {
	hs := &serverHandshake{long: s.long, cookies: s.cookies, rand: s.opts.rand}
	fail := func(format string, err error) (PublicKey, []byte, *session, error) {
		return PublicKey{}, nil, nil, fmt.Errorf(format, wc.RemoteAddr(), err)
	}
	cmd, err := wc.readCommand()
	if err != nil {
		return fail("curve: read HELLO from %s: %w", err)
	}
	wel, err := hs.welcome(cmd)
	if err != nil {
		return fail("curve: HELLO from %s: %w", err)
	}
	if err := wc.writeCommand(wel); err != nil {
		return fail("curve: send WELCOME to %s: %w", err)
	}
	if cmd, err = wc.readCommand(); err != nil {
		return fail("curve: read INITIATE from %s: %w", err)
	}
	client, meta, err := hs.initiate(cmd)
	if err != nil {
		return fail("curve: INITIATE from %s: %w", err)
	}
	if s.authorize != nil {
		if aerr := s.authorize(client, wc.RemoteAddr()); aerr != nil {
			s.unauthorized.Add(1)
			s.opts.log.Warn().Stringer("key", client).Stringer("remote", wc.RemoteAddr()).Err(aerr).Msg("curve client refused")
			_ = wc.writeCommand(encodeError("not authorized"))
			return PublicKey{}, nil, nil, fmt.Errorf("%w: %s from %s: %w", ErrUnauthorized, client, wc.RemoteAddr(), aerr)
		}
	}
	rdy, sess := hs.ready(local)
	if err := wc.writeCommand(rdy); err != nil {
		return fail("curve: send READY to %s: %w", err)
	}
	return client, meta, sess, nil
}

// zmq4 v0.17.0 gives a Security only the *zmq4.Conn, never its net.Conn.
// Handshake reaches the curve+tcp connection under it by writing a one-time
// token through conn.Write; the wireConn recognises and swallows it.
var (
	bindings sync.Map // uint64 -> *binding
	bindSeq  atomic.Uint64
)

const bindMagic = "\x00logmesh/curve/bind\x00"

type binding struct{ conn *wireConn }

func bindConn(conn *zmq4.Conn) (*wireConn, error) {
	id := bindSeq.Add(1)
	b := &binding{}
	bindings.Store(id, b)
	defer bindings.Delete(id)
	token := binary.BigEndian.AppendUint64([]byte(bindMagic), id)
	if _, err := conn.Write(token); err != nil {
		return nil, fmt.Errorf("curve: bind connection: %w", err)
	}
	if b.conn == nil {
		return nil, ErrTransport
	}
	return b.conn, nil
}

func lookupBinding(token []byte) *binding {
	if len(token) != len(bindMagic)+8 || string(token[:len(bindMagic)]) != bindMagic {
		return nil
	}
	v, ok := bindings.Load(binary.BigEndian.Uint64(token[len(bindMagic):]))
	if !ok {
		return nil
	}
	return v.(*binding)
}
