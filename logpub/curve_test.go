package logpub

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/zmtp"
	"github.com/rs/zerolog"
)

// curveKeys are a hub's and an admitted client's key pairs, and an
// intruder's pair that the hub does not admit.
type curveKeys struct {
	hub, client, intruder curve.KeyPair
}

func newCurveKeys(t testing.TB) curveKeys {
	t.Helper()
	var k curveKeys
	for _, p := range []*curve.KeyPair{&k.hub, &k.client, &k.intruder} {
		kp, err := curve.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		*p = kp
	}
	return k
}

func (k curveKeys) server() *CurveServer {
	return &CurveServer{Keys: k.hub, Authorize: curve.NewAllowList(k.hub.Public, k.client.Public).Authorize}
}

func (k curveKeys) admitted() *CurveClient { return &CurveClient{Keys: k.client, Server: k.hub.Public} }

// tap is a TCP relay between a client and a hub that keeps a copy of every
// byte going either way: what a sniffer on the wire would see.
type tap struct {
	l    net.Listener
	to   string
	mu   sync.Mutex
	seen bytes.Buffer
	wg   sync.WaitGroup
}

func newTap(t testing.TB, endpoint string) *tap {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{l: l, to: strings.TrimPrefix(endpoint, "tcp://")}
	tp.wg.Add(1)
	go tp.serve()
	t.Cleanup(func() { l.Close(); tp.wg.Wait() })
	return tp
}

func (tp *tap) endpoint() string { return "tcp://" + tp.l.Addr().String() }

func (tp *tap) serve() {
	defer tp.wg.Done()
	for {
		c, err := tp.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", tp.to)
		if err != nil {
			c.Close()
			continue
		}
		tp.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer tp.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					tp.mu.Lock()
					tp.seen.Write(buf[:n])
					tp.mu.Unlock()
					if _, werr := dst.Write(buf[:n]); werr != nil {
						err = werr
					}
				}
				if err != nil {
					dst.Close()
					src.Close()
					return
				}
			}
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

func (tp *tap) saw(s string) bool {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return bytes.Contains(tp.seen.Bytes(), []byte(s))
}

func (tp *tap) bytes() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.seen.Len()
}

func TestCurveSubscribeIsByteIdenticalAndSealed(t *testing.T) {
	keys := newCurveKeys(t)
	h := startHub(t, func(c *HubConfig) { c.Curve = keys.server() })
	if pk, ok := h.PublicKey(); !ok || pk != keys.hub.Public {
		t.Fatalf("hub public key %v %v", pk, ok)
	}
	tp := newTap(t, h.PubEndpoint())
	live, err := Subscribe(context.Background(), tp.endpoint(), SubscribeOptions{Follow: true, Curve: keys.admitted()})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	// The writer is local (loopback): plaintext, as designed.
	a := newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: "api"})
	const marker = "curve-marker-7f3a"
	pad := strings.Repeat("x", 400)
	for i := 0; i < 600; i++ { // > streamChunk per EVENTS frame: several ZMTP frames
		a.log.Info().Int("i", i).Str("pad", pad).Msg(marker)
	}
	a.waitAcked(t)
	want := a.lines()
	got := collect(t, live, len(want))
	for i, e := range got {
		if string(e.Line) != want[i] || e.StreamSeq != uint64(i+1) {
			t.Fatalf("live event %d: %q, want %q", i, e.Line, want[i])
		}
	}
	// A history query over CURVE replays the same bytes.
	q, err := Subscribe(context.Background(), tp.endpoint(), SubscribeOptions{Since: time.Now().Add(-time.Hour), Curve: keys.admitted()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var hist []string
	for {
		e, err := q.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hist = append(hist, string(e.Line))
	}
	if strings.Join(hist, "") != strings.Join(want, "") {
		t.Fatalf("history over CURVE: %d lines, want %d", len(hist), len(want))
	}
	if tp.bytes() < 600*len(pad) {
		t.Fatalf("the tap saw only %d bytes", tp.bytes())
	}
	if tp.saw(marker) || tp.saw(pad[:32]) || tp.saw(`"level"`) {
		t.Fatal("plaintext log content on the wire of a CURVE stream")
	}
	if s := h.CurveStats(); s.Handshakes != 2 || s.Refused != 0 {
		t.Fatalf("curve stats %+v, want 2 handshakes, no refusal", s)
	}

	// Control: the same tap does see a plaintext hub's stream.
	plain := startHub(t, nil)
	ptp := newTap(t, plain.PubEndpoint())
	ps, err := Subscribe(context.Background(), ptp.endpoint(), SubscribeOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	pa := newApp(t, WriterOptions{Endpoint: plain.WriterEndpoint(), Service: "api"})
	pa.log.Info().Msg(marker)
	collect(t, ps, 1)
	if !ptp.saw(marker) {
		t.Fatal("the tap does not see a plaintext stream: the sealed check above proves nothing")
	}
}

// TestCurveRefusals: every mismatch fails at once with a clear error on
// the client and is counted on the hub; nothing is streamed.
func TestCurveRefusals(t *testing.T) {
	keys := newCurveKeys(t)
	keyed := startHub(t, func(c *HubConfig) { c.Curve = keys.server() })
	plain := startHub(t, nil)
	a := newApp(t, WriterOptions{Endpoint: keyed.WriterEndpoint(), Service: "api"})
	a.log.Info().Msg("secret")
	a.waitAcked(t)

	for _, tc := range []struct {
		name     string
		hub      *Hub
		cc       *CurveClient
		want     error
		refused  uint64 // keyed hub's Refused after this case
		unauth   uint64
		onPlain  uint64 // plain hub's CurveOnPlain after this case
		wantText string
	}{
		{"plaintext client, keyed hub", keyed, nil, ErrCurveRequired, 1, 0, 0, "requires CURVE"},
		{"intruder key", keyed, &CurveClient{Keys: keys.intruder, Server: keys.hub.Public}, curve.ErrRefused, 2, 1, 0, "not authorized"},
		{"wrong server key", keyed, &CurveClient{Keys: keys.client, Server: keys.intruder.Public}, nil, 3, 1, 0, "CURVE handshake with"},
		{"keyed client, plaintext hub", plain, keys.admitted(), ErrNotCurve, 3, 1, 1, "does not speak CURVE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, opts := range []SubscribeOptions{
				{Follow: true, Curve: tc.cc},                      // live: fails in Subscribe
				{Since: time.Now().Add(-time.Hour), Curve: tc.cc}, // query: fails in Subscribe or at the first Next
			} {
				start := time.Now()
				st, err := Subscribe(context.Background(), tc.hub.PubEndpoint(), opts)
				if err == nil {
					var e Event
					e, err = st.Next()
					st.Close()
					if err == nil {
						t.Fatalf("received %q", e.Line)
					}
				}
				if (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.wantText) ||
					(tc.want == nil && (errors.Is(err, ErrNotCurve) || errors.Is(err, ErrCurveRequired))) {
					t.Fatalf("err %v, want %v (%q)", err, tc.want, tc.wantText)
				}
				// Well under the hub's 5 s handshake timeout: no hang.
				if d := time.Since(start); d > 3*time.Second {
					t.Fatalf("refusal took %v", d)
				}
			}
			want := tc.refused * 2
			waitFor(t, "refusal counted", func() bool {
				s := keyed.CurveStats()
				return s.Refused == want && plain.CurveStats().CurveOnPlain == tc.onPlain*2
			})
			if s := keyed.CurveStats(); s.Unauthorized != tc.unauth*2 || s.Handshakes != 0 {
				t.Fatalf("keyed hub stats %+v", s)
			}
		})
	}
	if d := keyed.Stats().Delivered; d != 0 {
		t.Fatalf("keyed hub delivered %d events to refused clients", d)
	}
	if s := keyed.Stats(); s.Subscribers != 0 || s.BadFrames != 0 {
		t.Fatalf("hub stats after refusals: %+v", s)
	}
}

// TestCurveRemoteWriter: a writer reaching the hub on a non-loopback
// address must speak CURVE; a local one need not.
func TestCurveRemoteWriter(t *testing.T) {
	ip := nonLoopbackIP(t)
	keys := newCurveKeys(t)
	h := startHub(t, func(c *HubConfig) {
		c.Curve = keys.server()
		c.WriterEndpoint = "tcp://0.0.0.0:0"
	})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(h.WriterEndpoint(), "tcp://"))
	remote := "tcp://" + net.JoinHostPort(ip, port)
	local := "tcp://127.0.0.1:" + port

	st, err := Subscribe(context.Background(), h.PubEndpoint(), SubscribeOptions{Follow: true, Curve: keys.admitted()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keyedApp := newApp(t, WriterOptions{Endpoint: remote, Service: "remote", Curve: keys.admitted()})
	localApp := newApp(t, WriterOptions{Endpoint: local, Service: "local"})
	keyedApp.log.Warn().Msg("from afar")
	localApp.log.Warn().Msg("from here")
	keyedApp.waitAcked(t)
	localApp.waitAcked(t)
	got := map[string]string{}
	for _, e := range collect(t, st, 2) {
		got[e.Service] = string(e.Line)
	}
	if got["remote"] != keyedApp.lines()[0] || got["local"] != localApp.lines()[0] {
		t.Fatalf("got %v", got)
	}

	// A plaintext writer from afar is refused: nothing it logs arrives.
	before := h.CurveStats().Refused
	rogue := NewWriter(WriterOptions{Endpoint: remote, Service: "rogue", CloseTimeout: 100 * time.Millisecond})
	rogue.Write([]byte(`{"level":"error","message":"injected"}` + "\n"))
	waitFor(t, "rogue writer refused", func() bool { return h.CurveStats().Refused > before })
	rogue.Close()
	if s := h.Stats(); s.Received != 2 {
		t.Fatalf("hub received %d events, want 2", s.Received)
	}
}

func nonLoopbackIP(t testing.TB) string {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			if l, err := net.Listen("tcp", net.JoinHostPort(ipn.IP.String(), "0")); err == nil {
				l.Close()
				return ipn.IP.String()
			}
		}
	}
	t.Skip("no non-loopback IPv4 address on this host")
	return ""
}

// TestCurveHubClose: Close during a stalled handshake returns at once and
// leaves no goroutine (goleak in TestMain).
func TestCurveHubClose(t *testing.T) {
	keys := newCurveKeys(t)
	h := startHub(t, func(c *HubConfig) { c.Curve = keys.server() })
	c, err := net.Dial("tcp", strings.TrimPrefix(h.PubEndpoint(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var g [64]byte
	if _, err := io.ReadFull(c, g[:]); err != nil || g[0] != 0xFF || !bytes.HasPrefix(g[12:], []byte("CURVE")) {
		t.Fatalf("hub greeting %x: %v", g, err)
	}
	start := time.Now()
	h.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v with a handshake pending", d)
	}
}

func TestCurveStreamFraming(t *testing.T) {
	// Frames written by a curveStream read back as the same byte stream,
	// whatever the read sizes.
	var wire bytes.Buffer
	w := &curveStream{Conn: pipeConn{&wire}}
	var want bytes.Buffer
	for _, n := range []int{1, 255, 256, streamChunk, streamChunk + 1, 3*streamChunk + 7} {
		p := bytes.Repeat([]byte{byte(n)}, n)
		want.Write(p)
		if k, err := w.Write(p); err != nil || k != n {
			t.Fatalf("write %d: %d %v", n, k, err)
		}
	}
	r := &curveStream{r: bufio.NewReader(&wire)}
	got, err := io.ReadAll(iotestHalf{r})
	if err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("read back %d bytes (%v), want %d", len(got), err, want.Len())
	}
	for name, in := range map[string][]byte{
		"more flag":    {zmtp.FlagMore, 1, 'x'},
		"command":      {zmtp.FlagCommand, 1, 'x'},
		"too large":    zmtp.AppendHeader(nil, 0, streamChunk+1),
		"cut body":     {0, 5, 'a', 'b'},
		"cut header":   {zmtp.FlagLong, 0, 0},
		"reserved bit": {0x80, 0},
	} {
		r := &curveStream{r: bufio.NewReader(bytes.NewReader(in))}
		_, err := io.ReadAll(r)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if strings.Contains(name, "cut") != errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// pipeConn is a net.Conn that only writes to a buffer, for framing tests.
type pipeConn struct{ w io.Writer }

func (p pipeConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (p pipeConn) Write(b []byte) (int, error)      { return p.w.Write(b) }
func (p pipeConn) Close() error                     { return nil }
func (p pipeConn) LocalAddr() net.Addr              { return nil }
func (p pipeConn) RemoteAddr() net.Addr             { return nil }
func (p pipeConn) SetDeadline(time.Time) error      { return nil }
func (p pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (p pipeConn) SetWriteDeadline(time.Time) error { return nil }

// iotestHalf reads with buffers of 7 bytes to cut across frames.
type iotestHalf struct{ r io.Reader }

func (h iotestHalf) Read(p []byte) (int, error) { return h.r.Read(p[:min(len(p), 7)]) }

func FuzzCurveStream(f *testing.F) {
	var ok []byte
	ok = append(zmtp.AppendHeader(ok, 0, 3), "abc"...)
	ok = append(zmtp.AppendHeader(ok, 0, 300), bytes.Repeat([]byte("y"), 300)...)
	f.Add(ok)
	f.Add([]byte{zmtp.FlagMore, 1, 'x'})
	f.Add([]byte{zmtp.FlagLong, 0xFF, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 9, 'a'})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &curveStream{r: bufio.NewReader(bytes.NewReader(in))}
		got, err := io.ReadAll(r)
		if len(got) > len(in) {
			t.Fatalf("read %d bytes out of %d", len(got), len(in))
		}
		if err == nil {
			// A clean read re-frames to the same content.
			var wire bytes.Buffer
			w := &curveStream{Conn: pipeConn{&wire}}
			w.Write(got)
			back, err := io.ReadAll(&curveStream{r: bufio.NewReader(&wire)})
			if err != nil || !bytes.Equal(back, got) {
				t.Fatalf("re-framed stream differs: %v", err)
			}
		}
	})
}

// BenchmarkCurveHandshake measures a keyed Subscribe (dial, CURVE
// handshake, SUBSCRIBE, END) against a plaintext one, in the same process.
func BenchmarkCurveHandshake(b *testing.B) {
	keys := newCurveKeys(b)
	// Every handshake comes from this one address, back to back: the
	// per-source limit (admission.go) would shed all but a burst of them.
	keyed := startHub(b, func(c *HubConfig) { c.Curve = keys.server(); c.WriterEndpoint = ""; c.HandshakesPerSource = 1e9 })
	plain := startHub(b, func(c *HubConfig) { c.WriterEndpoint = "" })
	run := func(ep string, cc *CurveClient, n int) time.Duration {
		start := time.Now()
		for i := 0; i < n; i++ {
			st, err := Subscribe(context.Background(), ep, SubscribeOptions{Follow: true, Curve: cc})
			if err != nil {
				b.Fatal(err)
			}
			st.Close()
		}
		return time.Since(start)
	}
	base := run(plain.PubEndpoint(), nil, max(b.N/4, 20))
	b.ResetTimer()
	d := run(keyed.PubEndpoint(), keys.admitted(), b.N)
	b.StopTimer()
	perPlain := float64(base.Microseconds()) / float64(max(b.N/4, 20))
	perKeyed := float64(d.Microseconds()) / float64(b.N)
	b.ReportMetric(perKeyed, "µs/keyed-subscribe")
	b.ReportMetric(perPlain, "µs/plain-subscribe")
	b.ReportMetric(perKeyed/perPlain, "keyed/plain")
}

// BenchmarkCurveStream measures live events through a keyed subscription
// against a plaintext one (200-byte events, one writer, in-process hub).
func BenchmarkCurveStream(b *testing.B) {
	keys := newCurveKeys(b)
	rate := func(cc *CurveServer, cl *CurveClient, n int) float64 {
		h := startHub(b, func(c *HubConfig) { c.Curve = cc })
		defer h.Close()
		st, err := Subscribe(context.Background(), h.PubEndpoint(), SubscribeOptions{Follow: true, Curve: cl})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		w := NewWriter(WriterOptions{Endpoint: h.WriterEndpoint(), Service: "bench"})
		defer w.Close()
		log := zerolog.New(w)
		pad := strings.Repeat("p", 150)
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			for i := 0; i < n; i++ {
				if _, err := st.Next(); err != nil {
					done <- fmt.Errorf("after %d: %w", i, err)
					return
				}
			}
			done <- nil
		}()
		for i := 0; i < n; i++ {
			log.Info().Str("p", pad).Msg("e")
			if i%4096 == 4095 { // stay under the writer's queue bound
				for w.Stats().Queued > 8192 {
					time.Sleep(100 * time.Microsecond)
				}
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		return float64(n) / time.Since(start).Seconds()
	}
	n := max(b.N, 20000)
	plain := rate(nil, nil, n)
	keyed := rate(keys.server(), keys.admitted(), n)
	b.ReportMetric(keyed, "keyed-events/s")
	b.ReportMetric(plain, "plain-events/s")
	b.ReportMetric(keyed/plain, "keyed/plain")
}
