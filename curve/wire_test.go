package curve

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// rawClient speaks ZMTP + CURVE by hand, to send what zmq4 never would.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	sess *session
}

func dialRaw(t *testing.T, ep string, cli KeyPair, server PublicKey) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ep, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
	greeting := make([]byte, greetingSize)
	greeting[0], greeting[9], greeting[10] = 0xFF, 0x7F, 3
	copy(greeting[12:], "CURVE")
	c.write(greeting)
	if _, err := io.ReadFull(c.br, greeting); err != nil || string(greeting[12:17]) != "CURVE" {
		t.Fatalf("greeting %q, %v", greeting, err)
	}
	ch, err := newClientHandshake(cli, server, defaultRand)
	if err != nil {
		t.Fatal(err)
	}
	c.command(ch.hello())
	init, err := ch.initiate(c.readCommand(), []byte("\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x03raw"), defaultRand)
	if err != nil {
		t.Fatal(err)
	}
	c.command(init)
	_, c.sess, err = ch.ready(c.readCommand())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) command(cmd []byte) {
	c.t.Helper()
	c.write(append(appendFrameHeader(nil, flagCommand, len(cmd)), cmd...))
}

func (c *rawClient) readCommand() []byte {
	c.t.Helper()
	_, body, err := readFrame(c.br, nil, 1<<20)
	if err != nil {
		c.t.Fatal(err)
	}
	return body
}

// message returns the wire frame of a sealed MESSAGE.
func (c *rawClient) message(flags byte, body string) []byte {
	m := seal(c.t, c.sess, flags, body)
	return append(appendFrameHeader(nil, 0, len(m)), m...)
}

// expectClosed waits until the server closes the connection.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	if _, err := c.br.ReadByte(); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		c.t.Fatalf("connection not closed: %v", err)
	}
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }

func TestWireRejectsReplayTamperAndHugeFrames(t *testing.T) {
	leakCheck(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, cli := mustKeys(t), mustKeys(t)
	ssec := NewServer(srv, NewAllowList(cli.Public).Authorize, WithMaxMessageSize(1<<20))
	router, ep := listenRouter(t, ctx, ssec)

	recvOne := func(want string) {
		t.Helper()
		m, err := recvTimeout(t, router, 5*time.Second)
		for err == nil && len(m.Frames) == 0 {
			m, err = recvTimeout(t, router, 5*time.Second)
		}
		if err != nil || len(m.Frames) != 2 || string(m.Frames[0]) != "raw" || string(m.Frames[1]) != want {
			t.Fatalf("router got %q, %v; want [raw %s]", m.Frames, err, want)
		}
	}
	cases := []struct {
		name string
		bad  func(c *rawClient, good []byte) []byte
	}{
		{"replay", func(_ *rawClient, good []byte) []byte { return good }},
		{"tamper", func(c *rawClient, _ []byte) []byte {
			m := c.message(0, "tampered")
			m[len(m)-3] ^= 1
			return m
		}},
		{"plaintext frame", func(_ *rawClient, _ []byte) []byte { return []byte{0, 5, 'h', 'e', 'l', 'l', 'o'} }},
		{"huge frame", func(_ *rawClient, _ []byte) []byte {
			return []byte{flagLong, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, ep, cli, srv.Public)
			good := c.message(0, tc.name)
			c.write(good)
			recvOne(tc.name)
			c.write(tc.bad(c, good))
			c.expectClosed()
			waitStats(t, ssec, func(s Stats) bool { return s.BadMessages == uint64(i+1) })
		})
	}
	// Still serving: a fresh client gets through, in several frames.
	c := dialRaw(t, ep, cli, srv.Public)
	c.write(c.message(0, "after"))
	recvOne("after")
}
