package harmony

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
)

// link is one DEALER connected to one endpoint. zmq4 quirks it absorbs:
// Dial blocks (retries × 250 ms), so it runs in the link's own goroutine;
// a DEALER sends to every endpoint it is connected to, so a link has exactly
// one; it reconnects only with automatic reconnect and unlimited retries;
// and what is sent while disconnected is silently dropped, which the
// protocol recovers from (DONE/RESULT acknowledgements and resends).
type link struct {
	ep     string
	sock   zmq4.Socket
	ctx    context.Context
	cancel context.CancelFunc
	ready  chan struct{} // closed when the first Dial returned
	err    error         // the first Dial's error, read after ready
	sendMu sync.Mutex
	last   atomic.Int64 // unix nanoseconds of the last send
}

// dialLink starts connecting to ep. If onRecv is set, every frame received
// from the peer is passed to it (from the link's goroutine). The goroutine
// is counted in wg and ends when the link or parent ctx is closed.
func dialLink(parent context.Context, wg *sync.WaitGroup, ep string, id string, onRecv func(frames [][]byte)) *link {
	ctx, cancel := context.WithCancel(parent)
	l := &link{ep: ep, ctx: ctx, cancel: cancel, ready: make(chan struct{})}
	l.sock = zmq4.NewDealer(ctx, zmq4.WithID(zmq4.SocketIdentity(id)),
		zmq4.WithAutomaticReconnect(true), zmq4.WithDialerMaxRetries(-1))
	l.last.Store(time.Now().UnixNano())
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.err = l.sock.Dial(ep)
		if l.err != nil {
			l.err = fmt.Errorf("harmony: dial %s: %w", ep, l.err)
		}
		close(l.ready)
		if l.err != nil || onRecv == nil {
			return
		}
		for {
			m, err := l.sock.Recv()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				continue // the connection dropped; zmq4 redials by itself
			}
			onRecv(m.Frames)
		}
	}()
	return l
}

// send sends one frame, waiting up to wait for the first connection.
func (l *link) send(frame []byte, wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-l.ready:
	case <-t.C:
		return fmt.Errorf("harmony: %s: not connected after %v", l.ep, wait)
	case <-l.ctx.Done():
		return ErrClosed
	}
	if l.err != nil {
		return l.err
	}
	l.last.Store(time.Now().UnixNano())
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	return l.sock.Send(zmq4.NewMsg(frame))
}

// isReady reports whether the first Dial succeeded.
func (l *link) isReady() bool {
	select {
	case <-l.ready:
		return l.err == nil
	default:
		return false
	}
}

func (l *link) close() {
	l.cancel()
	l.sock.Close()
}
