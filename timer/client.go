package timer

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/zmtpguard"
)

// ClientConfig holds the knobs of a Client.
type ClientConfig struct {
	// Endpoint is the service's address, e.g. the local logd's X-TIMER header.
	Endpoint string
	// Heartbeat is how often the client re-announces its subscriptions, so
	// that it survives a restart of the service. Default 1 s.
	Heartbeat time.Duration
	// Retry is how long a request waits for its reply before it is sent
	// again (zmq4 drops what is sent while disconnected). Default 1 s.
	Retry time.Duration
	// Keys, when set, makes the client speak CURVE with this key pair to a
	// service whose public key is ServerKey (its Snapshot.PublicKey, or on
	// a mesh the node's X-PUBLICKEY header). A NULL service, or one that
	// does not hold ServerKey's secret, is refused: the client stops and
	// Err says why. Nil: a NULL client.
	Keys *curve.KeyPair
	// ServerKey is the service's public key. Required with Keys.
	ServerKey curve.PublicKey
	// Logger receives the client's diagnostics. Default zerolog.Nop().
	Logger zerolog.Logger
}

// ErrRefused is wrapped by Client.Err when the connection to the service
// failed its security handshake: keys or mechanisms that do not match.
var ErrRefused = errors.New("timer: connection refused by its security handshake")

// Client talks to a timer Service: it receives ticks and fires, and adds,
// removes and lists schedules. It reconnects by itself.
type Client struct {
	cfg    ClientConfig
	id     []byte
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}
	sendMu sync.Mutex
	sock   zmq4.Socket // under sendMu; replaced when the connection drops or goes silent

	// lastRecv is when the service was last heard (Unix ns); upAt when the
	// current socket's Dial returned (0 while dialling). The heartbeat
	// loop replaces a socket that has heard nothing for liveness.
	lastRecv   atomic.Int64
	upAt       atomic.Int64
	reconnects atomic.Uint64
	// pongs: the service has answered a heartbeat. A logd from before
	// PONG answers none, and an idle client of it would otherwise take a
	// new socket every liveness period; without it the check is off.
	pongs atomic.Bool

	mu       sync.Mutex
	nextReq  uint32
	pending  map[uint32]chan message
	ticks    map[time.Duration][]*tickSub
	watches  map[string][]*fireSub
	lastSeq  uint64
	received uint64
	dropped  uint64
	err      error // why the client stopped by itself

	sec   *curve.Security // nil: a NULL client
	guard zmtpguard.Counters
}

type tickSub struct {
	ch   chan Tick
	last int64 // number of the last tick delivered; 0 none yet
}

type fireSub struct {
	ch chan Fire
}

// ackEvery is how many messages the client receives between two acks; it
// is well below the service's default window.
const ackEvery = 32

// NewClient starts a client of the service at cfg.Endpoint. It connects in
// the background: it does not fail if the service is not up yet.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("timer: client: no endpoint")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	var sec *curve.Security
	if cfg.Keys != nil {
		if cfg.ServerKey == (curve.PublicKey{}) {
			return nil, errors.New("timer: client: Keys without ServerKey")
		}
		sec = curve.NewClient(*cfg.Keys, cfg.ServerKey, curve.WithLogger(cfg.Logger))
	}
	id := make([]byte, 16)
	rand.Read(id)
	c := &Client{
		id:      id,
		sec:     sec,
		cfg:     cfg,
		kick:    make(chan struct{}, 1),
		pending: make(map[uint32]chan message),
		ticks:   make(map[time.Duration][]*tickSub),
		watches: make(map[string][]*fireSub),
	}
	c.ctx, c.cancel = context.WithCancel(zmtpguard.WithCounters(cfg.Logger.WithContext(context.Background()), &c.guard))
	c.sock = c.newSocket()
	c.wg.Add(2)
	go c.run()
	go c.heartbeat()
	return c, nil
}

// newSocket makes the client's DEALER, always with the same identity so
// the service keeps our subscriptions across a new socket.
func (c *Client) newSocket() zmq4.Socket {
	// zmq4's automatic reconnect is not used: it redials from inside a
	// failed write, holding the writer's lock the redial then waits for
	// (zmq4 issue #132), and it stops for good after a failed handshake.
	// run redials with a new socket instead. Retries are unlimited, so
	// Dial waits for a service that is not up yet; WithTimeout bounds a
	// Send made while disconnected (it is then dropped, hence heartbeats
	// and request retries).
	opts := []zmq4.Option{zmq4.WithID(zmq4.SocketIdentity(c.id)),
		zmq4.WithDialerMaxRetries(-1), zmq4.WithTimeout(c.cfg.Retry / 2)}
	if c.sec != nil {
		opts = append(opts, zmq4.WithSecurity(c.sec))
	}
	return zmq4.NewDealer(c.ctx, opts...)
}

// liveness is how long the link may stay silent before the client drops
// its socket for a new one: the service answers every heartbeat.
func (c *Client) liveness() time.Duration { return 4*c.cfg.Heartbeat + c.cfg.Retry }

// Reconnects counts the new sockets the client took after its connection
// dropped or the service stopped answering its heartbeats.
func (c *Client) Reconnects() uint64 { return c.reconnects.Load() }

// Err returns why the client stopped by itself (wrapping ErrRefused), or
// nil while it runs or after Close.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Refused counts connections to the service refused for their security:
// a failed CURVE handshake, or a service greeting with another mechanism.
func (c *Client) Refused() uint64 {
	n := c.guard.Mechanism()
	if c.sec != nil {
		n += c.sec.Stats().Failures
	}
	return n
}

// stopped is the error of a call on a stopped client: why it stopped by
// itself, or ErrClosed.
func (c *Client) stopped() error {
	if err := c.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// Close stops the client; every channel it returned is closed.
func (c *Client) Close() error {
	c.cancel()
	c.sendMu.Lock()
	err := c.sock.Close()
	c.sendMu.Unlock()
	c.wg.Wait()
	return err
}

// run dials the service and receives from it until Close or a refusal. A
// lost connection, a dial cut short (the service closing while we
// connect) and a socket the heartbeat loop dropped as silent are all
// replaced by a new socket.
func (c *Client) run() {
	defer c.wg.Done()
	// Dialling through the guarded transports refuses and counts a service
	// that answers with another mechanism (no downgrade either way).
	ep := zmtpguard.Endpoint(c.cfg.Endpoint)
	if c.sec != nil {
		ep = zmtpguard.CurveEndpoint(c.cfg.Endpoint)
	}
	cut := 0 // handshakes cut short in a row
	for first := true; ; first = false {
		c.sendMu.Lock()
		if !first {
			c.sock = c.newSocket()
		}
		sock := c.sock
		c.sendMu.Unlock()
		// zmq4: Dial blocks until the service is reachable (retries
		// forever); it fails only when the greeting or handshake does.
		err := sock.Dial(ep)
		if c.ctx.Err() != nil {
			// zmq4: a Dial that completes while Close runs adds a
			// connection Close did not see; close the socket again so
			// it does not leak.
			sock.Close()
			return
		}
		if err != nil {
			refused := zmtpguard.Refusal(err)
			cut++
			if !refused && cut >= maxCutHandshakes {
				// A CURVE service that cannot open our HELLO (we hold
				// the wrong server key) hangs up without a word: that
				// looks like a service closing, but it does not pass.
				refused = true
				err = fmt.Errorf("handshake cut short %d times in a row (a service without ServerKey's secret hangs up so): %w", cut, err)
			}
			if refused {
				c.cfg.Logger.Error().Err(err).Str("endpoint", c.cfg.Endpoint).Msg("timer: dial refused; the client stops")
				c.mu.Lock()
				c.err = fmt.Errorf("%w: %s: %w", ErrRefused, c.cfg.Endpoint, err)
				c.mu.Unlock()
				c.cancel() // every channel closes; Err says why
				return
			}
			c.cfg.Logger.Debug().Err(err).Str("endpoint", c.cfg.Endpoint).Msg("timer: dial failed; retrying")
			sock.Close()
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(c.cfg.Retry):
			}
			continue
		}
		cut = 0
		c.upAt.Store(time.Now().UnixNano())
		c.poke()
		c.recvLoop(sock)
		c.sendMu.Lock() // no send is using the old socket
		c.upAt.Store(0)
		sock.Close()
		c.sendMu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		c.reconnects.Add(1)
	}
}

// maxCutHandshakes is how many handshakes in a row may break off (the
// service restarting as we connect) before the client takes it as a
// refusal; they are Retry apart.
const maxCutHandshakes = 4

func (c *Client) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// heartbeat re-sends the subscriptions (and the ack) every Heartbeat, and at
// once when they change.
func (c *Client) heartbeat() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
		c.mu.Lock()
		msgs := []message{{Type: msgHeartbeat}}
		for p := range c.ticks {
			msgs = append(msgs, message{Type: msgSub, Period: int64(p)})
		}
		for n := range c.watches {
			msgs = append(msgs, message{Type: msgWatch, Name: n})
		}
		c.mu.Unlock()
		for i := range msgs {
			c.send(&msgs[i])
		}
		c.checkLiveness()
	}
}

// checkLiveness closes the socket when the service has not answered for
// liveness: a connection that stays open while nothing passes (a hung
// service, a link that drops packets) never ends Recv, so the client would
// wait forever. run then starts over with a new socket.
func (c *Client) checkLiveness() {
	up := c.upAt.Load()
	if up == 0 {
		return // still dialling: Dial retries by itself
	}
	if !c.pongs.Load() {
		return // a service that does not answer heartbeats: silence says nothing
	}
	heard := max(up, c.lastRecv.Load())
	if time.Since(time.Unix(0, heard)) < c.liveness() {
		return
	}
	// Under sendMu, so that the socket closed is the one run receives on.
	c.sendMu.Lock()
	if !c.upAt.CompareAndSwap(up, 0) {
		c.sendMu.Unlock()
		return
	}
	sock := c.sock
	c.sendMu.Unlock()
	c.cfg.Logger.Warn().Str("endpoint", c.cfg.Endpoint).Dur("silent", time.Since(time.Unix(0, heard))).Msg("timer: service silent; reconnecting")
	sock.Close()
}

func (c *Client) send(m *message) error {
	c.mu.Lock()
	m.Seq = c.lastSeq
	c.mu.Unlock()
	b, err := m.encode()
	if err != nil {
		return err
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.sock.Send(zmq4.NewMsg(b))
}

// recvLoop receives on sock until its connection drops or it is closed.
func (c *Client) recvLoop(sock zmq4.Socket) {
	for {
		msg, err := sock.Recv()
		if err != nil {
			if c.ctx.Err() == nil && c.upAt.Load() != 0 {
				c.cfg.Logger.Info().Err(err).Str("endpoint", c.cfg.Endpoint).Msg("timer: connection lost; redialling")
			}
			return
		}
		c.lastRecv.Store(time.Now().UnixNano())
		if len(msg.Frames) != 1 {
			continue
		}
		m, err := decodeMessage(msg.Frames[0])
		if err != nil {
			c.cfg.Logger.Debug().Err(err).Msg("timer: bad message from service")
			continue
		}
		if m.Type == msgPong {
			c.pongs.Store(true)
		}
		c.dispatch(m)
	}
}

func (c *Client) dispatch(m message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastSeq = m.Seq
	c.received++
	if c.received%ackEvery == 0 {
		c.poke()
	}
	switch m.Type {
	case msgTick:
		t := Tick{Period: time.Duration(m.Period), N: m.N, At: time.Unix(0, m.At)}
		for _, s := range c.ticks[t.Period] {
			if s.last != 0 && t.N <= s.last {
				continue
			}
			t.Missed = 0
			if s.last != 0 {
				t.Missed = t.N - s.last - 1
			}
			select {
			case s.ch <- t:
				s.last = t.N
			default: // the receiver is behind: it will see Missed
			}
		}
	case msgFire:
		var f Fire
		if err := json.Unmarshal(m.Data, &f); err != nil || f.Name != m.Name {
			return
		}
		for _, key := range []string{f.Name, "*"} {
			for _, s := range c.watches[key] {
				select {
				case s.ch <- f:
				default:
					c.dropped++
				}
			}
		}
	case msgReply, msgError:
		if ch := c.pending[m.Req]; ch != nil {
			delete(c.pending, m.Req)
			ch <- m
		}
	}
}

// Ticks returns a channel of the ticks of period (one of Periods) until ctx
// is done or the client closes. A receiver that falls behind loses ticks
// and sees their count in Tick.Missed; ticks never queue up.
func (c *Client) Ticks(ctx context.Context, period time.Duration) (<-chan Tick, error) {
	if periodIndex(period) < 0 {
		return nil, fmt.Errorf("%w: %v (want one of %v)", ErrBadPeriod, period, Periods)
	}
	if c.ctx.Err() != nil {
		return nil, c.stopped()
	}
	s := &tickSub{ch: make(chan Tick, 1)}
	c.mu.Lock()
	c.ticks[period] = append(c.ticks[period], s)
	c.mu.Unlock()
	c.poke()
	c.dropWhenDone(ctx, func() bool {
		last := removeSub(c.ticks, period, s)
		close(s.ch)
		return last
	}, &message{Type: msgUnsub, Period: int64(period)})
	return s.ch, nil
}

// Watch returns a channel of the fires of schedule name ("*": every
// schedule) on the service's node, until ctx is done or the client closes.
func (c *Client) Watch(ctx context.Context, name string) (<-chan Fire, error) {
	if name != "*" {
		if err := validName(name); err != nil {
			return nil, err
		}
	}
	if c.ctx.Err() != nil {
		return nil, c.stopped()
	}
	s := &fireSub{ch: make(chan Fire, 64)}
	c.mu.Lock()
	c.watches[name] = append(c.watches[name], s)
	c.mu.Unlock()
	c.poke()
	c.dropWhenDone(ctx, func() bool {
		last := removeSub(c.watches, name, s)
		close(s.ch)
		return last
	}, &message{Type: msgUnwatch, Name: name})
	return s.ch, nil
}

// dropWhenDone waits until ctx or the client ends, then removes a
// subscription with remove (under c.mu); when it was the last of its kind,
// it tells the service with msg.
func (c *Client) dropWhenDone(ctx context.Context, remove func() (last bool), msg *message) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-ctx.Done():
		case <-c.ctx.Done():
		}
		c.mu.Lock()
		last := remove()
		c.mu.Unlock()
		if last && c.ctx.Err() == nil {
			c.send(msg)
		}
	}()
}

// removeSub removes s from m[key] and reports whether it was the last one.
func removeSub[K comparable, S comparable](m map[K][]S, key K, s S) (last bool) {
	subs := slices.DeleteFunc(m[key], func(x S) bool { return x == s })
	if len(subs) == 0 {
		delete(m, key)
		return true
	}
	m[key] = subs
	return false
}

// Schedule adds or replaces a schedule on the service (and, through it, on
// every timer node of the mesh).
func (c *Client) Schedule(ctx context.Context, sp Spec) error {
	if err := sp.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(sp)
	if err != nil {
		return fmt.Errorf("timer: schedule %q: %w", sp.Name, err)
	}
	_, err = c.request(ctx, message{Type: msgSchedule, Data: b})
	return err
}

// Cancel removes schedule name; the error wraps ErrUnknownName if there is none.
func (c *Client) Cancel(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	_, err := c.request(ctx, message{Type: msgCancel, Name: name})
	return err
}

// List returns the service's schedules.
func (c *Client) List(ctx context.Context) ([]ScheduleInfo, error) {
	data, err := c.request(ctx, message{Type: msgList})
	if err != nil {
		return nil, err
	}
	var out []ScheduleInfo
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("timer: list: %w", err)
	}
	return out, nil
}

// request sends m until its reply comes (zmq4 drops what is sent while the
// connection is down), or ctx is done.
func (c *Client) request(ctx context.Context, m message) ([]byte, error) {
	ch := make(chan message, 1)
	c.mu.Lock()
	c.nextReq++
	m.Req = c.nextReq
	c.pending[m.Req] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, m.Req)
		c.mu.Unlock()
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("timer: %s: %w", m.Type, ctx.Err())
		case <-c.ctx.Done():
			return nil, c.stopped()
		case r := <-ch:
			if r.Type == msgError {
				return nil, replyError(r)
			}
			return r.Data, nil
		case <-t.C:
			if err := c.send(&m); err != nil {
				return nil, err
			}
			t.Reset(c.cfg.Retry)
		}
	}
}
