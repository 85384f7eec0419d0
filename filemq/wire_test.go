package filemq

import (
	"context"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// rawPeer drives one side of the protocol by hand over a real zmq4 socket,
// to test what the other side does with good and bad commands.
type rawPeer struct {
	t    *testing.T
	sock zmq4.Socket
	in   chan zmq4.Msg
	id   []byte // ROUTER side: the client's identity, once seen
}

func newRawSocket(t *testing.T, sock zmq4.Socket) *rawPeer {
	t.Helper()
	r := &rawPeer{t: t, sock: sock, in: make(chan zmq4.Msg, 256)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := sock.Recv()
			if err != nil {
				return
			}
			r.in <- m
		}
	}()
	t.Cleanup(func() { sock.Close(); <-done; drainClosed(sock) })
	return r
}

// rawDealer connects a hand-driven client to endpoint.
func rawDealer(t *testing.T, endpoint string) *rawPeer {
	t.Helper()
	sock := zmq4.NewDealer(context.Background(), zmq4.WithLogger(discardStdLogger()))
	mustNot(t, sock.Dial(endpoint))
	return newRawSocket(t, sock)
}

// rawRouter binds a hand-driven server on a free loopback port.
func rawRouter(t *testing.T) (*rawPeer, string) {
	t.Helper()
	sock := zmq4.NewRouter(context.Background(), zmq4.WithLogger(discardStdLogger()))
	mustNot(t, sock.Listen("tcp://127.0.0.1:0"))
	r := newRawSocket(t, sock)
	return r, "tcp://" + sock.Addr().String()
}

func (r *rawPeer) sendRaw(frames ...[]byte) {
	r.t.Helper()
	if r.id != nil {
		frames = append([][]byte{r.id}, frames...)
	}
	mustNot(r.t, r.sock.Send(zmq4.NewMsgFrom(frames...)))
}

func (r *rawPeer) send(m Msg) {
	r.t.Helper()
	b, err := m.Encode(nil)
	mustNot(r.t, err)
	r.sendRaw(b)
}

// recv returns the next command, skipping heartbeats.
func (r *rawPeer) recv(d time.Duration) (Msg, bool) {
	r.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case zm := <-r.in:
			body := zm.Frames[len(zm.Frames)-1]
			if len(zm.Frames) == 2 {
				r.id = zm.Frames[0]
			}
			m, err := Decode(body)
			if err != nil {
				r.t.Fatalf("undecodable command %x: %v", body, err)
			}
			if m.Cmd == CmdHUGZ {
				r.send(Msg{Cmd: CmdHUGZOK})
				continue
			}
			if m.Cmd == CmdHUGZOK {
				continue
			}
			return m, true
		case <-timer.C:
			return Msg{}, false
		}
	}
}

func (r *rawPeer) expect(cmd Command) Msg {
	r.t.Helper()
	m, ok := r.recv(10 * time.Second)
	if !ok {
		r.t.Fatalf("no %v within 10 s", cmd)
	}
	if m.Cmd != cmd {
		r.t.Fatalf("got %v (%+v), want %v", m.Cmd, m, cmd)
	}
	return m
}
