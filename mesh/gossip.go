package mesh

// Gossip discovery for networks that UDP broadcast does not reach, on the
// wire of czmq's zgossip (ZGP), as Zyre uses it:
//
//   - A node with Config.GossipBind serves gossip: peers connect to it and
//     say HELLO; it sends them every tuple it knows.
//   - A node with Config.Join connects to each seed and PUBLISHes its tuple
//     key = its UUID (32 upper-case hex digits, as Zyre), value = its
//     mailbox endpoint, ttl = its expired timeout.
//   - Whoever learns a new tuple (or a fresh copy of a known one) forwards
//     it to every other gossip link, servers and clients alike, and tells
//     the actor, which connects to the peer and says HELLO. So N nodes that
//     all join one seed find each other, and seeds that join each other
//     merge their meshes.
//   - Every node republishes its tuple every ttl/3. Tuples not refreshed
//     within their ttl are forgotten, so a dead node stops being retried.
//     A copy is forwarded only when it extends the stored expiry by more
//     than a quarter ttl, so echoes die out on cycles.
//   - Clients PING their seeds every 400 ms and greet again on INVALID:
//     czmq's zgossip server forgets a client silent for a second.
//
// The interop tests run czmq's own zgossip (libczmq) as seed and as client.

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/acceptloop"
)

const (
	maxGossipTTL = 10 * time.Minute
	// maxGossipTuples bounds what a node stores (and dials) from gossip,
	// so a rogue client cannot make it grow or dial without bound.
	maxGossipTuples = 10000
	// gossipPing is how often a node pings its seeds. A czmq zgossip
	// server forgets a client that is silent for a second (its default
	// server/timeout) and stops forwarding tuples to it.
	gossipPingEvery = 400 * time.Millisecond
)

// gossipTuple is a peer learned by gossip.
type gossipTuple struct {
	id       uuid.UUID
	endpoint string
	key      *curve.PublicKey // from "endpoint|key", as Zyre publishes with CURVE
	ttl      time.Duration
}

type storedTuple struct {
	value   string
	expires time.Time
}

// glink is one gossip connection, to a seed (client) or from a node we
// serve (server side).
type glink struct {
	q      chan []byte
	remote string
	client bool
}

type gossipEvent struct {
	link *glink
	up   bool
	down bool
	msg  *gossipMsg
}

// gossip owns the tuples and links; its loop is the only goroutine that
// touches them. Links have a reader and a writer goroutine each.
type gossip struct {
	n       *Node
	key     string
	value   string
	ttl     time.Duration
	learned chan gossipTuple
	events  chan gossipEvent
	ln      net.Listener
}

// gossipKey is a UUID as Zyre publishes it.
func gossipKey(id uuid.UUID) string { return strings.ToUpper(hex.EncodeToString(id[:])) }

// startGossip binds the gossip server (GossipBind) and starts the links to
// the seeds (Join). It returns nil when neither is configured.
func (n *Node) startGossip(ctx context.Context) (*gossip, error) {
	if n.cfg.GossipBind == "" && len(n.cfg.Join) == 0 {
		return nil, nil
	}
	g := &gossip{
		n:       n,
		key:     gossipKey(n.id),
		value:   n.endpoint,
		ttl:     n.cfg.ExpiredTimeout,
		learned: make(chan gossipTuple, 256),
		events:  make(chan gossipEvent, 64),
	}
	if n.cfg.Curve != nil {
		g.value += "|" + n.cfg.Curve.Keys.Public.String()
	}
	if n.cfg.GossipBind != "" {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp4", strings.TrimPrefix(n.cfg.GossipBind, "tcp://"))
		if err != nil {
			return nil, fmt.Errorf("mesh: bind gossip %s: %w", n.cfg.GossipBind, err)
		}
		g.ln = ln
	}
	return g, nil
}

// GossipAddr returns the address the gossip server listens on ("host:port"),
// or "" when the node serves no gossip.
func (n *Node) GossipAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.gossip == nil || n.gossip.ln == nil {
		return ""
	}
	return n.gossip.ln.Addr().String()
}

// run starts the server and the seed links and runs the loop until the
// node's context ends.
func (g *gossip) run() {
	ctx := g.n.ctx
	var wg sync.WaitGroup
	defer wg.Wait()
	if g.ln != nil {
		wg.Add(1)
		go func() { defer wg.Done(); g.serve(ctx, &wg) }()
	}
	for _, seed := range g.n.cfg.Join {
		wg.Add(1)
		go func() { defer wg.Done(); g.dialSeed(ctx, &wg, strings.TrimPrefix(seed, "tcp://")) }()
	}
	g.loop(ctx)
}

func (g *gossip) loop(ctx context.Context) {
	tuples := map[string]*storedTuple{}
	links := map[*glink]bool{}
	republish := time.NewTicker(g.ttl / 3)
	defer republish.Stop()
	ping := time.NewTicker(gossipPingEvery)
	defer ping.Stop()
	own := func() *gossipMsg {
		return &gossipMsg{ID: gossipPublish, Key: g.key, Value: g.value, TTL: uint32(g.ttl / time.Millisecond)}
	}
	// greet says HELLO on a link to a seed and sends it every tuple.
	greet := func(l *glink) {
		if l.client {
			g.send(l, &gossipMsg{ID: gossipHello})
		}
		g.send(l, own())
		now := time.Now()
		for k, t := range tuples {
			if left := t.expires.Sub(now); left > 0 {
				g.send(l, &gossipMsg{ID: gossipPublish, Key: k, Value: t.value, TTL: uint32(left / time.Millisecond)})
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-ping.C:
			for l := range links {
				if l.client {
					g.send(l, &gossipMsg{ID: gossipPing})
				}
			}
		case now := <-republish.C:
			for k, t := range tuples {
				if now.After(t.expires) {
					delete(tuples, k)
				}
			}
			for l := range links {
				g.send(l, own())
			}
		case ev := <-g.events:
			l := ev.link
			switch {
			case ev.up:
				links[l] = true
				greet(l)
			case ev.down:
				delete(links, l)
			case ev.msg.ID == gossipInvalid && l.client:
				// The seed forgot us (as czmq does after a silence):
				// start over, as czmq's own client does.
				g.n.log.Debug().Str("seed", l.remote).Msg("mesh: gossip seed reset us, greeting again")
				greet(l)
			default:
				g.handle(ctx, l, ev.msg, tuples, links)
			}
		}
	}
}

func (g *gossip) handle(ctx context.Context, from *glink, m *gossipMsg, tuples map[string]*storedTuple, links map[*glink]bool) {
	switch m.ID {
	case gossipPing:
		g.send(from, &gossipMsg{ID: gossipPong})
		return
	case gossipInvalid:
		return // from a client: nothing to do
	case gossipPublish:
	default:
		return
	}
	id, err := uuid.Parse(m.Key)
	endpoint, keyText, hasKey := strings.Cut(m.Value, "|") // Zyre appends "|<public key>" with CURVE
	var key *curve.PublicKey
	if hasKey && err == nil {
		var k curve.PublicKey
		k, err = curve.ParsePublicKey(keyText)
		key = &k
	}
	if err != nil || !strings.HasPrefix(endpoint, "tcp://") {
		g.n.stats.badGossip.Add(1)
		g.n.log.Warn().Str("key", m.Key).Str("value", m.Value).Str("remote", from.remote).Msg("mesh: ignoring gossip tuple that is not uuid=tcp endpoint")
		return
	}
	if m.Key == g.key || id == g.n.id {
		return
	}
	ttl := time.Duration(m.TTL) * time.Millisecond
	if ttl <= 0 || ttl > maxGossipTTL {
		ttl = g.ttl
	}
	now := time.Now()
	exp := now.Add(ttl)
	t := tuples[m.Key]
	if t == nil && len(tuples) >= maxGossipTuples {
		g.n.stats.badGossip.Add(1)
		g.n.log.Warn().Str("remote", from.remote).Int("limit", maxGossipTuples).Msg("mesh: gossip table full, tuple ignored")
		return
	}
	fresh := t == nil || t.value != m.Value || exp.After(t.expires.Add(g.ttl/4))
	if t == nil {
		t = &storedTuple{}
		tuples[m.Key] = t
	}
	t.value = m.Value
	if exp.After(t.expires) {
		t.expires = exp
	}
	if !fresh {
		return
	}
	for l := range links {
		if l != from {
			g.send(l, &gossipMsg{ID: gossipPublish, Key: m.Key, Value: m.Value, TTL: uint32(ttl / time.Millisecond)})
		}
	}
	select {
	case g.learned <- gossipTuple{id: id, endpoint: endpoint, key: key, ttl: ttl}:
	case <-ctx.Done():
	}
}

func (g *gossip) send(l *glink, m *gossipMsg) {
	b, err := m.encode()
	if err != nil {
		g.n.log.Error().Err(err).Msg("mesh: gossip encode")
		return
	}
	select {
	case l.q <- b:
	default:
		g.n.stats.sendsDropped.Add(1)
	}
}

func (g *gossip) post(ctx context.Context, ev gossipEvent) bool {
	select {
	case g.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// serve accepts gossip clients.
func (g *gossip) serve(ctx context.Context, wg *sync.WaitGroup) {
	stop := context.AfterFunc(ctx, func() { g.ln.Close() })
	defer stop()
	var pace acceptloop.Pacer
	for {
		conn, err := g.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if !pace.Failed(ctx.Done(), &g.n.log, "mesh gossip", err) {
				return
			}
			continue
		}
		pace.Accepted(&g.n.log, "mesh gossip")
		release, ok := g.n.adm.Admit(conn)
		if !ok {
			g.n.shed(conn, "gossip")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			cc := countedConn{conn, &g.n.stats}
			r, w := bufio.NewReader(cc), bufio.NewWriter(cc)
			_, _, err := zmtpHandshake(conn, r, w, "ROUTER", nil, handshakeTimeout)
			release()
			if err != nil {
				g.n.stats.badConns.Add(1)
				g.n.log.Debug().Err(err).Msg("mesh: gossip handshake failed")
				return
			}
			g.runLink(ctx, conn, r, w, false)
		}()
	}
}

// dialSeed keeps a link to one seed, reconnecting when it breaks.
func (g *gossip) dialSeed(ctx context.Context, wg *sync.WaitGroup, addr string) {
	wait := minRedial
	for ctx.Err() == nil {
		d := net.Dialer{Timeout: dialTimeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			cc := countedConn{conn, &g.n.stats}
			r, w := bufio.NewReader(cc), bufio.NewWriter(cc)
			if _, _, err = zmtpHandshake(conn, r, w, "DEALER", nil, handshakeTimeout); err == nil {
				wait = minRedial
				g.runLink(ctx, conn, r, w, true)
			}
			conn.Close()
		}
		if err != nil {
			g.n.log.Debug().Err(err).Str("seed", addr).Msg("mesh: gossip seed unreachable, retrying")
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, maxRedial*4)
	}
}

// runLink reads a gossip connection until it ends, with a writer
// goroutine for what the loop sends on it.
func (g *gossip) runLink(ctx context.Context, conn net.Conn, r *bufio.Reader, w *bufio.Writer, client bool) {
	l := &glink{q: make(chan []byte, 4096), remote: conn.RemoteAddr().String(), client: client}
	lctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(lctx, func() { conn.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		for {
			select {
			case b := <-l.q:
				conn.SetWriteDeadline(time.Now().Add(g.ttl))
				if writeFrame(w, b, 0) != nil || w.Flush() != nil {
					return
				}
			case <-lctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	defer cancel()
	if !g.post(lctx, gossipEvent{link: l, up: true}) {
		return
	}
	defer g.post(ctx, gossipEvent{link: l, down: true})
	for {
		frames, err := readMessage(r, 64<<10)
		if err != nil {
			return
		}
		// The server side of a ROUTER may see an empty delimiter frame
		// from REQ-like clients; the ZGP message is the last frame.
		m, err := decodeGossip(frames[len(frames)-1])
		if err != nil {
			g.n.stats.badGossip.Add(1)
			g.n.log.Warn().Err(err).Str("remote", l.remote).Msg("mesh: ignoring malformed gossip")
			if !client {
				g.send(l, &gossipMsg{ID: gossipInvalid})
			}
			continue
		}
		if !g.post(lctx, gossipEvent{link: l, msg: m}) {
			return
		}
	}
}

// onGossip connects to a peer learned by gossip.
func (a *actor) onGossip(t gossipTuple) {
	if t.id == a.id || !a.admit(t.id, t.key, nil, "gossip") {
		return
	}
	a.known[t.id] = knownPeer{endpoint: t.endpoint, key: t.key, expires: time.Now().Add(t.ttl)}
	if a.peers[t.id] == nil {
		a.requirePeer(t.id, t.endpoint, t.key)
	}
}

// rediscover reconnects to gossip-known peers that were removed (expired
// or reset) while their tuple is still fresh, and forgets stale tuples.
func (a *actor) rediscover(now time.Time) {
	for id, k := range a.known {
		if now.After(k.expires) {
			delete(a.known, id)
			continue
		}
		if a.peers[id] == nil {
			a.requirePeer(id, k.endpoint, k.key)
		}
	}
}

type knownPeer struct {
	endpoint string
	key      *curve.PublicKey
	expires  time.Time
}
