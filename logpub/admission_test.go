package logpub

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// floodConns opens n TCP connections to addr that send nothing.
func floodConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var cs []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	return cs
}

// closedByPeer counts the connections the other side has closed: reading
// (a CURVE greeting, perhaps) ends with EOF or a reset instead of timing
// out.
func closedByPeer(cs []net.Conn) int {
	n := 0
	for _, c := range cs {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := io.Copy(io.Discard, c); !errors.Is(err, os.ErrDeadlineExceeded) {
			n++
		}
	}
	return n
}

// TestHubShedsPendingConnectionsPerSource: one address opens connections
// and says nothing on them. Past MaxPendingPerSource the hub closes the
// new ones at once, while another address subscribes as usual; when the
// flood ends, the address is served again.
func TestHubShedsPendingConnectionsPerSource(t *testing.T) {
	t.Parallel()
	h := startHub(t, func(c *HubConfig) { c.MaxPendingPerSource = 8 })
	_, addr, _ := splitEndpoint(h.PubEndpoint())
	flood := floodConns(t, addr, 12)
	waitFor(t, "4 connections shed", func() bool { return h.Stats().Shed == 4 })
	if n := closedByPeer(flood); n != 4 {
		t.Fatalf("%d of 12 idle connections closed by the hub, want the 4 over the limit", n)
	}

	// 127.0.0.2 is another source: its subscription goes through.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	other, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Write(appendSubscribe(nil, subscribeReq{Follow: true})); err != nil {
		t.Fatal(err)
	}
	other.SetReadDeadline(time.Now().Add(5 * time.Second))
	if typ, _, _, err := readFrame(other, nil); err != nil || typ != frameEnd {
		t.Fatalf("subscription from another source: frame %d, %v; want END", typ, err)
	}
	if s := h.Stats(); s.Shed != 4 || s.Subscribers != 1 {
		t.Fatalf("after another source subscribed: %+v", s)
	}

	// The flooding source's own subscription is shed while it lasts...
	if _, err := Subscribe(context.Background(), h.PubEndpoint(), SubscribeOptions{Follow: true}); err == nil {
		t.Fatal("a ninth pending connection from the flooding source was served")
	}
	// ...and served once its idle connections are gone.
	for _, c := range flood {
		c.Close()
	}
	var st *Stream
	waitFor(t, "a subscription from the former flooding source", func() bool {
		st, err = Subscribe(context.Background(), h.PubEndpoint(), SubscribeOptions{Follow: true})
		return err == nil
	})
	st.Close()
}

// TestHubLimitsCurveHandshakesPerSource: on a keyed hub, one address
// starts CURVE handshakes faster than HandshakesPerSource allows; the
// connections past its burst are closed before any curve25519 work, and
// the address is served again once its allowance has come back.
func TestHubLimitsCurveHandshakesPerSource(t *testing.T) {
	t.Parallel()
	keys := newCurveKeys(t)
	// One handshake every 2 s, a burst of 1.
	h := startHub(t, func(c *HubConfig) { c.Curve = keys.server(); c.HandshakesPerSource = 0.5 })
	_, addr, _ := splitEndpoint(h.PubEndpoint())
	flood := floodConns(t, addr, 5)
	waitFor(t, "4 handshakes shed", func() bool { return h.Stats().ShedHandshakes == 4 })
	if n := closedByPeer(flood); n != 4 {
		t.Fatalf("%d of 5 connections closed by the hub, want the 4 past the burst", n)
	}
	start := time.Now()
	var st *Stream
	var err error
	waitFor(t, "a keyed subscription once the allowance is back", func() bool {
		st, err = Subscribe(context.Background(), h.PubEndpoint(), SubscribeOptions{Follow: true, Curve: keys.admitted()})
		return err == nil
	})
	defer st.Close()
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("the source waited %v for a handshake at 0.5 per second", took)
	}
}
