package zmtpguard

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/logmesh/logmesh/curve"
)

type keyed struct {
	srv, cli, other curve.KeyPair
}

func newKeys(t *testing.T) keyed {
	t.Helper()
	var k keyed
	for _, p := range []*curve.KeyPair{&k.srv, &k.cli, &k.other} {
		kp, err := curve.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		*p = kp
	}
	return k
}

// curveRouter listens on the guarded CURVE transport with sec and returns
// the tcp:// endpoint and the socket's counters.
func curveRouter(t *testing.T, sec zmq4.Security) (zmq4.Socket, string, *Counters) {
	t.Helper()
	var cnt Counters
	ctx, cancel := context.WithCancel(WithCounters(context.Background(), &cnt))
	opts := []zmq4.Option{zmq4.WithID(zmq4.SocketIdentity("guarded"))}
	ep := Endpoint("tcp://127.0.0.1:0")
	if sec != nil {
		opts = append(opts, zmq4.WithSecurity(sec))
		ep = CurveEndpoint("tcp://127.0.0.1:0")
	}
	r := zmq4.NewRouter(ctx, opts...)
	if err := r.Listen(ep); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); cancel() })
	return r, "tcp://" + r.Addr().String(), &cnt
}

// dealer dials ep (through the guarded CURVE transport when sec is set).
func dealer(t *testing.T, ep string, sec zmq4.Security, cnt *Counters) (zmq4.Socket, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(WithCounters(context.Background(), cnt))
	opts := []zmq4.Option{zmq4.WithID(zmq4.SocketIdentity("client")), zmq4.WithDialerMaxRetries(1)}
	if sec != nil {
		opts = append(opts, zmq4.WithSecurity(sec))
		ep = CurveEndpoint(ep)
	}
	d := zmq4.NewDealer(ctx, opts...)
	t.Cleanup(func() { d.Close(); cancel() })
	return d, d.Dial(ep)
}

func roundTrip(t *testing.T, r, d zmq4.Socket) {
	t.Helper()
	if err := d.Send(zmq4.NewMsgString("ping")); err != nil {
		t.Fatal(err)
	}
	m := recvWithin(t, r, 5*time.Second)
	if len(m.Frames) != 2 || string(m.Frames[1]) != "ping" {
		t.Fatalf("router got %q", m.Frames)
	}
	if err := r.Send(zmq4.NewMsgFrom(m.Frames[0], []byte("pong"))); err != nil {
		t.Fatal(err)
	}
	m = recvWithin(t, d, 5*time.Second)
	if len(m.Frames) != 1 || string(m.Frames[0]) != "pong" {
		t.Fatalf("dealer got %q", m.Frames)
	}
}

func waitCount(t *testing.T, what string, f func() uint64, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", what, f(), want)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

func TestCurveRoundTrip(t *testing.T) {
	k := newKeys(t)
	srv := curve.NewServer(k.srv, curve.NewAllowList(k.cli.Public).Authorize)
	r, ep, _ := curveRouter(t, srv)
	cli := curve.NewClient(k.cli, k.srv.Public)
	d, err := dealer(t, ep, cli, nil)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, r, d)
	if s := srv.Stats(); s.Handshakes != 1 || s.Failures+s.Unauthorized != 0 {
		t.Fatalf("server stats %+v", s)
	}
}

// A keyed server refuses a NULL client, counts it, closes its connection
// and goes on serving keyed clients.
func TestCurveServerRefusesNullClient(t *testing.T) {
	k := newKeys(t)
	r, ep, cnt := curveRouter(t, curve.NewServer(k.srv, curve.NewAllowList(k.cli.Public).Authorize))
	if _, err := dealer(t, ep, nil, nil); err == nil {
		t.Fatal("a NULL client connected to a CURVE server")
	}
	waitCount(t, "server mechanism refusals", cnt.Mechanism, 1)
	d, err := dealer(t, ep, curve.NewClient(k.cli, k.srv.Public), nil)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, r, d)
}

// A keyed client refuses a NULL server; both sides count it.
func TestCurveClientRefusesNullServer(t *testing.T) {
	k := newKeys(t)
	_, ep, srvCnt := curveRouter(t, nil)
	var cliCnt Counters
	_, err := dealer(t, ep, curve.NewClient(k.cli, k.srv.Public), &cliCnt)
	if err == nil {
		t.Fatal("a CURVE client connected to a NULL server")
	}
	waitCount(t, "client mechanism refusals", cliCnt.Mechanism, 1)
	waitCount(t, "server mechanism refusals", srvCnt.Mechanism, 1)
}

func TestCurveWrongKeysRefused(t *testing.T) {
	k := newKeys(t)
	srv := curve.NewServer(k.srv, curve.NewAllowList(k.cli.Public).Authorize)
	r, ep, _ := curveRouter(t, srv)

	// A client whose key is not admitted.
	intruder := curve.NewClient(k.other, k.srv.Public)
	if _, err := dealer(t, ep, intruder, nil); err == nil {
		t.Fatal("a client with an unadmitted key connected")
	}
	waitCount(t, "server unauthorized", func() uint64 { return srv.Stats().Unauthorized }, 1)
	waitCount(t, "intruder failures", func() uint64 { return intruder.Stats().Failures }, 1)

	// A client that expects another server key (an impostor server, seen
	// from the client).
	misled := curve.NewClient(k.cli, k.other.Public)
	if _, err := dealer(t, ep, misled, nil); err == nil {
		t.Fatal("a client connected to a server with another key than expected")
	}
	waitCount(t, "server failures", func() uint64 { return srv.Stats().Failures }, 1)
	waitCount(t, "misled client failures", func() uint64 { return misled.Stats().Failures }, 1)

	d, err := dealer(t, ep, curve.NewClient(k.cli, k.srv.Public), nil)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, r, d)
}

// The CURVE transport keeps the guard's screening: peers that connect and
// stall do not keep a keyed client out, and are closed at the deadline.
func TestCurveStalledPeerDoesNotBlockAccept(t *testing.T) {
	k := newKeys(t)
	r, ep, cnt := curveRouter(t, curve.NewServer(k.srv, curve.NewAllowList(k.cli.Public).Authorize))
	var stalled []net.Conn
	for _, sent := range [][]byte{nil, {0xFF}, make([]byte, 9)} {
		c, err := net.Dial("tcp", strings.TrimPrefix(ep, "tcp://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(sent); err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
	}
	start := time.Now()
	d, err := dealer(t, ep, curve.NewClient(k.cli, k.srv.Public), nil)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, r, d)
	if el := time.Since(start); el >= handshakeTimeout {
		t.Errorf("the keyed client waited %v, the stalled peers' deadline", el)
	}
	buf := make([]byte, 64)
	for i, c := range stalled {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(buf); err == nil || isTimeout(err) {
			t.Fatalf("stalled connection %d still open (%v)", i, err)
		}
	}
	waitCount(t, "stalled", cnt.Stalled, uint64(len(stalled)))
}

func TestMechCheck(t *testing.T) {
	greeting := func(mech string) []byte {
		g := make([]byte, 64)
		g[0], g[9], g[10] = 0xFF, 0x7F, 3
		copy(g[mechOff:], mech)
		return g
	}
	var m mechCheck
	m.ours(greeting("CURVE"))
	g := greeting("NULL")
	for i := range g[:mechEnd-1] {
		if err := m.theirs(g[i : i+1]); err != nil {
			t.Fatalf("refused at byte %d, before the mechanism is complete", i)
		}
	}
	if err := m.theirs(g[mechEnd-1:]); !errors.Is(err, ErrMechanism) || !strings.Contains(err.Error(), `"NULL"`) {
		t.Fatalf("err = %v", err)
	}
	var ok mechCheck
	ok.ours(greeting("CURVE"))
	if err := ok.theirs(greeting("CURVE")); err != nil {
		t.Fatal(err)
	}
}
