package mesh

import (
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/curve"
	"github.com/rs/zerolog"
)

// actor owns the node's state and its peers' outboxes; only its goroutine
// touches them. Node methods reach it through Node.cmds.
type actor struct {
	n        *Node
	id       uuid.UUID
	identity []byte // ZMQ routing id of our DEALERs: 1 + UUID
	endpoint string
	port     uint16
	name     string
	headers  map[string]string
	groups   map[string]bool
	status   byte
	peers    map[uuid.UUID]*peer
	log      zerolog.Logger

	beacons beaconNet
	heard   chan heard
	gossip  *gossip
	known   map[uuid.UUID]knownPeer // peers learned by gossip
}

func newActor(n *Node, bn beaconNet, g *gossip) *actor {
	a := &actor{
		n:        n,
		id:       n.id,
		identity: append([]byte{1}, n.id[:]...),
		endpoint: n.endpoint,
		name:     n.cfg.Name,
		headers:  maps.Clone(n.headers),
		groups:   map[string]bool{},
		peers:    map[uuid.UUID]*peer{},
		log:      n.log,
		beacons:  bn,
		heard:    make(chan heard, 64),
		gossip:   g,
		known:    map[uuid.UUID]knownPeer{},
	}
	if _, p, err := net.SplitHostPort(n.endpoint[len("tcp://"):]); err == nil {
		v, _ := strconv.Atoi(p)
		a.port = uint16(v)
	}
	for _, g := range n.groups {
		a.groups[g] = true
	}
	return a
}

// reapInterval is how often peers' liveness is checked: a fifth of the
// evasive timeout, between 20 ms and 1 s (Zyre checks every second).
func (a *actor) reapInterval() time.Duration {
	return min(max(a.n.cfg.EvasiveTimeout/5, 20*time.Millisecond), time.Second)
}

func (a *actor) run(inbox <-chan inbound) {
	defer close(a.n.actorDone)
	reap := time.NewTicker(a.reapInterval())
	defer reap.Stop()
	var beaconTick <-chan time.Time
	if a.beacons != nil {
		t := time.NewTicker(a.n.cfg.BeaconInterval)
		defer t.Stop()
		beaconTick = t.C
		a.sendBeacon(a.port)
	}
	var gossipIn <-chan gossipTuple
	if a.gossip != nil {
		gossipIn = a.gossip.learned
	}
	for {
		select {
		case f := <-a.n.cmds:
			f(a)
			a.drainCommands()
		case in := <-inbox:
			a.onMessage(in)
			a.drainInbox(inbox)
		case h := <-a.heard:
			a.onBeacon(h)
		case t := <-gossipIn:
			a.onGossip(t)
		case <-beaconTick:
			a.sendBeacon(a.port)
		case <-reap.C:
			a.reap(time.Now())
		case <-a.n.quit:
			a.stop()
			return
		}
	}
}

// drainInbox handles messages already waiting with cheap non-blocking
// receives instead of a full select each, a bounded number at a time.
func (a *actor) drainInbox(inbox <-chan inbound) {
	for range 64 {
		select {
		case in := <-inbox:
			a.onMessage(in)
		default:
			return
		}
	}
}

// drainCommands runs the commands already queued (bursts of Whisper and
// Shout), a bounded number at a time so the other inputs are not starved.
func (a *actor) drainCommands() {
	for range 64 {
		select {
		case f := <-a.n.cmds:
			f(a)
		default:
			return
		}
	}
}

// stop says goodbye (a port-0 beacon), closes every outbox and queues Stop.
func (a *actor) stop() {
	if a.beacons != nil {
		a.sendBeacon(0)
	}
	for _, p := range a.peers {
		p.out.close()
	}
	a.n.evq.push(Event{Type: EventStop})
}

func (a *actor) sendBeacon(port uint16) {
	b := beacon{ID: a.id, Port: port}
	if c := a.n.cfg.Curve; c != nil {
		b.HasKey, b.Key = true, c.Keys.Public // version 3, as Zyre with CURVE
	}
	pkt := b.encode()
	if err := a.beacons.send(pkt); err != nil {
		a.log.Debug().Err(err).Msg("mesh: send beacon")
		return
	}
	a.n.stats.bytesOut.Add(uint64(len(pkt)))
}

func (a *actor) emit(ev Event) {
	if !a.n.evq.push(ev) {
		a.log.Warn().Str("event", ev.Type.String()).Str("peer", ev.Peer.String()).Msg("mesh: event dropped, the Events reader is behind")
	}
}

func (a *actor) onBeacon(h heard) {
	a.n.stats.bytesIn.Add(uint64(len(h.data)))
	b, err := decodeBeacon(h.data)
	if err != nil {
		a.n.stats.badBeacons.Add(1)
		a.log.Debug().Err(err).Str("from", h.from.String()).Msg("mesh: ignoring beacon")
		return
	}
	if b.ID == a.id {
		return
	}
	p := a.peers[b.ID]
	if p != nil && p.key != nil && (!b.HasKey || *p.key != b.Key) {
		return // not from the peer we know: no sign of its life
	}
	if b.Port == 0 {
		if p != nil {
			a.removePeer(p, "left")
		}
		return
	}
	if p == nil {
		key := keyOf(b)
		if !a.admit(b.ID, key, &net.UDPAddr{IP: h.from}, "beacon") {
			return
		}
		ep := "tcp://" + net.JoinHostPort(h.from.String(), strconv.Itoa(int(b.Port)))
		p = a.requirePeer(b.ID, ep, key)
	}
	// Beacons show life, as in Pyre: peers we hear need no PING.
	a.touch(p)
}

// requirePeer creates a peer, connects its outbox and sends HELLO.
func (a *actor) requirePeer(id uuid.UUID, endpoint string, key *curve.PublicKey) *peer {
	now := time.Now()
	p := &peer{id: id, endpoint: endpoint, key: key, groups: map[string]bool{}, created: now, lastSeen: now}
	cfg := &a.n.cfg
	p.out = startOutbox(a.n.ctx, &a.n.wg, dealer{endpoint: endpoint, identity: a.identity, queue: cfg.SendQueue,
		writeTimeout: cfg.ExpiredTimeout, sec: a.clientSecurity(key), log: a.log, stats: &a.n.stats})
	a.peers[id] = p
	a.touch(p)
	a.send(p, &zreMsg{ID: msgHello, Endpoint: a.endpoint, Groups: slices.Sorted(maps.Keys(a.groups)),
		Status: a.status, Name: a.name, Headers: a.headers})
	a.log.Debug().Str("peer", id.String()).Str("endpoint", endpoint).Msg("mesh: connecting to peer")
	return p
}

// publishReady gives Node.Whisper a fresh copy of the set of entered peers.
func (a *actor) publishReady() {
	m := make(map[uuid.UUID]bool, len(a.peers))
	for id, p := range a.peers {
		if p.ready {
			m[id] = true
		}
	}
	a.n.ready.Store(&m)
}

// removePeer closes the peer's outbox and reports Exit if it had entered.
func (a *actor) removePeer(p *peer, why string) {
	p.out.close()
	delete(a.peers, p.id)
	if p.ready {
		a.publishReady()
		a.log.Debug().Str("peer", p.id.String()).Str("name", p.name).Str("why", why).Msg("mesh: peer exit")
		a.emit(Event{Type: EventExit, Peer: p.id, Name: p.name})
	}
}

func (a *actor) touch(p *peer) {
	now := time.Now()
	p.lastSeen = now
	p.evasiveAt = now.Add(a.n.cfg.EvasiveTimeout)
	p.expiredAt = now.Add(a.n.cfg.ExpiredTimeout)
	p.pings = 0
}

// send numbers a message for p and queues it on p's outbox.
func (a *actor) send(p *peer, m *zreMsg) {
	p.sentSeq++
	m.Sequence = p.sentSeq
	frames, err := m.encode()
	if err != nil {
		a.log.Error().Err(err).Msg("mesh: encode")
		return
	}
	if !p.out.send(frames) {
		a.n.stats.sendsDropped.Add(1)
		a.log.Debug().Str("peer", p.id.String()).Msg("mesh: peer queue full, message dropped")
	}
}

func (a *actor) onMessage(in inbound) {
	m := in.msg
	p := a.peers[in.from]
	if p != nil && p.key != nil && (in.key == nil || *in.key != *p.key) {
		a.n.stats.refused.Add(1)
		a.log.Warn().Str("peer", in.from.String()).Msg("mesh: message under another CURVE key than the peer's, ignored")
		return
	}
	if p != nil && p.ready && in.serial < p.inSerial {
		// An older connection of the peer than its session's: after a
		// partition, the peer's kernel retransmits what it wrote before
		// it dropped us (a PING, say) once the link is back, numbered in
		// the old session. Those messages are stale, not lost ones: drop
		// them and the connection rather than reset the current session.
		// (A DEALER that reconnects uses a newer connection, so it is
		// not affected.)
		a.n.stats.staleMessages.Add(1)
		a.log.Debug().Str("peer", p.id.String()).Str("msg", msgName(m.ID)).Uint16("seq", m.Sequence).
			Msg("mesh: message on a superseded connection of the peer, dropped")
		if in.conn != nil {
			_ = in.conn.Close()
		}
		return
	}
	if m.ID == msgHello {
		if p != nil && p.ready {
			// A second HELLO means the peer reset us: start over, as Zyre does.
			a.removePeer(p, "said HELLO again")
			p = nil
		}
		if p == nil {
			// With CURVE the mailbox has already admitted in.key; the
			// HELLO must not claim another one.
			if h, ok := m.Headers[headerPublicKey]; ok && in.key != nil && h != in.key.String() {
				a.n.stats.refused.Add(1)
				a.log.Warn().Str("peer", in.from.String()).Msg("mesh: HELLO claims another key than its connection, ignored")
				return
			}
			p = a.requirePeer(in.from, m.Endpoint, in.key)
		}
	} else if p == nil || !p.ready {
		a.n.stats.ignored.Add(1)
		a.log.Debug().Str("peer", in.from.String()).Str("msg", msgName(m.ID)).Msg("mesh: ignoring message before HELLO")
		return
	}
	want := p.recvSeq + 1
	if m.ID == msgHello {
		want = 1
	}
	// Pyre counts modulo 65535 where Zyre and we wrap at 65536.
	pyreWrap := want == 65535 && m.Sequence == 0
	if m.Sequence != want && !pyreWrap {
		a.n.stats.seqResets.Add(1)
		a.log.Warn().Str("peer", p.id.String()).Uint16("got", m.Sequence).Uint16("want", want).
			Msg("mesh: messages lost from peer, resetting it")
		a.removePeer(p, "lost messages")
		return
	}
	p.recvSeq = m.Sequence
	a.touch(p)
	p.inSerial = max(p.inSerial, in.serial)
	switch m.ID {
	case msgHello:
		a.onHello(p, m)
	case msgWhisper:
		a.emit(Event{Type: EventWhisper, Peer: p.id, Name: p.name, Frames: m.Content})
	case msgShout:
		if a.groups[m.Group] {
			a.emit(Event{Type: EventShout, Peer: p.id, Name: p.name, Group: m.Group, Frames: m.Content})
		}
	case msgJoin, msgLeave:
		a.onGroup(p, m)
	case msgPing:
		a.send(p, &zreMsg{ID: msgPingOK})
	case msgGoodbye:
		a.removePeer(p, "said GOODBYE")
	}
}

func (a *actor) onHello(p *peer, m *zreMsg) {
	p.ready = true
	a.publishReady()
	p.name = m.Name
	p.headers = m.Headers
	p.status = m.Status
	a.log.Debug().Str("peer", p.id.String()).Str("name", p.name).Msg("mesh: peer enter")
	a.emit(Event{Type: EventEnter, Peer: p.id, Name: p.name, Endpoint: p.endpoint, Headers: maps.Clone(p.headers)})
	for _, g := range m.Groups {
		if len(g) > 255 || p.groups[g] {
			continue
		}
		p.groups[g] = true
		a.emit(Event{Type: EventJoin, Peer: p.id, Name: p.name, Group: g})
	}
}

func (a *actor) onGroup(p *peer, m *zreMsg) {
	p.status++
	if p.status != m.Status {
		// Zyre and Pyre assert here; we resynchronise and go on.
		a.log.Warn().Str("peer", p.id.String()).Uint8("got", m.Status).Uint8("want", p.status).
			Msg("mesh: peer's group status is out of step")
		p.status = m.Status
	}
	if m.ID == msgJoin {
		if !p.groups[m.Group] {
			p.groups[m.Group] = true
			a.emit(Event{Type: EventJoin, Peer: p.id, Name: p.name, Group: m.Group})
		}
		return
	}
	if p.groups[m.Group] {
		delete(p.groups, m.Group)
		a.emit(Event{Type: EventLeave, Peer: p.id, Name: p.name, Group: m.Group})
	}
}

// reap pings peers silent past the evasive timeout and removes those
// silent past the expired timeout, or that never said HELLO within it.
// Peers heard recently are left alone.
func (a *actor) reap(now time.Time) {
	for _, p := range a.peers {
		switch {
		case !now.Before(p.expiredAt):
			a.removePeer(p, "expired")
		case !p.ready && now.Sub(p.created) >= a.n.cfg.ExpiredTimeout:
			// Its HELLO never came (lost with a broken connection), yet
			// beacons keep it alive. Forget it, as Zyre's expiry would:
			// the next beacon or gossip tuple starts a fresh handshake,
			// with exactly one HELLO of ours in flight.
			a.removePeer(p, "no HELLO")
		case !now.Before(p.evasiveAt):
			a.send(p, &zreMsg{ID: msgPing})
			p.pings++
			p.evasiveAt = now.Add(a.n.cfg.EvasiveTimeout)
			if !p.ready {
				continue
			}
			if p.pings == 1 {
				a.emit(Event{Type: EventEvasive, Peer: p.id, Name: p.name})
			} else if p.pings == 2 {
				a.emit(Event{Type: EventSilent, Peer: p.id, Name: p.name})
			}
		}
	}
	if a.gossip != nil {
		a.rediscover(now)
	}
}

func (a *actor) join(group string) {
	if a.groups[group] {
		return
	}
	a.groups[group] = true
	a.status++
	for _, p := range a.peers {
		a.send(p, &zreMsg{ID: msgJoin, Group: group, Status: a.status})
	}
}

func (a *actor) leave(group string) {
	if !a.groups[group] {
		return
	}
	delete(a.groups, group)
	a.status++
	for _, p := range a.peers {
		a.send(p, &zreMsg{ID: msgLeave, Group: group, Status: a.status})
	}
}

func (a *actor) shout(group string, frames [][]byte) {
	for _, p := range a.peers {
		if p.ready && p.groups[group] {
			a.send(p, &zreMsg{ID: msgShout, Group: group, Content: frames})
		}
	}
}

func (a *actor) whisper(id uuid.UUID, frames [][]byte) error {
	p := a.peers[id]
	if p == nil || !p.ready {
		return ErrUnknownPeer
	}
	a.send(p, &zreMsg{ID: msgWhisper, Content: frames})
	return nil
}
