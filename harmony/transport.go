package harmony

import (
	"context"
	"errors"
	"log"
	"net"
	"strings"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
	"github.com/rs/zerolog"
)

// zmqLogger routes zmq4's own messages (such as a peer that went away
// during the handshake) to our logger at debug level, instead of stderr.
func zmqLogger(l zerolog.Logger) *log.Logger {
	return log.New(debugWriter{l.With().Str("from", "zmq4").Logger()}, "", 0)
}

type debugWriter struct{ l zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.l.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// linkScheme is the zmq4 transport our links dial with: plain TCP whose
// connection is closed as soon as the socket's context ends. zmq4's ZMTP
// handshake has no timeout and ignores the context, so a peer that accepts
// TCP but never answers (a stopped process, a hung host) would otherwise
// hold Dial, and the Close that waits for it, forever.
const linkScheme = "harmony+tcp"

func init() {
	// Registered once per process; the name is ours alone.
	_ = zmq4.RegisterTransport(linkScheme, linkTransport{})
}

type linkTransport struct{}

func (linkTransport) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	return &ctxConn{Conn: c, stop: stop}, nil
}

func (linkTransport) Listen(context.Context, string) (net.Listener, error) {
	return nil, errors.New("harmony: the link transport only dials")
}

func (linkTransport) Addr(ep string) (string, error) { return transport.New("tcp").Addr(ep) }

// ctxConn is a TCP connection tied to its socket's context.
type ctxConn struct {
	net.Conn
	stop func() bool
}

func (c *ctxConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// linkEndpoint turns "tcp://host:port" into the same address on linkScheme.
func linkEndpoint(ep string) string {
	if rest, ok := strings.CutPrefix(ep, "tcp://"); ok {
		return linkScheme + "://" + rest
	}
	return ep
}
