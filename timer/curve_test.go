package timer

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/curvetest"
)

// keyedService starts a service; with srv set, closed with CURVE and
// admitting the keys admit.
func keyedService(t *testing.T, srv *curve.KeyPair, admit ...curve.PublicKey) *Service {
	t.Helper()
	cfg := DefaultConfig()
	if srv != nil {
		cfg.Keys, cfg.Authorize = srv, curve.NewAllowList(admit...).Authorize
	}
	return startService(t, cfg)
}

func keyedClient(t *testing.T, ep string, keys *curve.KeyPair, serverKey curve.PublicKey) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{Endpoint: ep, Heartbeat: 200 * time.Millisecond, Retry: 300 * time.Millisecond,
		Keys: keys, ServerKey: serverKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCurveTicksAndRequests(t *testing.T) {
	k := curvetest.KeyPairs(t, 2)
	srv, cli := k[0], k[1]
	s := keyedService(t, &srv, cli.Public)
	snap := s.Snapshot()
	serverKey, err := curve.ParsePublicKey(snap.PublicKey)
	if err != nil || serverKey != srv.Public {
		t.Fatalf("snapshot public key %q: %v", snap.PublicKey, err)
	}
	c := keyedClient(t, s.Endpoint(), &cli, serverKey)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ticks, err := c.Ticks(ctx, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	recvTick(t, ticks, 5*time.Second)
	if err := c.Schedule(ctx, Spec{Name: "keyed", Every: Duration(time.Hour), Scope: ScopeNode}); err != nil {
		t.Fatal(err)
	}
	if list, err := c.List(ctx); err != nil || len(list) != 1 || list[0].Spec.Name != "keyed" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if n := s.Snapshot().Refused; n != 0 || c.Refused() != 0 {
		t.Fatalf("refusals: service %d, client %d", n, c.Refused())
	}
}

// Every mismatch of keys or mechanism is refused by both ends and counted;
// the refused client stops with ErrRefused and gets no tick; the service
// keeps serving admitted clients.
func TestCurveRefusals(t *testing.T) {
	k := curvetest.KeyPairs(t, 3)
	srv, cli, other := k[0], k[1], k[2]
	cases := []struct {
		name       string
		serverKeys bool
		cliKeys    *curve.KeyPair
		serverKey  curve.PublicKey
		tries      uint64 // dials the client makes before it stops
	}{
		{"null client, keyed service", true, nil, curve.PublicKey{}, 1},
		{"unadmitted client key", true, &other, srv.Public, 1},
		// The service cannot open the HELLO and hangs up without a word,
		// which the client cannot tell from a restart on the first try.
		{"client expects another service key", true, &cli, other.Public, maxCutHandshakes},
		{"keyed client, null service", false, &cli, srv.Public, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sk *curve.KeyPair
			if tc.serverKeys {
				sk = &srv
			}
			s := keyedService(t, sk, cli.Public)
			c := keyedClient(t, s.Endpoint(), tc.cliKeys, tc.serverKey)
			ticks, err := c.Ticks(context.Background(), 10*time.Millisecond)
			if errors.Is(err, ErrRefused) {
				// Refused already: a closed channel, as below.
				ch := make(chan Tick)
				close(ch)
				ticks = ch
			} else if err != nil {
				t.Fatal(err)
			}
			select {
			case tk, ok := <-ticks:
				if ok {
					t.Fatalf("a refused client got tick %+v", tk)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the refused client's ticks channel is still open")
			}
			if err := c.Err(); !errors.Is(err, ErrRefused) {
				t.Fatalf("Err() = %v, want ErrRefused", err)
			}
			if _, err := c.List(context.Background()); !errors.Is(err, ErrRefused) {
				t.Fatalf("List on a refused client: %v", err)
			}
			if c.Refused() != tc.tries {
				t.Fatalf("client refusals = %d, want %d", c.Refused(), tc.tries)
			}
			eventually(t, 5*time.Second, "the service to count the refusals", func() bool { return s.Snapshot().Refused == tc.tries })
			if !tc.serverKeys {
				return
			}
			good := keyedClient(t, s.Endpoint(), &cli, srv.Public)
			ticks, err = good.Ticks(context.Background(), 10*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			recvTick(t, ticks, 5*time.Second)
		})
	}
}

// keyedTicksThenStop starts a keyed service and a keyed client receiving
// 100 ms ticks from it, then stops the service. It returns the service's
// config, endpoint set, to start it again.
func keyedTicksThenStop(t *testing.T) (Config, *Client, <-chan Tick) {
	t.Helper()
	k := curvetest.KeyPairs(t, 2)
	srv, cli := k[0], k[1]
	cfg := DefaultConfig()
	cfg.Keys, cfg.Authorize = &srv, curve.NewAllowList(cli.Public).Authorize
	s1, err := NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := keyedClient(t, s1.Endpoint(), &cli, srv.Public)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := c.Ticks(ctx, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	recvTick(t, ch, 5*time.Second)
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Endpoint = s1.Endpoint()
	return cfg, c, ch
}

// A keyed client reconnects by itself to a keyed service restarted on the
// same endpoint, with a fresh CURVE handshake.
func TestCurveClientSurvivesServiceRestart(t *testing.T) {
	t.Parallel()
	cfg, c, ch := keyedTicksThenStop(t)
	s2 := startService(t, cfg)
	recvTickAfter(t, ch, time.Now(), 10*time.Second)
	if n := s2.Snapshot().Refused; n != 0 || c.Err() != nil {
		t.Fatalf("after the restart: refused %d, client error %v", n, c.Err())
	}
}

// TestCurveClientRedialsAfterCutHandshake: while the service is down,
// something on its port greets as a CURVE server and hangs up before the
// handshake is done, as a service does when it closes while a client
// reconnects. zmq4's own reconnect would stop for good there; the client
// takes a new socket, and its ticks resume from the restarted service.
func TestCurveClientRedialsAfterCutHandshake(t *testing.T) {
	t.Parallel()
	cfg, c, ch := keyedTicksThenStop(t)
	l, err := net.Listen("tcp", strings.TrimPrefix(cfg.Endpoint, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	var cut atomic.Int64
	go func() {
		defer l.Close() // one cut: the service closing may add one more
		conn, err := l.Accept()
		if err != nil {
			return
		}
		// A ZMTP 3.0 greeting: signature, version 3.0, mechanism CURVE,
		// as-server, filler.
		greeting := make([]byte, 64)
		greeting[0], greeting[9], greeting[10] = 0xff, 0x7f, 3
		copy(greeting[12:], "CURVE")
		greeting[32] = 1
		conn.Write(greeting)
		conn.SetReadDeadline(time.Now().Add(time.Second))
		io.ReadFull(conn, make([]byte, 64)) // the client's greeting
		conn.Close()
		cut.Add(1)
	}()
	eventually(t, 10*time.Second, "the handshake cut", func() bool { return cut.Load() == 1 })
	s2 := startService(t, cfg)
	recvTickAfter(t, ch, time.Now(), 15*time.Second)
	if c.Reconnects() == 0 || c.Err() != nil {
		t.Fatalf("%d new sockets, client error %v", c.Reconnects(), c.Err())
	}
	if n := s2.Snapshot().Refused; n != 0 {
		t.Fatalf("the new service refused %d connections", n)
	}
	t.Logf("%d handshakes cut, %d new sockets", cut.Load(), c.Reconnects())
}
