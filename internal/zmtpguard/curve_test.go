package zmtpguard

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
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

// FuzzMechCheck: the peer's greeting bytes, in any split, never panic the
// check, which refuses exactly when the mechanism differs from ours.
func FuzzMechCheck(f *testing.F) {
	curveG := make([]byte, 64)
	curveG[0], curveG[9], curveG[10] = 0xFF, 0x7F, 3
	copy(curveG[mechOff:], "CURVE")
	nullG := append([]byte(nil), curveG...)
	copy(nullG[mechOff:mechEnd], "NULL\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	f.Add(curveG, uint8(10))
	f.Add(nullG, uint8(31))
	f.Add(nullG[:20], uint8(3))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, theirs []byte, split uint8) {
		var m mechCheck
		m.ours(curveG)
		k := min(int(split), len(theirs))
		err := m.theirs(theirs[:k])
		if err == nil {
			err = m.theirs(theirs[k:])
		}
		differs := len(theirs) >= mechEnd && !bytes.Equal(theirs[mechOff:mechEnd], curveG[mechOff:mechEnd])
		if (err != nil) != differs {
			t.Fatalf("greeting %x: err %v, mechanism differs %v", theirs, err, differs)
		}
	})
}

// A DEALER dialling through the guarded transports to a peer that accepts
// TCP and never answers does not hold Close: the connection closes with
// the socket's context, mid-handshake.
func TestDialClosesWithSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent: reads nothing, writes nothing
			accepted <- struct{}{}
		}
	}()
	k := newKeys(t)
	for _, sec := range []zmq4.Security{nil, curve.NewClient(k.cli, k.srv.Public)} {
		ctx, cancel := context.WithCancel(context.Background())
		opts := []zmq4.Option{}
		ep := Endpoint("tcp://" + ln.Addr().String())
		if sec != nil {
			opts = append(opts, zmq4.WithSecurity(sec))
			ep = CurveEndpoint("tcp://" + ln.Addr().String())
		}
		d := zmq4.NewDealer(ctx, opts...)
		done := make(chan error, 1)
		go func() { done <- d.Dial(ep) }()
		select { // Dial is in the handshake once the peer has accepted
		case <-accepted:
		case <-time.After(5 * time.Second):
			t.Fatal("the silent peer accepted nothing")
		}
		cancel()
		select {
		case err := <-done:
			if err == nil {
				t.Error("Dial to a silent peer succeeded")
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("Dial (curve %v) still blocked 2 s after its socket's context ended", sec != nil)
		}
		d.Close()
	}
}

// A libzmq CURVE client (pyzmq, Debian python3-zmq) talks to a guarded
// CURVE ROUTER both ways, and a libzmq NULL client gets nothing through.
// (libzmq reads our CURVE greeting before it has sent its mechanism and
// hangs up itself, so the refusal is libzmq's, not counted here.)
func TestLibzmqCurvePeer(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import zmq; assert zmq.has('curve')").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI installs python3-zmq with CURVE (make deps): %v", err)
		}
		t.Skipf("python3-zmq with CURVE not installed: %v", err)
	}
	k := newKeys(t)
	srv := curve.NewServer(k.srv, curve.NewAllowList(k.cli.Public).Authorize)
	r, ep, _ := curveRouter(t, srv)
	script := `import sys, zmq
s = zmq.Context().socket(zmq.DEALER)
s.setsockopt(zmq.IDENTITY, b"libzmq")
s.setsockopt(zmq.LINGER, 0)
s.setsockopt(zmq.RCVTIMEO, 30000)
if len(sys.argv) > 2:
    s.setsockopt(zmq.CURVE_PUBLICKEY, sys.argv[2].encode())
    s.setsockopt(zmq.CURVE_SECRETKEY, sys.argv[3].encode())
    s.setsockopt(zmq.CURVE_SERVERKEY, sys.argv[4].encode())
s.connect(sys.argv[1])
s.send(b"from libzmq")
print(s.recv().decode())
`
	done := make(chan []byte, 1)
	go func() {
		out, _ := exec.Command(py, "-c", script, ep, k.cli.Public.String(), k.cli.Secret.Z85(), k.srv.Public.String()).CombinedOutput()
		done <- out
	}()
	m := recvWithin(t, r, 30*time.Second) // python's start is slow on a loaded machine
	if len(m.Frames) != 2 || string(m.Frames[0]) != "libzmq" || string(m.Frames[1]) != "from libzmq" {
		t.Fatalf("got %q", m.Frames)
	}
	if err := r.Send(zmq4.NewMsgFrom(m.Frames[0], []byte("pong"))); err != nil {
		t.Fatal(err)
	}
	if out := <-done; strings.TrimSpace(string(out)) != "pong" {
		t.Fatalf("libzmq client: %s", out)
	}

	// NULL libzmq client: no handshake; its message never arrives and it
	// receives nothing (its recv times out).
	cmd := exec.Command(py, "-c", strings.Replace(script, "30000", "1000", 1), ep)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Again") {
		t.Fatalf("NULL libzmq client: %v\n%s", err, out)
	}
	if st := srv.Stats(); st.Handshakes != 1 {
		t.Fatalf("server stats %+v: want only the CURVE client's handshake", st)
	}
	got := make(chan zmq4.Msg, 1)
	go func() {
		if m, err := r.Recv(); err == nil {
			got <- m
		}
	}()
	select {
	case m := <-got:
		t.Fatalf("the NULL client's message arrived: %q", m.Frames)
	case <-time.After(500 * time.Millisecond): // a message would be here long before
	}
}
