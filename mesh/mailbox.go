package mesh

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/acceptloop"
)

// inbound is one decoded ZRE message and the peer it came from.
type inbound struct {
	from uuid.UUID
	key  *curve.PublicKey // the peer's key, proven by CURVE; nil on NULL
	msg  *zreMsg
	// conn is the connection the message came on and serial its place in
	// the order of accepted connections. A peer's session is bound to the
	// newest connection that carried its messages, so that data on an
	// older one, which TCP may still deliver seconds after a partition
	// heals, is recognised as stale instead of as lost messages.
	conn   net.Conn
	serial uint64
}

// errShed: a connection closed by the per-source limits.
var errShed = errors.New("mesh: connection shed: its address is over its limit")

// shed counts, logs (sampled) and closes a connection refused by the
// per-source limits.
func (n *Node) shed(c net.Conn, what string) {
	n.stats.shed.Add(1)
	n.shedLog.Warn().Str("remote", c.RemoteAddr().String()).Msg("mesh: " + what + ": connection closed at once: its address is over its per-source limit")
	c.Close()
}

// serveMailbox is the ROUTER: it accepts peers' DEALER connections and
// reads their messages, decoded, into inbox. One goroutine per connection;
// all stop when the node's context ends.
func (n *Node) serveMailbox(ln net.Listener, inbox chan<- inbound) {
	var (
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{}
		wg     sync.WaitGroup
		serial uint64 // of the last accepted connection
	)
	stop := context.AfterFunc(n.ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	var pace acceptloop.Pacer
	for {
		conn, err := ln.Accept()
		if err != nil {
			if n.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if !pace.Failed(n.ctx.Done(), &n.log, "mesh mailbox", err) {
				return
			}
			continue
		}
		pace.Accepted(&n.log, "mesh mailbox")
		release, ok := n.adm.Admit(conn)
		if !ok {
			n.shed(conn, "mailbox")
			continue
		}
		mu.Lock()
		if n.ctx.Err() != nil {
			mu.Unlock()
			release()
			conn.Close()
			return
		}
		conns[conn] = struct{}{}
		mu.Unlock()
		serial++
		wg.Add(1)
		go func(serial uint64) {
			defer wg.Done()
			n.readPeer(conn, serial, inbox, release)
			conn.Close()
			mu.Lock()
			delete(conns, conn)
			mu.Unlock()
		}(serial)
	}
}

// readPeer handshakes with one DEALER and reads its messages until the
// connection ends. Malformed messages are counted and skipped; a bad
// handshake, a bad identity or an oversized frame drops the connection.
func (n *Node) readPeer(nc net.Conn, serial uint64, inbox chan<- inbound, handshaken func()) {
	conn := countedConn{nc, &n.stats}
	remote := conn.RemoteAddr().String()
	r, id, ptype, key, err := n.acceptZMTP(conn)
	handshaken()
	if err != nil {
		n.log.Debug().Err(err).Str("remote", remote).Msg("mesh: mailbox handshake failed")
		return
	}
	if ptype != "DEALER" && ptype != "ROUTER" && ptype != "REQ" {
		n.stats.badConns.Add(1)
		n.log.Warn().Str("remote", remote).Str("socket", ptype).Msg("mesh: mailbox refuses incompatible socket type")
		return
	}
	// Zyre discards messages whose routing id is not 1 + a 16-byte UUID.
	if len(id) != 17 || id[0] != 1 {
		n.stats.badConns.Add(1)
		n.log.Warn().Str("remote", remote).Int("id_len", len(id)).Msg("mesh: mailbox refuses a peer without a ZRE identity")
		return
	}
	from, _ := uuid.FromBytes(id[1:])
	for {
		frames, err := readMessage(r, n.cfg.MaxMessageSize)
		if err != nil {
			if n.ctx.Err() == nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				n.stats.badConns.Add(1)
				n.log.Warn().Err(err).Str("peer", from.String()).Str("remote", remote).Msg("mesh: dropping peer connection")
			}
			return
		}
		m, err := decodeZRE(frames)
		if err != nil {
			n.stats.badMessages.Add(1)
			n.log.Warn().Err(err).Str("peer", from.String()).Msg("mesh: ignoring malformed message")
			continue
		}
		select {
		case inbox <- inbound{from: from, key: key, msg: m, conn: nc, serial: serial}:
		case <-n.ctx.Done():
			return
		}
	}
}

// acceptZMTP runs the ROUTER side of the handshake, NULL or CURVE, and
// returns a reader of plaintext frames with the peer's identity, socket
// type and (with CURVE) proven public key.
func (n *Node) acceptZMTP(conn net.Conn) (*bufio.Reader, []byte, string, *curve.PublicKey, error) {
	if n.curveServer == nil {
		r := bufio.NewReaderSize(conn, 8<<10)
		id, ptype, err := zmtpHandshake(conn, r, bufio.NewWriterSize(conn, 512), "ROUTER", nil, handshakeTimeout)
		if err != nil {
			n.stats.badConns.Add(1)
		}
		return r, id, ptype, nil, err
	}
	if !n.adm.HandshakeFor(conn) {
		n.shed(conn, "CURVE handshakes of the mailbox")
		return nil, nil, "", nil, errShed
	}
	c, err := n.curveServer.Upgrade(n.ctx, conn, map[string]string{"Socket-Type": "ROUTER"})
	if err != nil {
		n.stats.refused.Add(1)
		return nil, nil, "", nil, err
	}
	key := c.PeerKey()
	meta := c.PeerMetadata()
	return bufio.NewReaderSize(c, 8<<10), []byte(meta["Identity"]), meta["Socket-Type"], &key, nil
}
