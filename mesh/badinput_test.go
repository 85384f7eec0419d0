package mesh_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/mesh"
)

// rawPeer is a hand-written ZMTP 3.0 DEALER, independent of the package's
// own codec, used to feed a node bad input.
type rawPeer struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, endpoint string, identity []byte) *rawPeer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(endpoint, "tcp://"), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	greeting := make([]byte, 64)
	greeting[0], greeting[9], greeting[10] = 0xFF, 0x7F, 3
	copy(greeting[12:], "NULL")
	ready := []byte("\x05READY")
	for _, kv := range [][2]string{{"Socket-Type", "DEALER"}, {"Identity", string(identity)}} {
		ready = append(ready, byte(len(kv[0])))
		ready = append(ready, kv[0]...)
		ready = binary.BigEndian.AppendUint32(ready, uint32(len(kv[1])))
		ready = append(ready, kv[1]...)
	}
	out := append(greeting, 0x04, byte(len(ready)))
	out = append(out, ready...)
	if _, err := conn.Write(out); err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{conn: conn, r: bufio.NewReader(conn)}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(p.r, make([]byte, 64)); err != nil {
		t.Fatalf("greeting from node: %v", err)
	}
	return p
}

// send writes one message of short frames.
func (p *rawPeer) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	var b []byte
	for i, f := range frames {
		flags := byte(0)
		if i < len(frames)-1 {
			flags = 1
		}
		if len(f) > 255 {
			b = append(b, flags|2)
			b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
		} else {
			b = append(b, flags, byte(len(f)))
		}
		b = append(b, f...)
	}
	if _, err := p.conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

// zreHeader builds a ZRE header frame by hand.
func zreHeader(id, version byte, seq uint16, body ...byte) []byte {
	b := []byte{0xAA, 0xA1, id, version, byte(seq >> 8), byte(seq)}
	return append(b, body...)
}

func helloBody(endpoint, name string) []byte {
	b := append([]byte{byte(len(endpoint))}, endpoint...)
	b = append(b, 0, 0, 0, 0, 0) // no groups, status 0
	b = append(b, byte(len(name)))
	b = append(b, name...)
	return append(b, 0, 0, 0, 0) // no headers
}

func waitStat(t *testing.T, n *mesh.Node, what string, get func(mesh.Stats) uint64, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for get(n.Stats()) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want >= %d (stats %+v)", what, get(n.Stats()), want, n.Stats())
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

func TestBadInputIsCountedAndIgnored(t *testing.T) {
	cfg := meshtest.Config(t)
	cfg.MaxMessageSize = 4096
	a := startNode(t, cfg, nil)

	// Not ZMTP at all.
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.Endpoint(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "GET / HTTP/1.0\r\n\r\n"+strings.Repeat("garbage", 20))
	waitStat(t, a, "BadConnections", func(s mesh.Stats) uint64 { return s.BadConnections }, 1)
	conn.Close()

	// A DEALER without a ZRE identity.
	dialRaw(t, a.Endpoint(), []byte("short"))
	waitStat(t, a, "BadConnections", func(s mesh.Stats) uint64 { return s.BadConnections }, 2)

	// A peer with a ZRE identity that says HELLO, then sends garbage.
	evil := uuid.New()
	p := dialRaw(t, a.Endpoint(), append([]byte{1}, evil[:]...))
	p.send(t, zreHeader(1, 2, 1, helloBody("tcp://127.0.0.1:1", "evil")...))
	waitEvent(t, a, 5*time.Second, is(mesh.EventEnter, evil))
	p.send(t, []byte("not zre"))
	p.send(t, zreHeader(6, 1, 2))       // PING, wrong version
	p.send(t, zreHeader(42, 2, 2))      // unknown id
	p.send(t, zreHeader(3, 2, 2, 0xFF)) // SHOUT with a truncated group
	waitStat(t, a, "BadMessages", func(s mesh.Stats) uint64 { return s.BadMessages }, 4)
	// Still a peer: the garbage was dropped, not counted in its sequence.
	if _, ok := a.PeerName(evil); !ok {
		t.Fatal("peer dropped for malformed messages")
	}
	// A sequence jump resets the peer, as Zyre does.
	p.send(t, zreHeader(6, 2, 9))
	waitEvent(t, a, 5*time.Second, is(mesh.EventExit, evil))
	waitStat(t, a, "SequenceResets", func(s mesh.Stats) uint64 { return s.SequenceResets }, 1)

	// An oversized frame drops the connection before anything is allocated.
	other := uuid.New()
	q := dialRaw(t, a.Endpoint(), append([]byte{1}, other[:]...))
	huge := []byte{2, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
	q.conn.Write(huge)
	waitStat(t, a, "BadConnections", func(s mesh.Stats) uint64 { return s.BadConnections }, 3)

	// Malformed beacons on the beacon port.
	u, err := net.Dial("udp4", fmt.Sprintf("127.255.255.255:%d", cfg.BeaconPort))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, b := range [][]byte{[]byte("ZRE"), []byte("ZRE\x02xxxxxxxxxxxxxxxx\x00\x01"), make([]byte, 22), make([]byte, 100)} {
		u.Write(b)
	}
	waitStat(t, a, "BadBeacons", func(s mesh.Stats) uint64 { return s.BadBeacons }, 4)

	// The node still serves: a real peer enters and talks.
	b := startNode(t, meshtest.Config(t), nil)
	waitEvent(t, a, 10*time.Second, is(mesh.EventEnter, b.UUID()))
	if err := b.Whisper(a.UUID(), []byte("still there?")); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, a, 5*time.Second, is(mesh.EventWhisper, b.UUID()))
	if string(ev.Frames[0]) != "still there?" {
		t.Fatalf("whisper = %q", ev.Frames)
	}
}

// TestZyreDraftMessages: ELECT and LEADER are skipped without breaking the
// sequence; GOODBYE makes the peer exit at once.
func TestZyreDraftMessages(t *testing.T) {
	a := startNode(t, meshtest.Config(t), nil)
	zyre := uuid.New()
	p := dialRaw(t, a.Endpoint(), append([]byte{1}, zyre[:]...))
	p.send(t, zreHeader(1, 2, 1, helloBody("tcp://127.0.0.1:1", "zyre")...))
	waitEvent(t, a, 5*time.Second, is(mesh.EventEnter, zyre))
	p.send(t, zreHeader(8, 2, 2, 1, 'g', 0, 0, 0, 0)) // ELECT
	p.send(t, zreHeader(9, 2, 3, 1, 'g', 0, 0, 0, 0)) // LEADER
	p.send(t, zreHeader(4, 2, 4, 1, 'g', 1))          // JOIN g, status 1
	waitEvent(t, a, 5*time.Second, func(ev mesh.Event) bool {
		return ev.Type == mesh.EventJoin && ev.Peer == zyre && ev.Group == "g"
	})
	if s := a.Stats(); s.SequenceResets != 0 || s.BadMessages != 0 {
		t.Fatalf("draft messages broke the peer: %+v", s)
	}
	p.send(t, zreHeader(10, 2, 5)) // GOODBYE
	waitEvent(t, a, 2*time.Second, is(mesh.EventExit, zyre))
}

// TestLostHelloIsRetried: a peer we know by beacon whose HELLO never comes
// (lost with a broken connection) is forgotten after the expired timeout
// even though its beacons continue, and the next beacon starts a fresh
// handshake: a new connection with a new HELLO, sequence 1.
func TestLostHelloIsRetried(t *testing.T) {
	cfg := meshtest.Config(t)
	cfg.EvasiveTimeout, cfg.ExpiredTimeout = 200*time.Millisecond, time.Second
	a := startNode(t, cfg, nil)

	// A fake peer: beacons, and a mailbox that records each HELLO.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hellos := make(chan uint16, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go readHello(c, hellos)
		}
	}()
	fake := uuid.New()
	u, err := net.Dial("udp4", fmt.Sprintf("127.255.255.255:%d", cfg.BeaconPort))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	beacon := append([]byte("ZRE\x01"), fake[:]...)
	beacon = binary.BigEndian.AppendUint16(beacon, uint16(ln.Addr().(*net.TCPAddr).Port))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			u.Write(beacon)
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	for i := range 2 {
		select {
		case seq := <-hellos:
			if seq != 1 {
				t.Fatalf("HELLO %d has sequence %d", i+1, seq)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("HELLO %d never came", i+1)
		}
	}
	if _, ok := a.PeerName(fake); ok {
		t.Fatal("a peer that never said HELLO is listed")
	}
}

// readHello plays a ZMTP ROUTER: handshake, then report the sequence of
// the first message if it is a HELLO.
func readHello(c net.Conn, hellos chan<- uint16) {
	defer c.Close()
	greeting := make([]byte, 64)
	greeting[0], greeting[9], greeting[10] = 0xFF, 0x7F, 3
	copy(greeting[12:], "NULL")
	ready := []byte("\x05READY\x0bSocket-Type\x00\x00\x00\x06ROUTER")
	c.Write(append(append(greeting, 0x04, byte(len(ready))), ready...))
	r := bufio.NewReader(c)
	if _, err := io.ReadFull(r, make([]byte, 64)); err != nil {
		return
	}
	for i := 0; i < 2; i++ { // READY, then the HELLO's header frame
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		body := make([]byte, h[1])
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		if i == 1 && len(body) >= 6 && body[2] == 1 {
			hellos <- binary.BigEndian.Uint16(body[4:6])
		}
	}
}

// TestStaleConnectionIsNotLoss replays what a healed partition does: the
// peer started a new session on a new connection, and its kernel then
// delivers data it had written on the old one. That data must be dropped
// as stale, without resetting the new session.
func TestStaleConnectionIsNotLoss(t *testing.T) {
	cfg := meshtest.Config(t)
	a := startNode(t, cfg, nil)

	// The fake peer's own mailbox: it only needs to accept a's DEALER.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go readHello(c, make(chan uint16, 1))
		}
	}()
	fake := uuid.New()
	identity := append([]byte{1}, fake[:]...)
	hello := helloBody("tcp://"+ln.Addr().String(), "fake")

	old := dialRaw(t, a.Endpoint(), identity)
	old.send(t, zreHeader(1, 2, 1, hello...))
	waitEvent(t, a, 5*time.Second, is(mesh.EventEnter, fake))

	// The new session: HELLO again on a new connection, then a JOIN.
	cur := dialRaw(t, a.Endpoint(), identity)
	cur.send(t, zreHeader(1, 2, 1, hello...))
	waitEvent(t, a, 5*time.Second, is(mesh.EventEnter, fake))
	join := func(seq uint16, group string) []byte {
		return zreHeader(4, 2, seq, append(append([]byte{byte(len(group))}, group...), 1)...)
	}
	cur.send(t, join(2, "g1"))
	waitEvent(t, a, 5*time.Second, func(e mesh.Event) bool { return e.Type == mesh.EventJoin && e.Group == "g1" })

	// The old connection delivers late data of the old session.
	old.send(t, zreHeader(6, 2, 9)) // seq 9: a gap for the new session
	waitStat(t, a, "StaleMessages", func(s mesh.Stats) uint64 { return s.StaleMessages }, 1)
	old.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, old.r); err != nil {
		t.Fatalf("the stale connection was not closed by the node: %v", err)
	}

	// The new session goes on, unbroken.
	cur.send(t, join(3, "g2"))
	ev := waitEvent(t, a, 5*time.Second, func(e mesh.Event) bool {
		return e.Type == mesh.EventExit || (e.Type == mesh.EventJoin && e.Group == "g2")
	})
	if ev.Type != mesh.EventJoin {
		t.Fatalf("the new session was reset by the stale data: %v", ev.Type)
	}
	if s := a.Stats(); s.SequenceResets != 0 {
		t.Fatalf("SequenceResets = %d, want 0 (stats %+v)", s.SequenceResets, s)
	}
}
