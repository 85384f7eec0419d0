package zmtpguard

import (
	"context"
	"net"
	"os"
	"os/exec"
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

// Connections that stall before or in the greeting no longer stop the
// socket from accepting an honest peer: it is served while they still
// wait, and they are closed at the deadline.
func TestStalledPeerDoesNotBlockAccept(t *testing.T) {
	r, ep := router(t)
	var stalled []net.Conn
	for _, sent := range [][]byte{nil, {0xFF}, {0xFF, 0, 0}, make([]byte, 9)} {
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
	// The honest peer did not wait for them: they are all still open...
	buf := make([]byte, 256)
	for i, c := range stalled {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(buf); err == nil || !isTimeout(err) {
			t.Fatalf("stalled connection %d: %v before the honest peer was served", i, err)
		}
	}
	// ...and closed at the deadline, not kept open.
	for i, c := range stalled {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(buf); err == nil || isTimeout(err) {
			t.Fatalf("stalled connection %d still open 5 s later (%v)", i, err)
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// A libzmq peer (pyzmq, Debian python3-zmq) talks to a guarded ROUTER: the
// screening reads no more of the greeting than libzmq sends unprompted.
func TestLibzmqPeer(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import zmq").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI installs python3-zmq (make deps): %v", err)
		}
		t.Skipf("python3-zmq not installed: %v", err)
	}
	r, ep := router(t)
	script := `import sys, zmq
s = zmq.Context().socket(zmq.DEALER)
s.setsockopt(zmq.IDENTITY, b"libzmq")
s.setsockopt(zmq.LINGER, -1)
s.connect(sys.argv[1])
s.send(b"from libzmq")
s.close()
`
	// LINGER -1: close waits until the message is delivered, however long
	// a loaded machine takes to start and handshake (a 2 s linger lost the
	// message once under the full suite); the context bounds the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", script, ep)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	m := recvWithin(t, r, 10*time.Second)
	if len(m.Frames) != 2 || string(m.Frames[0]) != "libzmq" || string(m.Frames[1]) != "from libzmq" {
		t.Fatalf("got %q", m.Frames)
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

// FuzzFirstFrameEnd: any bytes, split anywhere, never panic the parser,
// and the split does not change where it finds the end of the first frame.
func FuzzFirstFrameEnd(f *testing.F) {
	greeting := make([]byte, greetingLen)
	f.Add(append(append([]byte{}, greeting...), 0x04, 3, 'a', 'b', 'c'), uint8(7))
	f.Add(append(append([]byte{}, greeting...), 0x06, 0, 0, 0, 0, 0, 0, 0, 2, 'x', 'y'), uint8(1))
	f.Add([]byte{0xFF, 0, 0}, uint8(2))
	f.Add(append(append([]byte{}, greeting...), 0x06, 0xFF, 0xFF), uint8(3))
	f.Fuzz(func(t *testing.T, stream []byte, split uint8) {
		end := func(chunk int) int {
			c := &conn{}
			for i := 0; i < len(stream); i += chunk {
				j := min(i+chunk, len(stream))
				if c.consume(stream[i:j]) {
					return j
				}
			}
			return -1
		}
		whole := end(max(len(stream), 1))
		byOne := end(1)
		if byOne > 0 && whole > 0 && whole < byOne {
			t.Fatalf("whole stream ends the frame at %d, byte by byte at %d", whole, byOne)
		}
		if (whole < 0) != (byOne < 0) {
			t.Fatalf("whole stream: %d, byte by byte: %d", whole, byOne)
		}
		_ = end(int(split%16) + 1)
	})
}
