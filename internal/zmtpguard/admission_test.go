package zmtpguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/logmesh/logmesh/curve"
)

// honestRoundTrip dials ep with a new DEALER called id, sends a message
// the ROUTER r must receive, and closes the DEALER. It returns the Dial's
// error (the connection was shed); any other failure ends the test.
func honestRoundTrip(t *testing.T, r zmq4.Socket, ep, id string) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := zmq4.NewDealer(ctx, zmq4.WithID(zmq4.SocketIdentity(id)), zmq4.WithDialerMaxRetries(1))
	defer d.Close()
	if err := d.Dial(ep); err != nil {
		return err
	}
	if err := d.Send(zmq4.NewMsgString("hi")); err != nil {
		t.Fatal(err)
	}
	m := recvWithin(t, r, 5*time.Second)
	if len(m.Frames) != 2 || string(m.Frames[0]) != id {
		t.Fatalf("router got %q, want a message of %s", m.Frames, id)
	}
	return nil
}

// signatureOnly opens n connections to ep that send the 10-byte ZMTP
// signature and nothing more; they close when the test ends.
func signatureOnly(t *testing.T, ep string, n int) []net.Conn {
	t.Helper()
	signature := []byte{0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F}
	var cs []net.Conn
	for range n {
		c, err := net.Dial("tcp", strings.TrimPrefix(ep, "tcp://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write(signature); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}

// One address holds connections that send the ZMTP signature and stop.
// Past maxPending such connections, the guard closes new ones at once and
// counts them; a finished handshake frees its place, and so does a
// connection that leaves.
func TestPendingLimitPerSource(t *testing.T) {
	defer func(old int) { maxPending = old }(maxPending)
	maxPending = 4
	r, ep, cnt := curveRouter(t, nil)

	// Honest peers one after another, more of them than the limit: each
	// leaves the pending state when its handshake is done.
	for i := range 6 {
		if err := honestRoundTrip(t, r, ep, fmt.Sprintf("honest-%d", i)); err != nil {
			t.Fatalf("honest peer %d: %v", i, err)
		}
	}
	if n := cnt.Shed(); n != 0 {
		t.Fatalf("%d honest connections shed", n)
	}

	flood := signatureOnly(t, ep, 7)
	waitCount(t, "connections shed", cnt.Shed, 3)
	closed := 0
	for _, c := range flood {
		// zmq4 may send its greeting to the ones it took: read past it.
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := io.Copy(io.Discard, c); !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	if closed != 3 || cnt.Shed() != 3 {
		t.Fatalf("%d of 7 stalled connections closed, %d counted as shed; want the 3 past the limit", closed, cnt.Shed())
	}

	// The stalled ones leave (here: they hang up): the address is served.
	for _, c := range flood {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		err := honestRoundTrip(t, r, ep, fmt.Sprintf("after-%d", i))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the address is still shed after its stalled connections left: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // their slots are freed as zmq4 reads their EOF
	}
}

// On a CURVE socket, one address may start handshakeRate handshakes a
// second: past its burst, connections are closed after their signature,
// before any curve25519 work, and counted.
func TestCurveHandshakeRatePerSource(t *testing.T) {
	defer func(old float64) { handshakeRate = old }(handshakeRate)
	handshakeRate = 0.5 // a burst of 1, then one every 2 s
	k := newKeys(t)
	_, ep, cnt := curveRouter(t, curve.NewServer(k.srv, curve.NewAllowList(k.cli.Public).Authorize))
	signatureOnly(t, ep, 4)
	waitCount(t, "handshakes shed", cnt.Shed, 3)
	time.Sleep(100 * time.Millisecond)
	if n := cnt.Shed(); n != 3 {
		t.Fatalf("%d connections shed, want the 3 past a burst of 1", n)
	}
}
