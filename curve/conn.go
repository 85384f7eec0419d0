package curve

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"time"
)

// Conn is a connection after the ZMTP greeting and the CURVE handshake made
// by Security.Upgrade. Read returns, and Write takes, plaintext ZMTP frames
// (RFC 23 framing, as after a NULL handshake); on the wire each frame
// travels sealed in a MESSAGE command. It is for code that speaks ZMTP on
// its own sockets (the mesh) rather than through zmq4. Deadlines and Close
// apply to the underlying connection.
type Conn struct {
	net.Conn
	peerKey  PublicKey
	peerMeta map[string]string
}

// PeerKey returns the peer's long-term public key, proven by the handshake:
// the client's key on a server, the server's key on a client.
func (c *Conn) PeerKey() PublicKey { return c.peerKey }

// PeerMetadata returns the peer's ZMTP metadata (Socket-Type, Identity...).
func (c *Conn) PeerMetadata() map[string]string { return c.peerMeta }

// Upgrade runs, on a freshly connected conn, the ZMTP 3.0 greeting with the
// CURVE mechanism and the CURVE handshake in this Security's role, sending
// local as metadata (e.g. Socket-Type and Identity). A peer that greets
// with another mechanism (NULL, PLAIN) is refused: there is no downgrade.
// The handshake is bounded by the handshake timeout and by ctx. On error
// conn is closed.
func (s *Security) Upgrade(ctx context.Context, conn net.Conn, local map[string]string) (*Conn, error) {
	wc := newWireConn(conn)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_ = conn.SetDeadline(s.opts.now().Add(s.opts.handshakeTimeout))
	if err := s.greet(wc); err != nil {
		s.failures.Add(1)
		_ = conn.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, err
	}
	localMeta, err := encodeMetadata(local)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	key, meta, err := s.handshake(wc, localMeta)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, err
	}
	props, _ := parseMetadata(meta) // checked by handshake
	return &Conn{Conn: wc, peerKey: key, peerMeta: props}, nil
}

// greet exchanges ZMTP 3.0 greetings announcing CURVE on wc.
func (s *Security) greet(wc *wireConn) error {
	g := make([]byte, greetingSize)
	g[0], g[8], g[9], g[10], g[11] = 0xFF, 0x01, 0x7F, 3, 0
	copy(g[12:32], "CURVE")
	if s.server {
		g[32] = 1
	}
	wc.wgreet, wc.bound = g, true // the wireConn's own greeting state is done
	if _, err := wc.Conn.Write(g); err != nil {
		return fmt.Errorf("curve: send greeting to %s: %w", wc.RemoteAddr(), err)
	}
	var peer [greetingSize]byte
	if _, err := io.ReadFull(wc.br, peer[:]); err != nil {
		return fmt.Errorf("curve: read greeting from %s: %w", wc.RemoteAddr(), err)
	}
	wc.rgreet = greetingSize
	if peer[0] != 0xFF || peer[9]&1 != 1 || peer[10] < 3 {
		return fmt.Errorf("%w: %s sent no ZMTP 3 greeting", ErrMalformed, wc.RemoteAddr())
	}
	if mech := string(bytes.TrimRight(peer[12:32], "\x00")); mech != "CURVE" {
		return fmt.Errorf("%w: %s greets with mechanism %q, want CURVE", ErrMalformed, wc.RemoteAddr(), mech)
	}
	return nil
}

// encodeMetadata encodes ZMTP metadata, sorted by name.
func encodeMetadata(props map[string]string) ([]byte, error) {
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	sort.Strings(names)
	var b []byte
	for _, k := range names {
		if len(k) == 0 || len(k) > 255 {
			return nil, fmt.Errorf("curve: metadata property name %q", k)
		}
		v := props[k]
		b = append(b, byte(len(k)))
		b = append(b, k...)
		b = append(b, byte(len(v)>>24), byte(len(v)>>16), byte(len(v)>>8), byte(len(v)))
		b = append(b, v...)
	}
	return b, nil
}
