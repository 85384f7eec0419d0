package curve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"go.uber.org/goleak"
)

// leakCheck verifies, after every other cleanup, that no goroutine is left.
func leakCheck(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

func mustKeys(t testing.TB) KeyPair {
	t.Helper()
	kp, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// listenRouter starts a CURVE ROUTER on an ephemeral loopback port.
func listenRouter(t testing.TB, ctx context.Context, sec zmq4.Security) (zmq4.Socket, string) {
	t.Helper()
	r := zmq4.NewRouter(ctx, zmq4.WithSecurity(sec), zmq4.WithID(zmq4.SocketIdentity("router")),
		zmq4.WithLogger(log.New(io.Discard, "", 0))) // zmq4 logs each refused handshake
	t.Cleanup(func() { _ = r.Close() })
	if err := r.Listen(Scheme + "://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	return r, "tcp://" + r.Addr().String()
}

func newDealer(t testing.TB, ctx context.Context, sec zmq4.Security, id string) zmq4.Socket {
	t.Helper()
	d := zmq4.NewDealer(ctx, zmq4.WithSecurity(sec), zmq4.WithID(zmq4.SocketIdentity(id)),
		zmq4.WithDialerMaxRetries(1), zmq4.WithDialerRetry(50*time.Millisecond))
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// recvTimeout receives with a deadline: zmq4 has no Recv timeout, so a
// goroutine receives and the socket is closed by the cleanup if needed.
func recvTimeout(t testing.TB, s zmq4.Socket, d time.Duration) (zmq4.Msg, error) {
	t.Helper()
	type res struct {
		m   zmq4.Msg
		err error
	}
	ch := make(chan res, 1)
	go func() { m, err := s.Recv(); ch <- res{m, err} }()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-time.After(d):
		_ = s.Close()
		<-ch
		return zmq4.Msg{}, errors.New("recv timeout")
	}
}

func TestDealerRouterRoundTrip(t *testing.T) {
	leakCheck(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, cli := mustKeys(t), mustKeys(t)
	ssec := NewServer(srv, NewAllowList(cli.Public).Authorize)
	router, ep := listenRouter(t, ctx, ssec)
	csec := NewClient(cli, srv.Public)
	dealer := newDealer(t, ctx, csec, "dealer-1")
	if err := dealer.Dial(Endpoint(ep)); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 70000)
	for i, frames := range [][]string{{"hello"}, {"multi", "", "part", big}} {
		msg := zmq4.NewMsgFromString(frames)
		if err := dealer.Send(msg); err != nil {
			t.Fatal(err)
		}
		got, err := recvTimeout(t, router, 5*time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		want := append([]string{"dealer-1"}, frames...)
		if len(got.Frames) != len(want) {
			t.Fatalf("message %d: got %d frames, want %d", i, len(got.Frames), len(want))
		}
		for j := range want {
			if string(got.Frames[j]) != want[j] {
				t.Fatalf("message %d frame %d: got %.20q, want %.20q", i, j, got.Frames[j], want[j])
			}
		}
	}
	// Reply through the ROUTER (SendMulti path) to the dealer.
	if err := router.Send(zmq4.NewMsgFrom([]byte("dealer-1"), []byte("re"), []byte(big))); err != nil {
		t.Fatal(err)
	}
	got, err := recvTimeout(t, dealer, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Frames) != 2 || string(got.Frames[0]) != "re" || string(got.Frames[1]) != big {
		t.Fatalf("reply: got %d frames", len(got.Frames))
	}
	if st := ssec.Stats(); st.Handshakes != 1 || st.Failures != 0 || st.BadMessages != 0 {
		t.Fatalf("server stats %+v", st)
	}
	if st := csec.Stats(); st.Handshakes != 1 {
		t.Fatalf("client stats %+v", st)
	}
	_ = dealer.Close()
	_ = router.Close()
	cancel()
}

func TestWrongServerKeyRefused(t *testing.T) {
	leakCheck(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, cli, other := mustKeys(t), mustKeys(t), mustKeys(t)
	ssec := NewServer(srv, NewAllowList(cli.Public).Authorize)
	_, ep := listenRouter(t, ctx, ssec)
	csec := NewClient(cli, other.Public)
	if err := newDealer(t, ctx, csec, "d").Dial(Endpoint(ep)); err == nil {
		t.Fatal("dial with a wrong server key succeeded")
	}
	waitStats(t, ssec, func(s Stats) bool { return s.Failures == 1 && s.Handshakes == 0 })
	if st := csec.Stats(); st.Failures != 1 || st.Handshakes != 0 {
		t.Fatalf("client stats %+v", st)
	}
}

func TestClientNotInAllowListRefused(t *testing.T) {
	leakCheck(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, cli, stranger := mustKeys(t), mustKeys(t), mustKeys(t)
	ssec := NewServer(srv, NewAllowList(cli.Public).Authorize)
	router, ep := listenRouter(t, ctx, ssec)
	err := newDealer(t, ctx, NewClient(stranger, srv.Public), "stranger").Dial(Endpoint(ep))
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("dial with a key outside the allow-list: %v, want ErrRefused", err)
	}
	waitStats(t, ssec, func(s Stats) bool { return s.Unauthorized == 1 && s.Handshakes == 0 })
	// The server keeps serving admitted clients.
	d := newDealer(t, ctx, NewClient(cli, srv.Public), "friend")
	if err := d.Dial(Endpoint(ep)); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(zmq4.NewMsgString("hi")); err != nil {
		t.Fatal(err)
	}
	m, err := recvTimeout(t, router, 5*time.Second)
	if err != nil || string(m.Frames[0]) != "friend" {
		t.Fatalf("router got %q, %v", m.Frames, err)
	}
}

func TestNoDowngradeNoMisuse(t *testing.T) {
	leakCheck(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, cli := mustKeys(t), mustKeys(t)
	_, ep := listenRouter(t, ctx, NewServer(srv, nil))
	quiet := zmq4.WithLogger(log.New(io.Discard, "", 0))

	// A NULL peer is refused at the greeting: no fallback to NULL.
	null := zmq4.NewDealer(ctx, zmq4.WithDialerMaxRetries(0), quiet)
	defer null.Close()
	if err := null.Dial(ep); err == nil {
		t.Fatal("NULL dealer connected to a CURVE router")
	}
	// A curve Security on a plain tcp:// endpoint fails clearly.
	plain := newDealer(t, ctx, NewClient(cli, srv.Public), "plain")
	if err := plain.Dial(ep); !errors.Is(err, ErrTransport) {
		t.Fatalf("curve Security on tcp://: %v, want ErrTransport", err)
	}
	// A NULL socket on a curve+tcp:// endpoint too.
	wrong := zmq4.NewDealer(ctx, zmq4.WithDialerMaxRetries(0), quiet)
	defer wrong.Close()
	if err := wrong.Dial(Endpoint(ep)); !errors.Is(err, ErrTransport) {
		t.Fatalf("NULL socket on curve+tcp://: %v, want ErrTransport", err)
	}
}

func waitStats(t *testing.T, s *Security, ok func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(s.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// zmq4's Close does not reach a connection still in its handshake; the
// curve+tcp transport closes it with the socket, so no accept goroutine
// waits for the handshake deadline.
func TestCloseDuringHandshake(t *testing.T) {
	leakCheck(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	router, ep := listenRouter(t, ctx, NewServer(mustKeys(t), nil, WithHandshakeTimeout(time.Minute)))
	c, _ := net.Dial("tcp", strings.TrimPrefix(ep, "tcp://"))
	defer c.Close()
	g := make([]byte, greetingSize)
	g[0], g[9], g[10] = 0xFF, 0x7F, 3
	copy(g[12:], "CURVE")
	if _, err := c.Write(g); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, g); err != nil { // the server is now waiting for HELLO
		t.Fatal(err)
	}
	start := time.Now()
	_ = router.Close()
	cancel()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(g); err == nil {
		t.Fatal("connection still open after the router closed")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

// One server Security shared by many connections: each keeps its own
// session, and replies reach the right client.
func TestManyClients(t *testing.T) {
	leakCheck(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := mustKeys(t)
	allow := NewAllowList()
	ssec := NewServer(srv, allow.Authorize)
	router, ep := listenRouter(t, ctx, ssec)
	const clients, msgs = 4, 30
	dealers := make([]zmq4.Socket, clients)
	for i := range dealers {
		kp := mustKeys(t)
		allow.Add(kp.Public)
		dealers[i] = newDealer(t, ctx, NewClient(kp, srv.Public), fmt.Sprintf("c%d", i))
		if err := dealers[i].Dial(Endpoint(ep)); err != nil {
			t.Fatal(err)
		}
	}
	errc := make(chan error, clients)
	for i, d := range dealers {
		go func() {
			for j := 0; j < msgs; j++ {
				if err := d.Send(zmq4.NewMsgFromString([]string{fmt.Sprintf("c%d", i), fmt.Sprint(j)})); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	next := map[string]int{}
	for n := 0; n < clients*msgs; n++ {
		m, err := recvTimeout(t, router, 10*time.Second)
		if err != nil {
			t.Fatalf("after %d messages: %v", n, err)
		}
		id := string(m.Frames[0])
		if len(m.Frames) != 3 || string(m.Frames[1]) != id || string(m.Frames[2]) != fmt.Sprint(next[id]) {
			t.Fatalf("got %q, want [%s %s %d]", m.Frames, id, id, next[id])
		}
		next[id]++
		if err := router.Send(zmq4.NewMsgFrom(m.Frames[0], m.Frames[2])); err != nil {
			t.Fatal(err)
		}
	}
	for range dealers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	for i, d := range dealers {
		for j := 0; j < msgs; j++ {
			m, err := recvTimeout(t, d, 10*time.Second)
			if err != nil || len(m.Frames) != 1 || string(m.Frames[0]) != fmt.Sprint(j) {
				t.Fatalf("client %d reply %d: %q, %v", i, j, m.Frames, err)
			}
		}
	}
	if st := ssec.Stats(); st.Handshakes != clients || st.BadMessages != 0 {
		t.Fatalf("stats %+v", st)
	}
}
