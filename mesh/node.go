package mesh

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/admission"
	"github.com/rs/zerolog"
)

// Errors callers can test with errors.Is.
var (
	// ErrClosed is returned by a Node that has been closed.
	ErrClosed = errors.New("mesh: node closed")
	// ErrNotStarted is returned by calls that need a started Node.
	ErrNotStarted = errors.New("mesh: node not started")
	// ErrUnknownPeer is returned by Whisper to a peer the node does not know.
	ErrUnknownPeer = errors.New("mesh: unknown peer")
)

// Node is one ZRE v2 node. Create it with New, set headers, Start it, read
// its Events, and Close it. Its methods are safe for concurrent use. One
// goroutine (the actor) owns the node's state; the methods talk to it
// through a channel.
type Node struct {
	cfg Config
	id  uuid.UUID
	log zerolog.Logger

	mu       sync.Mutex // guards the fields below until Start
	started  bool
	closed   bool
	endpoint string
	headers  map[string]string
	groups   []string

	// beacons, when set before Start, replaces UDP beacons (simulations).
	beacons beaconNet
	gossip  *gossip
	// curveServer authenticates peers that connect to the mailbox when
	// Config.Curve is set.
	curveServer *curve.Security
	// adm limits each source address's mailbox and gossip connections
	// still in their handshake, and its CURVE handshakes per second.
	adm     *admission.Table
	shedLog zerolog.Logger // says so at most once per 10 s

	cmds      chan func(*actor)                  // buffered: Shout and Whisper do not wait
	ready     atomic.Pointer[map[uuid.UUID]bool] // peers that entered, for Whisper's check
	quit      chan struct{}
	actorDone chan struct{}
	events    chan Event
	evq       eventQueue
	stats     counters

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New returns a Node with a fresh UUID. It binds nothing until Start.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg:       cfg,
		id:        uuid.New(),
		log:       cfg.Logger,
		headers:   maps.Clone(cfg.Headers),
		groups:    slices.Clone(cfg.Groups),
		cmds:      make(chan func(*actor), 1024),
		quit:      make(chan struct{}),
		actorDone: make(chan struct{}),
		events:    make(chan Event, 256),
		adm:       admission.New(cfg.MaxPendingPerSource, admission.DefaultHandshakesPerSecond),
		shedLog:   cfg.Logger.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second}),
		ctx:       ctx,
		cancel:    cancel,
	}
	if n.headers == nil {
		n.headers = map[string]string{}
	}
	if c := cfg.Curve; c != nil {
		n.headers[headerPublicKey] = c.Keys.Public.String()
		n.curveServer = curve.NewServer(c.Keys, c.Authorize, curve.WithLogger(cfg.Logger),
			curve.WithMaxMessageSize(int64(cfg.MaxMessageSize)))
	}
	n.evq.init(cfg.EventBuffer, n.events)
	return n, nil
}

// UUID returns the node's identity on the mesh.
func (n *Node) UUID() uuid.UUID { return n.id }

// Name returns the name the node sends in HELLO.
func (n *Node) Name() string { return n.cfg.Name }

// Endpoint returns the mailbox endpoint peers connect to ("tcp://ip:port"),
// or "" before Start.
func (n *Node) Endpoint() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.endpoint
}

// SetHeader sets a HELLO header, such as X-LOGD-PUB with the endpoint of a
// service. Call it before Start: peers learn headers from HELLO only, so a
// header set later reaches only peers met afterwards.
func (n *Node) SetHeader(key, value string) {
	n.mu.Lock()
	if !n.started {
		n.headers[key] = value
		n.mu.Unlock()
		return
	}
	n.mu.Unlock()
	_ = n.call(func(a *actor) { a.headers[key] = value })
}

// Start binds the mailbox and starts discovery (beacons, gossip). ctx
// bounds the start only; the node runs until Close.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if n.started {
		return errors.New("mesh: node already started")
	}
	for k := range n.headers {
		if len(k) > 255 {
			return fmt.Errorf("mesh: header name %.20q... is longer than 255 bytes", k)
		}
	}
	addrs, err := pickInterface(n.cfg.Interface)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", net.JoinHostPort(n.cfg.Bind, strconv.Itoa(n.cfg.MailboxPort)))
	if err != nil {
		return fmt.Errorf("mesh: bind mailbox: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ip := addrs.ip
	if b := net.ParseIP(n.cfg.Bind); b != nil && !b.IsUnspecified() {
		ip = b
	}
	n.endpoint = advertisedEndpoint(n.cfg.Advertise, ip, port)
	bn := n.beacons
	if bn == nil && n.cfg.BeaconPort > 0 {
		to := addrs.broadcast
		if n.cfg.BroadcastAddr != "" {
			if to = net.ParseIP(n.cfg.BroadcastAddr).To4(); to == nil {
				ln.Close()
				return fmt.Errorf("mesh: broadcast address %q is not an IPv4 address", n.cfg.BroadcastAddr)
			}
		}
		u, err := listenBeacons(n.cfg.BeaconPort, to)
		if err != nil {
			ln.Close()
			return err
		}
		bn = u
	}
	g, err := n.startGossip(ctx)
	if err != nil {
		ln.Close()
		if bn != nil {
			bn.close()
		}
		return err
	}
	n.gossip = g
	a := newActor(n, bn, g)
	inbox := make(chan inbound, 64)
	n.wg.Add(3)
	go func() { defer n.wg.Done(); n.serveMailbox(ln, inbox) }()
	go func() { defer n.wg.Done(); a.run(inbox) }()
	go func() { defer n.wg.Done(); n.pumpEvents() }()
	if bn != nil {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); bn.run(n.ctx, a.heard) }()
	}
	if g != nil {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); g.run() }()
	}
	n.started = true
	n.log.Debug().Str("uuid", n.id.String()).Str("endpoint", n.endpoint).Msg("mesh node started")
	return nil
}

// Close stops the node: a port-0 beacon tells LAN peers we leave, every
// connection closes and every goroutine ends before Close returns. The
// Events channel gets Stop and is closed. Close is idempotent.
func (n *Node) Close() error {
	n.once.Do(func() {
		n.mu.Lock()
		n.closed = true
		started := n.started
		n.mu.Unlock()
		if !started {
			n.events <- Event{Type: EventStop}
			close(n.events)
			n.cancel()
			return
		}
		close(n.quit)
		<-n.actorDone
		n.cancel()
		n.wg.Wait()
	})
	return nil
}

// call runs f on the actor and waits for it.
func (n *Node) call(f func(a *actor)) error {
	done := make(chan struct{})
	if err := n.post(func(a *actor) { f(a); close(done) }); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-n.actorDone:
		select {
		case <-done:
			return nil
		default:
			return ErrClosed
		}
	}
}

// post queues f for the actor without waiting for it to run. Commands run
// in the order they were posted.
func (n *Node) post(f func(a *actor)) error {
	n.mu.Lock()
	started, closed := n.started, n.closed
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !started {
		return ErrNotStarted
	}
	select {
	case n.cmds <- f:
		return nil
	case <-n.actorDone:
		return ErrClosed
	}
}

// Join joins a group: peers are told with JOIN and we receive its SHOUTs.
// Before Start it only records the group for the first HELLO.
func (n *Node) Join(group string) error {
	if len(group) > 255 {
		return fmt.Errorf("mesh: join %.20q...: group name longer than 255 bytes", group)
	}
	if n.pending(func() {
		if !slices.Contains(n.groups, group) {
			n.groups = append(n.groups, group)
		}
	}) {
		return nil
	}
	return n.call(func(a *actor) { a.join(group) })
}

// Leave leaves a group.
func (n *Node) Leave(group string) error {
	if n.pending(func() {
		n.groups = slices.DeleteFunc(n.groups, func(g string) bool { return g == group })
	}) {
		return nil
	}
	return n.call(func(a *actor) { a.leave(group) })
}

// pending runs f under the lock if the node is neither started nor closed.
func (n *Node) pending(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.closed {
		return false
	}
	f()
	return true
}

// Shout sends a message to every peer in group. It queues the message and
// returns; the frames must not be modified afterwards. Delivery is not
// guaranteed: a peer whose queue is full or whose connection breaks misses
// it (and resets us on the sequence gap, as Zyre does), and messages still
// queued when the node closes are dropped.
func (n *Node) Shout(group string, frames ...[]byte) error {
	if len(group) > 255 {
		return fmt.Errorf("mesh: shout to %.20q...: group name longer than 255 bytes", group)
	}
	return n.post(func(a *actor) { a.shout(group, frames) })
}

// Whisper sends a message to one peer, with the same queueing and
// delivery as Shout. It returns ErrUnknownPeer for a peer that has not
// entered (or has left).
func (n *Node) Whisper(peer uuid.UUID, frames ...[]byte) error {
	if m := n.ready.Load(); m == nil || !(*m)[peer] {
		if err := n.post(func(*actor) {}); err != nil {
			return err // closed or not started says more than unknown peer
		}
		return ErrUnknownPeer
	}
	return n.post(func(a *actor) { a.whisper(peer, frames) })
}

// Peers returns the peers that said HELLO and have not left or expired.
func (n *Node) Peers() []PeerInfo {
	var out []PeerInfo
	_ = n.call(func(a *actor) {
		for _, p := range a.peers {
			if p.ready {
				out = append(out, p.info())
			}
		}
	})
	slices.SortFunc(out, func(x, y PeerInfo) int { return slices.Compare(x.ID[:], y.ID[:]) })
	return out
}

// peer runs f with the ready peer id, if there is one.
func (n *Node) peer(id uuid.UUID, f func(p *peer)) bool {
	found := false
	_ = n.call(func(a *actor) {
		if p := a.peers[id]; p != nil && p.ready {
			found = true
			f(p)
		}
	})
	return found
}

// PeerName returns the name a peer gave in HELLO.
func (n *Node) PeerName(id uuid.UUID) (string, bool) {
	var s string
	ok := n.peer(id, func(p *peer) { s = p.name })
	return s, ok
}

// PeerHeader returns one of a peer's HELLO headers.
func (n *Node) PeerHeader(id uuid.UUID, key string) (string, bool) {
	var s string
	var has bool
	n.peer(id, func(p *peer) { s, has = p.headers[key] })
	return s, has
}

// PeerEndpoint returns the mailbox endpoint we reach a peer at.
func (n *Node) PeerEndpoint(id uuid.UUID) (string, bool) {
	var s string
	ok := n.peer(id, func(p *peer) { s = p.endpoint })
	return s, ok
}

// GroupPeers returns the peers in a group, sorted.
func (n *Node) GroupPeers(group string) []uuid.UUID {
	var out []uuid.UUID
	_ = n.call(func(a *actor) {
		for id, p := range a.peers {
			if p.ready && p.groups[group] {
				out = append(out, id)
			}
		}
	})
	slices.SortFunc(out, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
	return out
}

// Self describes this node as its peers see it.
func (n *Node) Self() PeerInfo {
	n.mu.Lock()
	info := PeerInfo{ID: n.id, Name: n.cfg.Name, Endpoint: n.endpoint,
		Headers: maps.Clone(n.headers), Groups: slices.Clone(n.groups), LastSeen: time.Now()}
	n.mu.Unlock()
	_ = n.call(func(a *actor) {
		info.Headers = maps.Clone(a.headers)
		info.Groups = slices.Sorted(maps.Keys(a.groups))
	})
	if len(info.Groups) == 0 {
		info.Groups = nil
	}
	return info
}

// Events returns the channel of mesh events. It receives Stop when the node
// closes and is closed right after. The node never waits for the reader:
// events queue up to Config.EventBuffer, then new ones are dropped and
// counted (Stats().EventsDropped), so a slow reader never stalls liveness.
func (n *Node) Events() <-chan Event { return n.events }

// Stats are the node's counters of trouble; all only grow.
type Stats struct {
	BadBeacons     uint64 // malformed beacons received
	BadMessages    uint64 // malformed ZRE messages (garbage, wrong version, unknown id)
	BadConnections uint64 // mailbox connections dropped (bad handshake, bad identity, oversized frame)
	Ignored        uint64 // valid messages from peers that had not said HELLO
	SequenceResets uint64 // peers reset because their sequence numbers jumped
	StaleMessages  uint64 // messages on a peer's connection older than its session's, dropped
	SendsDropped   uint64 // messages dropped because a peer's queue was full
	EventsDropped  uint64 // events dropped because the Events reader was behind
	BadGossip      uint64 // malformed gossip messages
	Refused        uint64 // peers refused by CURVE: no key, key not admitted, failed handshake
	Shed           uint64 // connections closed at once: their address had maxPending in their handshake, or started CURVE handshakes too fast
	BytesSent      uint64 // bytes written to peers, seeds and the beacon port
	BytesReceived  uint64 // bytes read from peers, seeds and the beacon port
}

type counters struct {
	badBeacons, badMessages, badConns, ignored, seqResets, sendsDropped, badGossip atomic.Uint64
	staleMessages                                                                  atomic.Uint64
	bytesIn, bytesOut, refused, shed                                               atomic.Uint64
}

// countedConn counts the bytes of a peer or gossip connection.
type countedConn struct {
	net.Conn
	c *counters
}

func (cc countedConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	cc.c.bytesIn.Add(uint64(n))
	return n, err
}

func (cc countedConn) Write(p []byte) (int, error) {
	n, err := cc.Conn.Write(p)
	cc.c.bytesOut.Add(uint64(n))
	return n, err
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	return Stats{
		BadBeacons:     n.stats.badBeacons.Load(),
		BadMessages:    n.stats.badMessages.Load(),
		BadConnections: n.stats.badConns.Load(),
		Ignored:        n.stats.ignored.Load(),
		SequenceResets: n.stats.seqResets.Load(),
		StaleMessages:  n.stats.staleMessages.Load(),
		SendsDropped:   n.stats.sendsDropped.Load(),
		EventsDropped:  n.evq.dropped.Load(),
		BadGossip:      n.stats.badGossip.Load(),
		Refused:        n.stats.refused.Load(),
		Shed:           n.stats.shed.Load(),
		BytesSent:      n.stats.bytesOut.Load(),
		BytesReceived:  n.stats.bytesIn.Load(),
	}
}
