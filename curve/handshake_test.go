package curve

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// detRand is a deterministic random source for reproducible handshakes.
func detRand(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return rand.NewChaCha8(s)
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

type pair struct {
	srvKeys, cliKeys KeyPair
	server           *serverHandshake
	client           *clientHandshake
	clock            *fakeClock
}

func newPair(t testing.TB, seed uint64) *pair {
	t.Helper()
	r := detRand(seed)
	srv, err := generateKeyPair(r)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := generateKeyPair(r)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	ch, err := newClientHandshake(cli, srv.Public, r)
	if err != nil {
		t.Fatal(err)
	}
	return &pair{
		srvKeys: srv, cliKeys: cli, clock: clock, client: ch,
		server: &serverHandshake{long: srv, rand: r, cookies: &cookieKeys{now: clock.now, rand: r}},
	}
}

// run performs the whole handshake in memory and returns both sessions.
func (p *pair) run(t testing.TB) (cli, srv *session) {
	t.Helper()
	welcome, err := p.server.welcome(p.client.hello())
	if err != nil {
		t.Fatal(err)
	}
	init, err := p.client.initiate(welcome, []byte("\x0bSocket-Type\x00\x00\x00\x06DEALER"), detRand(9))
	if err != nil {
		t.Fatal(err)
	}
	key, meta, err := p.server.initiate(init)
	if err != nil {
		t.Fatal(err)
	}
	if key != p.cliKeys.Public || string(meta) != "\x0bSocket-Type\x00\x00\x00\x06DEALER" {
		t.Fatalf("server saw key %s, metadata %q", key, meta)
	}
	ready, srv := p.server.ready([]byte("\x0bSocket-Type\x00\x00\x00\x06ROUTER"))
	meta, cli, err = p.client.ready(ready)
	if err != nil {
		t.Fatal(err)
	}
	if string(meta) != "\x0bSocket-Type\x00\x00\x00\x06ROUTER" {
		t.Fatalf("client saw metadata %q", meta)
	}
	return cli, srv
}

func seal(t testing.TB, s *session, flags byte, body string) []byte {
	t.Helper()
	m, err := s.seal(nil, append([]byte{flags}, body...))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSessionMessages(t *testing.T) {
	cli, srv := newPair(t, 1).run(t)
	for i, body := range []string{"", "one", string(bytes.Repeat([]byte("z"), 5000))} {
		m := seal(t, cli, msgFlagMore, body)
		got, err := srv.open(nil, m)
		if err != nil || got[0] != msgFlagMore || string(got[1:]) != body {
			t.Fatalf("client->server %d: %q, %v", i, got, err)
		}
		m = seal(t, srv, 0, body)
		got, err = cli.open(nil, m)
		if err != nil || got[0] != 0 || string(got[1:]) != body {
			t.Fatalf("server->client %d: %q, %v", i, got, err)
		}
	}
}

func TestSessionRejectsReplayTamperReflect(t *testing.T) {
	cli, srv := newPair(t, 2).run(t)
	m1 := seal(t, cli, 0, "first")
	m2 := seal(t, cli, 0, "second")
	if _, err := srv.open(nil, m2); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.open(nil, m1); !errors.Is(err, ErrReplay) {
		t.Fatalf("reordered message: %v, want ErrReplay", err)
	}
	if _, err := srv.open(nil, m2); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed message: %v, want ErrReplay", err)
	}
	m3 := seal(t, cli, 0, "third")
	for _, i := range []int{len(cmdMessage) + shortNonceSz, len(m3) - 1} {
		bad := bytes.Clone(m3)
		bad[i] ^= 0x40
		if _, err := srv.open(nil, bad); !errors.Is(err, ErrAuth) {
			t.Fatalf("byte %d flipped: %v, want ErrAuth", i, err)
		}
	}
	// A forged nonce (box of nonce 3 relabelled 9) fails and does not move
	// the replay window: the genuine message still opens.
	forged := bytes.Clone(m3)
	forged[len(cmdMessage)+shortNonceSz-1] = 9
	if _, err := srv.open(nil, forged); !errors.Is(err, ErrAuth) {
		t.Fatalf("forged nonce: %v", err)
	}
	if got, err := srv.open(nil, m3); err != nil || string(got[1:]) != "third" {
		t.Fatalf("genuine message after forgery: %q, %v", got, err)
	}
	// A client message reflected back to the client uses the other prefix.
	if _, err := cli.open(nil, seal(t, cli, 0, "mirror")); !errors.Is(err, ErrAuth) {
		t.Fatalf("reflected message: %v, want ErrAuth", err)
	}
	if _, err := srv.open(nil, m3[:messageMin-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short message: %v, want ErrMalformed", err)
	}
}

func TestHandshakeWrongServerKey(t *testing.T) {
	p := newPair(t, 3)
	other, _ := generateKeyPair(detRand(77))
	ch, err := newClientHandshake(p.cliKeys, other.Public, detRand(4))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.server.welcome(ch.hello()); !errors.Is(err, ErrAuth) {
		t.Fatalf("HELLO for another server: %v, want ErrAuth", err)
	}
	// A WELCOME from a server that is not the one the client expects.
	welcome, err := p.server.welcome(p.client.hello())
	if err != nil {
		t.Fatal(err)
	}
	ch.server = other.Public
	if _, err := ch.initiate(welcome, nil, detRand(5)); !errors.Is(err, ErrAuth) {
		t.Fatalf("WELCOME from another server: %v, want ErrAuth", err)
	}
}

func TestHandshakeCookieExpires(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		ok   bool
	}{{30 * time.Second, true}, {90 * time.Second, true}, {150 * time.Second, false}} {
		p := newPair(t, 6)
		welcome, err := p.server.welcome(p.client.hello())
		if err != nil {
			t.Fatal(err)
		}
		init, err := p.client.initiate(welcome, nil, detRand(7))
		if err != nil {
			t.Fatal(err)
		}
		p.clock.t = p.clock.t.Add(tc.wait)
		_, _, err = p.server.initiate(init)
		if (err == nil) != tc.ok {
			t.Fatalf("INITIATE %v after WELCOME: %v, want ok=%v", tc.wait, err, tc.ok)
		}
	}
}

func TestHandshakeCookieOfAnotherConnection(t *testing.T) {
	a, b := newPair(t, 8), newPair(t, 12)
	// The same server, two connections.
	b.server.long, b.client.server, b.server.cookies = a.srvKeys, a.srvKeys.Public, a.server.cookies
	wa, err := a.server.welcome(a.client.hello())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.server.welcome(b.client.hello()); err != nil {
		t.Fatal(err)
	}
	init, err := a.client.initiate(wa, nil, detRand(10))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.server.initiate(init); !errors.Is(err, ErrAuth) {
		t.Fatalf("INITIATE replayed on another connection: %v, want ErrAuth", err)
	}
}

func TestReadyError(t *testing.T) {
	p := newPair(t, 11)
	if _, _, err := p.client.ready(encodeError("not authorized")); !errors.Is(err, ErrRefused) {
		t.Fatalf("ERROR: %v, want ErrRefused", err)
	}
	if _, _, err := p.client.ready([]byte("\x05ERROR\x09short")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad ERROR: %v, want ErrMalformed", err)
	}
}

func TestParseMetadata(t *testing.T) {
	good := []byte("\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x00")
	props, err := parseMetadata(good)
	if err != nil || props["Socket-Type"] != "DEALER" || props["Identity"] != "" || len(props) != 2 {
		t.Fatalf("%v, %v", props, err)
	}
	for _, bad := range [][]byte{
		[]byte("\x0bSocket-Type\x00\x00\x00\x07DEALER"),
		[]byte("\x0bSocket-Type\x00\x00"),
		[]byte("\x00\x00\x00\x00\x00"),
		[]byte("\x02a b\x00\x00\x00\x00"),
		[]byte("\x05Ident"),
	} {
		if _, err := parseMetadata(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%q: %v, want ErrMalformed", bad, err)
		}
	}
}
