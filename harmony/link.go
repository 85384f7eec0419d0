package harmony

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
)

// link is one DEALER connection to one endpoint, kept up by the link's own
// goroutine. It works around these zmq4 v0.17.0 limits:
//   - Dial blocks (retries × 250 ms, and a handshake without timeout, see
//     transport.go), so it runs in the link's goroutine;
//   - a DEALER sends to every endpoint it is connected to, so a link has
//     exactly one;
//   - WithAutomaticReconnect redials from inside a failed write while the
//     socket's writer holds its lock, and the redial then waits for that
//     lock: a deadlock (zmq4 issue #132). So a link notices the lost
//     connection on its Recv and redials with a fresh socket itself;
//   - what is sent while disconnected is silently dropped, which the
//     protocol recovers from (DONE/RESULT acknowledgements and resends).
type link struct {
	ep     string
	id     string
	ctx    context.Context
	cancel context.CancelFunc
	onRecv func(frames [][]byte)
	onUp   func()
	onDown func()
	last   atomic.Int64 // unix nanoseconds of the last send

	mu      sync.Mutex
	sock    zmq4.Socket   // the connected socket, nil while (re)dialling
	up      chan struct{} // closed when sock is set; replaced when it drops
	sendMu  sync.Mutex
	redials atomic.Int64
}

// dialLink starts connecting to ep. If onRecv is set, every message
// received from the peer is passed to it; onUp and onDown (if set) are
// called when the connection comes up and when it drops. They all run on
// the link's goroutine. The goroutine is
// counted in wg and ends when the link or parent ctx is closed.
func dialLink(parent context.Context, wg *sync.WaitGroup, ep, id string, onRecv func(frames [][]byte), onUp, onDown func()) *link {
	ctx, cancel := context.WithCancel(parent)
	l := &link{ep: ep, id: id, ctx: ctx, cancel: cancel, onRecv: onRecv, onUp: onUp, onDown: onDown, up: make(chan struct{})}
	l.last.Store(time.Now().UnixNano())
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.run()
	}()
	return l
}

func (l *link) run() {
	for l.ctx.Err() == nil {
		sock := zmq4.NewDealer(l.ctx, zmq4.WithID(zmq4.SocketIdentity(l.id)),
			zmq4.WithDialerRetry(100*time.Millisecond), zmq4.WithDialerMaxRetries(-1))
		if err := sock.Dial(linkEndpoint(l.ep)); err != nil {
			sock.Close()
			return // only when ctx ends: retries are unlimited
		}
		l.mu.Lock()
		l.sock = sock
		close(l.up)
		l.mu.Unlock()
		if l.onUp != nil {
			l.onUp()
		}
		for {
			m, err := sock.Recv()
			if l.ctx.Err() != nil {
				sock.Close()
				return
			}
			if err != nil {
				break // the connection dropped
			}
			if l.onRecv != nil {
				l.onRecv(m.Frames)
			}
		}
		l.mu.Lock()
		l.sock = nil
		l.up = make(chan struct{})
		l.mu.Unlock()
		l.sendMu.Lock() // no send is using the old socket
		sock.Close()
		l.sendMu.Unlock()
		l.redials.Add(1)
		if l.onDown != nil {
			l.onDown()
		}
	}
}

// send sends one frame, waiting up to wait for a connection.
func (l *link) send(frame []byte, wait time.Duration) error {
	l.mu.Lock()
	sock, up := l.sock, l.up
	l.mu.Unlock()
	if sock == nil {
		if wait <= 0 {
			return fmt.Errorf("harmony: %s: not connected", l.ep)
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-up:
		case <-t.C:
			return fmt.Errorf("harmony: %s: not connected after %v", l.ep, wait)
		case <-l.ctx.Done():
			return ErrClosed
		}
		l.mu.Lock()
		sock = l.sock
		l.mu.Unlock()
		if sock == nil {
			return fmt.Errorf("harmony: %s: connection lost", l.ep)
		}
	}
	l.last.Store(time.Now().UnixNano())
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	return sock.Send(zmq4.NewMsg(frame))
}

// isReady reports whether the link is connected now.
func (l *link) isReady() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sock != nil
}

// close stops the link; its goroutine closes the socket.
func (l *link) close() {
	l.cancel()
}
