package harmony

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/go-zeromq/zmq4"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
)

// Harmony's sockets may be closed with CURVE: a Worker or Collector with
// Keys and Authorize admits only clients with an admitted key (a NULL
// client is refused), and a Ventilator or Worker with Keys dials only
// servers whose public key it knows, speaking CURVE. That key travels
// with the endpoint, after a '|', as Zyre's gossip carries it:
// "tcp://10.0.0.5:41000|<40 characters of Z85>". Collector.Endpoint gives
// that form when the collector has Keys, so the tasks tell workers the
// collector's key as well as its address.

// KeyedEndpoint returns ep with the CURVE public key of the server there.
func KeyedEndpoint(ep string, key curve.PublicKey) string { return ep + "|" + key.String() }

// SplitEndpoint splits "ep|key" into its endpoint and key; keyed is false
// for a plain endpoint.
func SplitEndpoint(s string) (ep string, key curve.PublicKey, keyed bool, err error) {
	ep, text, keyed := strings.Cut(s, "|")
	if !keyed {
		return s, curve.PublicKey{}, false, nil
	}
	key, err = curve.ParsePublicKey(text)
	if err != nil {
		return "", curve.PublicKey{}, false, fmt.Errorf("harmony: endpoint %q: %w", s, err)
	}
	return ep, key, true, nil
}

// linkSecurity is how a component's links dial: with CURVE when keys is
// set. refused counts the connections refused for their security.
type linkSecurity struct {
	keys    *curve.KeyPair
	refused *atomic.Int64
	log     zerolog.Logger
}

// serverRefused sums the refusals of a server socket's CURVE mechanism (nil
// when open) and of its guarded transport.
func serverRefused(sec *curve.Security, mechanism uint64) int64 {
	n := int64(mechanism)
	if sec != nil {
		st := sec.Stats()
		n += int64(st.Failures + st.Unauthorized)
	}
	return n
}

// serverSecurity returns the CURVE server of a Worker or Collector with
// Keys, or nil for an open socket.
func serverSecurity(keys *curve.KeyPair, authorize curve.AuthorizeFunc, log zerolog.Logger) (*curve.Security, error) {
	if keys == nil {
		return nil, nil
	}
	if authorize == nil {
		return nil, errors.New("Keys without Authorize")
	}
	return curve.NewServer(*keys, authorize, curve.WithLogger(log)), nil
}

// newRouter makes a Worker's or Collector's ROUTER, closed with sec when
// set. It listens on zmtpguard.ListenEndpoint: the guarded transports
// screen each connection before zmq4's accept loop, with or without CURVE.
func newRouter(ctx context.Context, sec *curve.Security, log zerolog.Logger) zmq4.Socket {
	opts := []zmq4.Option{zmq4.WithID(zmq4.SocketIdentity(uuid.NewString())), zmq4.WithLogger(zmqLogger(log))}
	if sec != nil {
		opts = append(opts, zmq4.WithSecurity(sec))
	}
	return zmq4.NewRouter(ctx, opts...)
}
