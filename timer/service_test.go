package timer

import (
	"context"
	"errors"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func startService(t *testing.T, cfg Config) *Service {
	t.Helper()
	s, err := NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newClient(t *testing.T, ep string) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{Endpoint: ep, Heartbeat: 200 * time.Millisecond, Retry: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func recvTick(t *testing.T, ch <-chan Tick, d time.Duration) Tick {
	t.Helper()
	select {
	case tk, ok := <-ch:
		if !ok {
			t.Fatal("tick channel closed")
		}
		return tk
	case <-time.After(d):
		t.Fatalf("no tick within %v", d)
	}
	return Tick{}
}

// recvTickAfter waits for a tick scheduled after t (those already on their
// way are skipped), each within d.
func recvTickAfter(tb *testing.T, ch <-chan Tick, after time.Time, d time.Duration) Tick {
	tb.Helper()
	for {
		if tk := recvTick(tb, ch, d); tk.At.After(after) {
			return tk
		}
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return s[int(float64(len(s)-1)*p)]
}

// TestTicksAlignedNoDrift runs 100 ms and 10 ms ticks over the socket for
// 20 s and checks, from tick numbers and wall time, that every tick is
// aligned to the epoch grid, none is lost without being counted in Missed,
// and the numbering has not drifted from the wall clock at the end.
func TestTicksAlignedNoDrift(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s run")
	}
	t.Parallel()
	s := startService(t, DefaultConfig())
	c := newClient(t, s.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, p := range []time.Duration{100 * time.Millisecond, 10 * time.Millisecond} {
		ch, err := c.Ticks(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first, last Tick
			var got, missed int64
			var lates []time.Duration
			for tk := range ch {
				now := time.Now()
				if tk.Period != p || !tk.At.Equal(TickTime(tk.N, p)) {
					t.Errorf("%v: tick %d at %v, want period %v at %v", p, tk.N, tk.At, p, TickTime(tk.N, p))
				}
				if got > 0 && tk.N != last.N+1+tk.Missed {
					t.Errorf("%v: tick %d after %d, Missed %d", p, tk.N, last.N, tk.Missed)
				}
				if got == 0 {
					first = tk
				} else {
					missed += tk.Missed
				}
				lates = append(lates, now.Sub(tk.At))
				last = tk
				got++
			}
			end := time.Now()
			if got == 0 {
				t.Errorf("%v: no ticks", p)
				return
			}
			if got+missed != last.N-first.N+1 {
				t.Errorf("%v: %d received + %d missed != %d ticks from %d to %d", p, got, missed, last.N-first.N+1, first.N, last.N)
			}
			// No drift: ticks at the end of the run are no later after their
			// scheduled time than those at the start (a drifting grid would
			// lag more and more), and the stream ran to the end.
			q := len(lates) / 4
			early, late := percentile(lates[:q], .5), percentile(lates[len(lates)-q:], .5)
			if late-early > 20*time.Millisecond {
				t.Errorf("%v: median delay %v in the first quarter, %v in the last: drift", p, early, late)
			}
			if lag := TickNumber(end, p) - last.N; lag < 0 || time.Duration(lag)*p > 3*time.Second {
				t.Errorf("%v: last tick %d, wall clock at tick %d", p, last.N, TickNumber(end, p))
			}
			want := int64(18 * time.Second / p)
			if got < want/2 { // a loaded CI host loses some; they are counted above
				t.Errorf("%v: only %d ticks received in 20 s (%d missed)", p, got, missed)
			}
			p50, p99 := percentile(lates, .5), percentile(lates, .99)
			t.Logf("%v: %d ticks, %d missed, delay after scheduled time p50 %v p99 %v, last tick %d behind the wall clock at the end",
				p, got, missed, p50, p99, TickNumber(end, p)-last.N)
			if lates[0] < 0 || percentile(lates, 0) < 0 {
				t.Errorf("%v: a tick arrived before its scheduled time", p)
			}
			if p50 > 50*time.Millisecond {
				t.Errorf("%v: median delay %v", p, p50)
			}
		}()
	}
}

// TestSlowReceiverSeesMissed stops reading 10 ms ticks for a while: the
// channel holds at most one stale tick, and the next shows the gap in Missed.
func TestSlowReceiverSeesMissed(t *testing.T) {
	t.Parallel()
	s := startService(t, DefaultConfig())
	c := newClient(t, s.Endpoint())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.Ticks(ctx, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	first := recvTick(t, ch, 5*time.Second)
	pause := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(pause) { // a busy receiver: does not read
		time.Sleep(10 * time.Millisecond)
	}
	stale := recvTick(t, ch, time.Second)
	fresh := recvTick(t, ch, time.Second)
	if fresh.N != stale.N+1+fresh.Missed {
		t.Fatalf("tick %d after %d with Missed %d", fresh.N, stale.N, fresh.Missed)
	}
	if fresh.Missed < 15 {
		t.Fatalf("Missed = %d after a 300 ms pause at 10 ms ticks (first %d, stale %d, fresh %d)", fresh.Missed, first.N, stale.N, fresh.N)
	}
	// Not bunched: the tick after the stale one is from after the pause,
	// not one that queued up during it.
	if fresh.At.Before(pause.Add(-20 * time.Millisecond)) {
		t.Fatalf("after the pause ending %v came tick %v: ticks were queued", pause, fresh.At)
	}
}

// TestStuckClientDoesNotStallOthers subscribes a raw DEALER that never
// reads: the service stops sending to it at the window and another client
// keeps getting every tick.
func TestStuckClientDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Window = 16
	s := startService(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stuck := zmq4.NewDealer(ctx)
	defer stuck.Close()
	if err := stuck.Dial(s.Endpoint()); err != nil {
		t.Fatal(err)
	}
	sub, _ := (&message{Type: msgSub, Period: int64(10 * time.Millisecond)}).encode()
	if err := stuck.Send(zmq4.NewMsg(sub)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "ticks dropped for the stuck client", func() bool {
		return s.Snapshot().Ticks[2].Dropped > 0
	})
	c := newClient(t, s.Endpoint())
	ch, err := c.Ticks(ctx, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	prev := recvTick(t, ch, 5*time.Second)
	for i := 0; i < 50; i++ {
		tk := recvTick(t, ch, time.Second)
		if tk.N <= prev.N {
			t.Fatalf("tick %d after %d", tk.N, prev.N)
		}
		prev = tk
	}
	// The stuck client was sent exactly one window of ticks. Read them:
	// zmq4's reader goroutine blocks for good on a full queue otherwise,
	// even after Close.
	for i := 0; i < cfg.Window; i++ {
		m, err := stuck.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if tk, err := decodeMessage(m.Frames[0]); err != nil || tk.Type != msgTick || tk.Seq != uint64(i+1) {
			t.Fatalf("message %d to the stuck client: %+v, %v", i, tk, err)
		}
	}
}

// TestBadFramesKeepServing sends malformed and unexpected frames; each is
// counted and the service still answers a well-formed client.
func TestBadFramesKeepServing(t *testing.T) {
	t.Parallel()
	s := startService(t, DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	raw := zmq4.NewDealer(ctx)
	defer raw.Close()
	if err := raw.Dial(s.Endpoint()); err != nil {
		t.Fatal(err)
	}
	tick, _ := (&message{Type: msgTick, N: 5}).encode()
	badVersion := validFrame(t)
	badVersion[0] = 7
	frames := []zmq4.Msg{
		zmq4.NewMsg(nil),
		zmq4.NewMsg([]byte("hello")),
		zmq4.NewMsg(badVersion),
		zmq4.NewMsg(tick), // a service message sent by a client
		zmq4.NewMsgFrom([]byte("a"), []byte("b")),
		zmq4.NewMsg(append(validFrame(t), 0)),
	}
	for _, m := range frames {
		if err := raw.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "6 bad messages counted", func() bool { return s.Snapshot().BadMessages >= 6 })
	c := newClient(t, s.Endpoint())
	if _, err := c.Ticks(ctx, 7*time.Millisecond); !errors.Is(err, ErrBadPeriod) {
		t.Errorf("Ticks(7ms) = %v, want ErrBadPeriod", err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	if _, err := c.List(rctx); err != nil {
		t.Fatalf("List after bad frames: %v", err)
	}
	// A period the client library refuses, sent raw: an ERROR comes back.
	sub, _ := (&message{Type: msgSub, Period: 3, Req: 9}).encode()
	if err := raw.Send(zmq4.NewMsg(sub)); err != nil {
		t.Fatal(err)
	}
	for {
		reply, err := raw.Recv()
		if err != nil {
			t.Fatal(err)
		}
		m, err := decodeMessage(reply.Frames[0])
		if err != nil || m.Type != msgError {
			t.Fatalf("reply to a bad frame: %+v, %v", m, err)
		}
		if m.Req != 9 {
			continue // the ERROR for the TICK sent above
		}
		if !errors.Is(replyError(m), ErrBadPeriod) {
			t.Fatalf("reply to SUB 3ns: %q, not ErrBadPeriod", m.Data)
		}
		break
	}
}

// TestClientSurvivesServiceRestart restarts the service on the same
// endpoint; the client's ticks resume without any action from its user.
func TestClientSurvivesServiceRestart(t *testing.T) {
	t.Parallel()
	s1, err := NewService(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ep := s1.Endpoint()
	c := newClient(t, ep)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.Ticks(ctx, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	recvTick(t, ch, 5*time.Second)
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Endpoint = ep
	s2 := startService(t, cfg)
	recvTickAfter(t, ch, time.Now(), 10*time.Second)
	eventually(t, 5*time.Second, "the client known to the new service", func() bool { return s2.Snapshot().Clients == 1 })
}

// TestEndpointKeptAcrossRestart: a service on an ephemeral port binds the
// same port after a restart on the same data dir, so clients that know the
// old endpoint (from X-TIMER) reconnect by themselves.
func TestEndpointKeptAcrossRestart(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	s1, err := NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ep := s1.Endpoint()
	c := newClient(t, ep)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.Ticks(ctx, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	recvTick(t, ch, 5*time.Second)
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := startService(t, cfg)
	if s2.Endpoint() != ep {
		t.Fatalf("endpoint after restart %s, want %s", s2.Endpoint(), ep)
	}
	recvTickAfter(t, ch, time.Now(), 10*time.Second)
}

func TestStartBadEndpoint(t *testing.T) {
	for _, ep := range []string{"tcp://127.0.0.1:notaport", "bogus://x", "tcp://203.0.113.1:0"} {
		cfg := DefaultConfig()
		cfg.Endpoint = ep
		s, err := NewService(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(context.Background()); err == nil {
			t.Errorf("Start on %s succeeded", ep)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close after a failed Start: %v", err)
		}
	}
}

// TestSubscribersCounted: the service counts subscribers per period (its
// idle tick loops sleep) and forgets them on UNSUB.
func TestSubscribersCounted(t *testing.T) {
	t.Parallel()
	s := startService(t, DefaultConfig())
	c := newClient(t, s.Endpoint())
	subs := func() []int {
		var out []int
		for _, ts := range s.Snapshot().Ticks {
			out = append(out, ts.Subscribers)
		}
		return out
	}
	if got := subs(); got[0]+got[1]+got[2] != 0 {
		t.Fatalf("subscribers before any client: %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.Ticks(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ch2, err := c.Ticks(ctx, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	recvTick(t, ch2, 5*time.Second)
	if tk := recvTick(t, ch, 5*time.Second); tk.Period != time.Second {
		t.Fatalf("tick %+v", tk)
	}
	if got := subs(); got[0] != 1 || got[1] != 0 || got[2] != 1 {
		t.Fatalf("subscribers %v, want [1 0 1]", got)
	}
	cancel()
	eventually(t, 5*time.Second, "unsubscribed", func() bool {
		got := subs()
		return got[0] == 0 && got[2] == 0
	})
}

// stallProxy forwards TCP connections to a service; stall freezes the
// connections open at that moment (they stay open, nothing passes either
// way, as with a peer that hangs or a link that blackholes), while new
// connections pass.
type stallProxy struct {
	l     net.Listener
	to    string
	mu    sync.Mutex
	conns []*stallPipe
}

type stallPipe struct {
	stalled atomic.Bool
	a, b    net.Conn
}

func newStallProxy(t *testing.T, to string) *stallProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{l: l, to: strings.TrimPrefix(to, "tcp://")}
	t.Cleanup(p.close)
	go p.serve()
	return p
}

func (p *stallProxy) endpoint() string { return "tcp://" + p.l.Addr().String() }

func (p *stallProxy) serve() {
	for {
		a, err := p.l.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.to)
		if err != nil {
			a.Close()
			continue
		}
		pp := &stallPipe{a: a, b: b}
		p.mu.Lock()
		p.conns = append(p.conns, pp)
		p.mu.Unlock()
		go pp.copy(a, b)
		go pp.copy(b, a)
	}
}

// copy moves bytes from src to dst; while stalled it holds them.
func (pp *stallPipe) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for pp.stalled.Load() {
			time.Sleep(10 * time.Millisecond)
			if n == 0 && err != nil {
				break
			}
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *stallProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pp := range p.conns {
		pp.stalled.Store(true)
	}
}

func (p *stallProxy) close() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pp := range p.conns {
		pp.stalled.Store(false)
		pp.a.Close()
		pp.b.Close()
	}
}

// TestClientStaysWithServiceWithoutPong: a logd from before PONG answers
// no heartbeat, and an idle client hears nothing from it. The client must
// not take that silence for a stalled connection: it keeps its socket and
// goes on sending heartbeats.
func TestClientStaysWithServiceWithoutPong(t *testing.T) {
	t.Parallel()
	old := zmq4.NewRouter(context.Background())
	defer old.Close()
	if err := old.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	var heartbeats atomic.Int64
	go func() {
		for {
			msg, err := old.Recv()
			if err != nil {
				return
			}
			if m, err := decodeMessage(msg.Frames[len(msg.Frames)-1]); err == nil && m.Type == msgHeartbeat {
				heartbeats.Add(1)
			}
		}
	}()
	c := newClient(t, "tcp://"+old.Addr().String())
	time.Sleep(3 * c.liveness())
	if n := c.Reconnects(); n != 0 {
		t.Fatalf("client took %d new sockets from a silent service in %v (liveness %v)", n, 3*c.liveness(), c.liveness())
	}
	// One heartbeat per 200 ms over 3.3 s: at least half of them must have
	// arrived on the one socket.
	if n := heartbeats.Load(); n < 8 {
		t.Fatalf("service got %d heartbeats in %v, want ≥ 8", n, 3*c.liveness())
	}
}

// TestClientLeavesStalledConnection: the connection to the service stays
// open but nothing comes through it any more. The client notices that its
// heartbeats go unanswered, drops the socket for a new one, and its ticks
// resume, within the liveness bound.
func TestClientLeavesStalledConnection(t *testing.T) {
	t.Parallel()
	s := startService(t, DefaultConfig())
	p := newStallProxy(t, s.Endpoint())
	c := newClient(t, p.endpoint())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.Ticks(ctx, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	recvTick(t, ch, 5*time.Second)
	eventually(t, 5*time.Second, "an answered heartbeat", c.pongs.Load)
	p.stall()
	stalled := time.Now()
	recvTickAfter(t, ch, stalled.Add(200*time.Millisecond), c.liveness()+10*time.Second)
	took := time.Since(stalled)
	if c.Reconnects() == 0 {
		t.Fatalf("ticks resumed without a new socket")
	}
	t.Logf("ticks resumed %v after the stall (liveness %v), %d new sockets", took.Round(time.Millisecond), c.liveness(), c.Reconnects())
}
