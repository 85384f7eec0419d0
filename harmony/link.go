package harmony

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/zmtpguard"
)

// link is one DEALER connection to one endpoint, kept up by the link's own
// goroutine. It works around these zmq4 v0.17.0 limits:
//   - Dial blocks (retries × 250 ms, and a handshake without timeout that
//     the guarded transports of internal/zmtpguard cut when the link
//     closes), so it runs in the link's goroutine;
//   - a DEALER sends to every endpoint it is connected to, so a link has
//     exactly one;
//   - WithAutomaticReconnect redials from inside a failed write while the
//     socket's writer holds its lock, and the redial then waits for that
//     lock: a deadlock (zmq4 issue #132). So a link notices the lost
//     connection on its Recv and redials with a fresh socket itself;
//   - what is sent while disconnected is silently dropped, which the
//     protocol recovers from (DONE/RESULT acknowledgements and resends).
type link struct {
	ep     string // as given: "tcp://host:port", or with "|key"
	dialEP string // what the socket dials
	sec    *curve.Security
	noKey  error // CURVE links only: ep has no usable key, so no dial
	lsec   linkSecurity
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
func dialLink(parent context.Context, wg *sync.WaitGroup, ep, id string, ls linkSecurity, onRecv func(frames [][]byte), onUp, onDown func()) *link {
	ctx, cancel := context.WithCancel(parent)
	l := &link{ep: ep, id: id, lsec: ls, ctx: ctx, cancel: cancel, onRecv: onRecv, onUp: onUp, onDown: onDown, up: make(chan struct{})}
	addr, key, keyed, err := SplitEndpoint(ep)
	switch {
	case err != nil:
		l.noKey = err
	case ls.keys != nil && !keyed:
		l.noKey = fmt.Errorf("harmony: %s: no CURVE key for this endpoint, and this side has keys (no downgrade)", ep)
	case ls.keys != nil:
		// zmq4's handshake has no timeout and ignores the context: the
		// guarded transports bound it (CURVE) and close the connection
		// when the socket's context ends first (both), so Close never
		// waits on a peer that accepted TCP and went silent.
		l.sec = curve.NewClient(*ls.keys, key, curve.WithLogger(ls.log))
		l.dialEP = zmtpguard.CurveEndpoint(addr)
	default:
		l.dialEP = zmtpguard.Endpoint(addr)
	}
	l.last.Store(time.Now().UnixNano())
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.run()
	}()
	return l
}

// refuse counts and logs a connection refused for its security.
func (l *link) refuse(err error) {
	if l.lsec.refused != nil {
		l.lsec.refused.Add(1)
	}
	l.lsec.log.Warn().Err(err).Str("endpoint", l.ep).Msg("harmony: connection refused")
}

func (l *link) run() {
	if l.noKey != nil {
		l.refuse(l.noKey)
		return // never connects: sends fail, the ventilator or collector recovers
	}
	backoff := 200 * time.Millisecond
	for l.ctx.Err() == nil {
		// One context per socket: cancelling it closes a connection whose
		// handshake failed, which zmq4 leaves open.
		sctx, scancel := context.WithCancel(l.ctx)
		opts := []zmq4.Option{zmq4.WithID(zmq4.SocketIdentity(l.id)),
			zmq4.WithDialerRetry(100 * time.Millisecond), zmq4.WithDialerMaxRetries(-1)}
		if l.sec != nil {
			opts = append(opts, zmq4.WithSecurity(l.sec))
		}
		sock := zmq4.NewDealer(sctx, opts...)
		if err := sock.Dial(l.dialEP); err != nil {
			sock.Close()
			scancel()
			if l.ctx.Err() != nil {
				return
			}
			// Retries are unlimited, so only the ZMTP greeting or the
			// security handshake fails: try again later, the server may
			// get our key.
			if zmtpguard.Refusal(err) {
				l.refuse(err)
			} else {
				l.lsec.log.Debug().Err(err).Str("endpoint", l.ep).Msg("harmony: handshake failed; retrying")
			}
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
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
				scancel()
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
		scancel()
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
