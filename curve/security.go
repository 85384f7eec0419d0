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
		return err
	}
	_ = wc.SetDeadline(s.opts.now().Add(s.opts.handshakeTimeout))
	local, err := conn.Meta.MarshalZMTP()
	if err == nil {
		if s.server {
			err = s.serverHandshake(conn, wc, local)
		} else {
			err = s.clientHandshake(conn, wc, local)
		}
	}
	if err != nil {
		if !errors.Is(err, ErrUnauthorized) {
			s.failures.Add(1)
		}
		s.opts.log.Debug().Err(err).Stringer("remote", wc.RemoteAddr()).Msg("curve handshake failed")
		_ = wc.Close() // zmq4 does not close a connection whose handshake failed
		return err
	}
	s.handshakes.Add(1)
	return nil
}

func (s *Security) clientHandshake(conn *zmq4.Conn, wc *wireConn, local []byte) error {
	ch, err := newClientHandshake(s.long, s.serverKey, s.opts.rand)
	if err != nil {
		return err
	}
	if err := wc.writeCommand(ch.hello()); err != nil {
		return fmt.Errorf("curve: send HELLO to %s: %w", wc.RemoteAddr(), err)
	}
	cmd, err := wc.readCommand()
	if err != nil {
		return fmt.Errorf("curve: read WELCOME from %s: %w", wc.RemoteAddr(), err)
	}
	if hasName(cmd, cmdError) {
		_, _, err := ch.ready(cmd)
		return fmt.Errorf("curve: HELLO to %s: %w", wc.RemoteAddr(), err)
	}
	init, err := ch.initiate(cmd, local, s.opts.rand)
	if err != nil {
		return fmt.Errorf("curve: WELCOME from %s: %w", wc.RemoteAddr(), err)
	}
	if err := wc.writeCommand(init); err != nil {
		return fmt.Errorf("curve: send INITIATE to %s: %w", wc.RemoteAddr(), err)
	}
	if cmd, err = wc.readCommand(); err != nil {
		return fmt.Errorf("curve: read READY from %s: %w", wc.RemoteAddr(), err)
	}
	meta, sess, err := ch.ready(cmd)
	if err != nil {
		return fmt.Errorf("curve: READY from %s: %w", wc.RemoteAddr(), err)
	}
	return s.finish(conn, wc, meta, sess)
}

func (s *Security) serverHandshake(conn *zmq4.Conn, wc *wireConn, local []byte) error {
	hs := &serverHandshake{long: s.long, cookies: s.cookies, rand: s.opts.rand}
	cmd, err := wc.readCommand()
	if err != nil {
		return fmt.Errorf("curve: read HELLO from %s: %w", wc.RemoteAddr(), err)
	}
	wel, err := hs.welcome(cmd)
	if err != nil {
		return fmt.Errorf("curve: HELLO from %s: %w", wc.RemoteAddr(), err)
	}
	if err := wc.writeCommand(wel); err != nil {
		return fmt.Errorf("curve: send WELCOME to %s: %w", wc.RemoteAddr(), err)
	}
	if cmd, err = wc.readCommand(); err != nil {
		return fmt.Errorf("curve: read INITIATE from %s: %w", wc.RemoteAddr(), err)
	}
	client, meta, err := hs.initiate(cmd)
	if err != nil {
		return fmt.Errorf("curve: INITIATE from %s: %w", wc.RemoteAddr(), err)
	}
	if s.authorize != nil {
		if aerr := s.authorize(client, wc.RemoteAddr()); aerr != nil {
			s.unauthorized.Add(1)
			s.opts.log.Warn().Stringer("key", client).Stringer("remote", wc.RemoteAddr()).Err(aerr).Msg("curve client refused")
			_ = wc.writeCommand(encodeError("not authorized"))
			return fmt.Errorf("%w: %s from %s: %w", ErrUnauthorized, client, wc.RemoteAddr(), aerr)
		}
	}
	rdy, sess := hs.ready(local)
	if err := wc.writeCommand(rdy); err != nil {
		return fmt.Errorf("curve: send READY to %s: %w", wc.RemoteAddr(), err)
	}
	return s.finish(conn, wc, meta, sess)
}

// finish checks the peer's metadata, hands it to zmq4 and switches the
// connection to MESSAGE framing.
func (s *Security) finish(conn *zmq4.Conn, wc *wireConn, meta []byte, sess *session) error {
	if _, err := parseMetadata(meta); err != nil {
		return fmt.Errorf("curve: metadata from %s: %w", wc.RemoteAddr(), err)
	}
	// parseMetadata has checked every bound zmq4's parser relies on.
	if err := conn.Peer.Meta.UnmarshalZMTP(meta); err != nil {
		return fmt.Errorf("curve: metadata from %s: %w", wc.RemoteAddr(), err)
	}
	wc.establish(sess, s)
	return nil
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
