package curve

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// writeMsg writes a multipart message as plaintext ZMTP frames, the way the
// mesh's own codec does, through a bufio.Writer.
func writeMsg(t *testing.T, w *bufio.Writer, frames ...string) {
	t.Helper()
	for i, f := range frames {
		var flags byte
		if i < len(frames)-1 {
			flags = flagMore
		}
		if _, err := w.Write(append(appendFrameHeader(nil, flags, len(f)), f...)); err != nil {
			t.Fatal(err)
		}
	}
}

func readMsg(t *testing.T, r *bufio.Reader) []string {
	t.Helper()
	var out []string
	for {
		flags, body, err := readFrame(r, nil, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(body))
		if flags&flagMore == 0 {
			return out
		}
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln := listenTCP(t)
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}

func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

func TestUpgradeRoundTrip(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	srv, cli := mustKeys(t), mustKeys(t)
	ssec := NewServer(srv, NewAllowList(cli.Public).Authorize)
	ln := listenTCP(t)
	type result struct {
		c   *Conn
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			accepted <- result{err: err}
			return
		}
		c, err := ssec.Upgrade(ctx, nc, map[string]string{"Socket-Type": "ROUTER"})
		accepted <- result{c, err}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc, err := NewClient(cli, srv.Public).Upgrade(ctx, nc, map[string]string{"Socket-Type": "DEALER", "Identity": "\x01id"})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	res := <-accepted
	if res.err != nil {
		t.Fatal(res.err)
	}
	sc := res.c
	defer sc.Close()
	if sc.PeerKey() != cli.Public || cc.PeerKey() != srv.Public {
		t.Fatal("peer keys do not match")
	}
	if sc.PeerMetadata()["Identity"] != "\x01id" || cc.PeerMetadata()["Socket-Type"] != "ROUTER" {
		t.Fatalf("metadata %q / %q", sc.PeerMetadata(), cc.PeerMetadata())
	}
	big := strings.Repeat("L", 100000)
	w := bufio.NewWriterSize(cc, 64<<10)
	writeMsg(t, w, "HELLO", "", big)
	writeMsg(t, w, "SHOUT")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(sc)
	if got := readMsg(t, r); len(got) != 3 || got[0] != "HELLO" || got[1] != "" || got[2] != big {
		t.Fatalf("got %d frames", len(got))
	}
	if got := readMsg(t, r); len(got) != 1 || got[0] != "SHOUT" {
		t.Fatalf("got %q", got)
	}
	sw := bufio.NewWriter(sc)
	writeMsg(t, sw, "back")
	if err := sw.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := readMsg(t, bufio.NewReader(cc)); len(got) != 1 || got[0] != "back" {
		t.Fatalf("got %q", got)
	}
}

func TestUpgradeRefusesNullPeerAndCancel(t *testing.T) {
	leakCheck(t)
	srv := mustKeys(t)
	ssec := NewServer(srv, nil)
	a, b := tcpPair(t)
	go func() {
		g := make([]byte, greetingSize)
		g[0], g[9], g[10] = 0xFF, 0x7F, 3
		copy(g[12:], "NULL")
		_, _ = b.Write(g)
	}()
	if _, err := ssec.Upgrade(context.Background(), a, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("NULL peer: %v, want ErrMalformed", err)
	}
	if ssec.Stats().Failures != 1 {
		t.Fatalf("stats %+v", ssec.Stats())
	}

	// A silent peer: ctx ends the handshake.
	c, _ := tcpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := ssec.Upgrade(ctx, c, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("silent peer: %v, want context.DeadlineExceeded", err)
	}
}

// The mesh path (Upgrade on plain net.Conns) against libzmq, both ways.
func TestInteropUpgrade(t *testing.T) {
	script := requirePyzmq(t)
	ctx := context.Background()
	srv, cli := mustKeys(t), mustKeys(t)

	t.Run("libzmq client, Upgrade server", func(t *testing.T) {
		ln := listenTCP(t)
		sc, wait := startPy(t, script, "client", "tcp://"+ln.Addr().String(), srv.Public.String(), cli.Public.String(), cli.Secret.Z85(), "10")
		nc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewServer(srv, NewAllowList(cli.Public).Authorize).Upgrade(ctx, nc, map[string]string{"Socket-Type": "ROUTER"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.PeerMetadata()["Identity"] != "py-dealer" || c.PeerKey() != cli.Public {
			t.Fatalf("peer %q", c.PeerMetadata())
		}
		if got := readMsg(t, bufio.NewReader(c)); len(got) != 2 || got[0] != "hello" || got[1] != "from-libzmq" {
			t.Fatalf("got %q", got)
		}
		w := bufio.NewWriter(c)
		writeMsg(t, w, "echo", "ok")
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if line := readLine(t, sc); line != "REPLY echo ok" {
			t.Fatalf("python: %q", line)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Upgrade client, libzmq server", func(t *testing.T) {
		certs := t.TempDir()
		if _, _, err := SaveKeyPair(certs, "client", cli); err != nil {
			t.Fatal(err)
		}
		sc, wait := startPy(t, script, "server", srv.Secret.Z85(), certs)
		nc, err := net.Dial("tcp", "127.0.0.1:"+readLine(t, sc))
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewClient(cli, srv.Public).Upgrade(ctx, nc, map[string]string{"Socket-Type": "DEALER", "Identity": "mesh"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		w := bufio.NewWriter(c)
		writeMsg(t, w, "hi", "there")
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := readMsg(t, bufio.NewReader(c)); len(got) != 3 || got[0] != "echo" || got[2] != "there" {
			t.Fatalf("got %q", got)
		}
		writeMsg(t, w, "quit")
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	})
}
