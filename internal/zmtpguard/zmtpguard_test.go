package zmtpguard

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	handshakeTimeout = 500 * time.Millisecond
	goleak.VerifyTestMain(m)
}

// router listens on the guarded transport and returns the plain tcp://
// endpoint peers dial.
func router(t *testing.T) (zmq4.Socket, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := zmq4.NewRouter(ctx, zmq4.WithID(zmq4.SocketIdentity("guarded")))
	if err := r.Listen(Endpoint("tcp://127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); cancel() })
	return r, "tcp://" + r.Addr().String()
}

func recvWithin(t *testing.T, r zmq4.Socket, d time.Duration) zmq4.Msg {
	t.Helper()
	got := make(chan zmq4.Msg, 1)
	go func() {
		if m, err := r.Recv(); err == nil {
			got <- m
		}
	}()
	select {
	case m := <-got:
		return m
	case <-time.After(d):
		t.Fatalf("nothing received within %v", d)
		return zmq4.Msg{}
	}
}

// A connection that stalls in the greeting no longer stops the socket from
// accepting an honest peer.
func TestStalledPeerDoesNotBlockAccept(t *testing.T) {
	r, ep := router(t)
	stalled, err := net.Dial("tcp", strings.TrimPrefix(ep, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := stalled.Write([]byte{0xFF, 0, 0}); err != nil { // 3 bytes of a greeting, then nothing
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := zmq4.NewDealer(ctx, zmq4.WithID(zmq4.SocketIdentity("honest")))
	defer d.Close()
	if err := d.Dial(ep); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(zmq4.NewMsgString("hello")); err != nil {
		t.Fatal(err)
	}
	m := recvWithin(t, r, 5*time.Second)
	if len(m.Frames) != 2 || string(m.Frames[0]) != "honest" || string(m.Frames[1]) != "hello" {
		t.Fatalf("got %q", m.Frames)
	}
	// The stalled connection is closed at the deadline, not kept open.
	stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	for {
		_, err := stalled.Read(buf)
		if err == nil {
			continue // the socket's own greeting
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the stalled connection is still open 5 s later")
		}
		break
	}
}

// After the handshake the deadline is lifted: a peer may stay quiet for
// longer than handshakeTimeout and still be heard.
func TestQuietPeerAfterHandshake(t *testing.T) {
	r, ep := router(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := zmq4.NewDealer(ctx, zmq4.WithID(zmq4.SocketIdentity("quiet")))
	defer d.Close()
	if err := d.Dial(ep); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(zmq4.NewMsgString("one")); err != nil {
		t.Fatal(err)
	}
	recvWithin(t, r, 5*time.Second)
	time.Sleep(3 * handshakeTimeout) // the quiet period under test, not a wait for a condition
	if err := d.Send(zmq4.NewMsgString("two")); err != nil {
		t.Fatal(err)
	}
	if m := recvWithin(t, r, 5*time.Second); string(m.Frames[1]) != "two" {
		t.Fatalf("got %q", m.Frames)
	}
}

// The frame parser finds the end of the first frame whatever the split of
// the bytes into reads, for short and long frames.
func TestFirstFrameEnd(t *testing.T) {
	greeting := make([]byte, greetingLen)
	short := append([]byte{0x04, 3}, "abc"...)
	long := append([]byte{0x06, 0, 0, 0, 0, 0, 0, 1, 0}, make([]byte, 256)...)
	for name, frame := range map[string][]byte{"short": short, "long": long, "empty": {0x04, 0}} {
		stream := append(append([]byte{}, greeting...), frame...)
		for chunk := 1; chunk <= len(stream); chunk++ {
			c := &conn{}
			done := false
			for i := 0; i < len(stream) && !done; i += chunk {
				done = c.consume(stream[i:min(i+chunk, len(stream))])
				if done && i+chunk < len(stream) {
					t.Fatalf("%s, reads of %d: done %d bytes early", name, chunk, len(stream)-i-chunk)
				}
			}
			if !done {
				t.Fatalf("%s, reads of %d: first frame never complete", name, chunk)
			}
		}
	}
}
