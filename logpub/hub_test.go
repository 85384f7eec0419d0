package logpub

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/natefinch/lumberjack.v2"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startHub(t testing.TB, mod func(*HubConfig)) *Hub {
	t.Helper()
	cfg := DefaultHubConfig()
	cfg.WriterEndpoint = "tcp://127.0.0.1:0"
	cfg.PubEndpoint = "tcp://127.0.0.1:0"
	if mod != nil {
		mod(&cfg)
	}
	h, err := NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// app is a zerolog logger writing through a Writer, with a copy of
// zerolog's exact output kept for comparison.
type app struct {
	w    *Writer
	log  zerolog.Logger
	mu   sync.Mutex
	want bytes.Buffer
}

func (a *app) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.want.Write(p)
}

func newApp(t testing.TB, opts WriterOptions) *app {
	t.Helper()
	a := &app{w: NewWriter(opts)}
	a.log = zerolog.New(zerolog.MultiLevelWriter(a.w, a)).With().Timestamp().Logger()
	t.Cleanup(func() { a.w.Close() })
	return a
}

func (a *app) lines() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.SplitAfter(strings.TrimSuffix(a.want.String(), "\n")+"\n", "\n")[:strings.Count(a.want.String(), "\n")]
}

func (a *app) waitAcked(t testing.TB) {
	t.Helper()
	waitFor(t, "writer acks", func() bool { s := a.w.Stats(); return s.Queued == 0 && s.Acked+s.Dropped == s.Accepted })
}

func collect(t testing.TB, s *Stream, n int) []Event {
	t.Helper()
	var out []Event
	for len(out) < n {
		e, err := s.Next()
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(out), n, err)
		}
		out = append(out, e)
	}
	return out
}

func TestWriterHubStreamFiltersAtSource(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, func(c *HubConfig) { c.Capture.Dir = dir; c.NodeName = "n1" })
	st, err := Subscribe(context.Background(), h.PubEndpoint(), SubscribeOptions{Follow: true, Filter: Filter{MinLevel: zerolog.WarnLevel, Services: []string{"api"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitFor(t, "subscriber", func() bool { return h.Stats().Subscribers == 1 })

	api := newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: "api"})
	db := newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: "db"})
	for i := 0; i < 200; i++ {
		if i%2 == 0 {
			api.log.Warn().Int("i", i).Str("k", "v").Msg("w")
		} else {
			api.log.Info().Int("i", i).Msg("i")
		}
		db.log.Error().Int("i", i).Msg("db")
	}
	var want []string
	for _, l := range api.lines() {
		if strings.Contains(l, `"level":"warn"`) {
			want = append(want, l)
		}
	}
	got := collect(t, st, len(want))
	for i, e := range got {
		if string(e.Line) != want[i] || e.Service != "api" || e.Level != zerolog.WarnLevel || e.StreamSeq != uint64(i+1) || e.Node != h.cfg.Node {
			t.Fatalf("event %d: %+v (line %q), want %q", i, e, e.Line, want[i])
		}
		if i > 0 && e.Seq <= got[i-1].Seq {
			t.Fatalf("event %d: seq %d after %d", i, e.Seq, got[i-1].Seq)
		}
	}
	api.waitAcked(t)
	db.waitAcked(t)
	// Nothing else was sent to this subscriber: the hub counts what it
	// handed over.
	waitFor(t, "delivery count", func() bool { return h.Stats().Delivered >= uint64(len(want)) })
	if d := h.Stats().Delivered; d != uint64(len(want)) {
		t.Fatalf("hub delivered %d events to the subscriber, want exactly %d", d, len(want))
	}
	// The capture files are zerolog's output, byte for byte.
	for name, a := range map[string]*app{"api": api, "db": db} {
		b, err := os.ReadFile(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != a.want.String() {
			t.Fatalf("capture %s differs from zerolog output (%d vs %d bytes)", name, len(b), a.want.Len())
		}
	}
	s := h.Stats()
	if s.Received != 400 || s.Captured != 400 || s.ByLevel["warn"] != 100 || s.ByLevel["error"] != 200 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestSlowSubscriberDoesNotStallOthers(t *testing.T) {
	h := startHub(t, func(c *HubConfig) { c.SubQueueEvents = 4000 })
	// A subscriber that never reads.
	stuck, err := net.Dial("tcp", strings.TrimPrefix(h.PubEndpoint(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	stuck.Write(appendSubscribe(nil, subscribeReq{Follow: true}))
	fast, err := Subscribe(context.Background(), h.PubEndpoint(), SubscribeOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	waitFor(t, "subscribers", func() bool { return h.Stats().Subscribers == 2 })

	a := newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: "api"})
	pad := strings.Repeat("x", 450)
	var gaps GapDetector
	total := 0
	for chunk := 0; chunk < 20; chunk++ {
		for i := 0; i < 2000; i++ {
			a.log.Info().Int("n", total).Str("pad", pad).Msg("m")
			total++
		}
		for _, e := range collect(t, fast, 2000) {
			if g := gaps.Check(&e); g != 0 {
				t.Fatalf("fast subscriber missed %d events", g)
			}
		}
	}
	a.waitAcked(t)
	if s := a.w.Stats(); s.Dropped != 0 {
		t.Fatalf("writer dropped %d events", s.Dropped)
	}
	if s := h.Stats(); s.SubscriberDrops == 0 {
		t.Fatalf("the stuck subscriber lost nothing after %d events of 500 bytes: %+v", total, s)
	}
}

func TestWriterBeforeHubAndAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ep := "ipc://" + filepath.Join(dir, "w.sock")
	a := newApp(t, WriterOptions{Endpoint: ep, Service: "api"})
	for i := 0; i < 10; i++ {
		a.log.Info().Int("i", i).Msg("before")
	}
	mk := func() *Hub {
		h, err := NewHub(HubConfig{WriterEndpoint: ep, RingEvents: 100, RingBytes: 1 << 20, Capture: CaptureConfig{Dir: filepath.Join(dir, "cap")}})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return h
	}
	h := mk()
	a.waitAcked(t)
	h.Close()
	for i := 0; i < 10; i++ {
		a.log.Info().Int("i", i).Msg("while down")
	}
	h = mk()
	defer h.Close()
	a.waitAcked(t)
	for i := 0; i < 10; i++ {
		a.log.Info().Int("i", i).Msg("after")
	}
	a.waitAcked(t)
	b, _ := os.ReadFile(filepath.Join(dir, "cap", "api.log"))
	if string(b) != a.want.String() {
		t.Fatalf("capture:\n%s\nwant:\n%s", b, a.want.String())
	}
	if s := a.w.Stats(); s.Reconnects == 0 || s.Dropped != 0 {
		t.Fatalf("writer stats %+v", s)
	}
}

func TestWriterDropsAndReports(t *testing.T) {
	dir := t.TempDir()
	ep := "ipc://" + filepath.Join(dir, "w.sock")
	w := NewWriter(WriterOptions{Endpoint: ep, Service: "api", MaxEvents: 10})
	defer w.Close()
	log := zerolog.New(w)
	for i := 0; i < 25; i++ {
		log.Info().Int("i", i).Msg("x")
	}
	if s := w.Stats(); s.Dropped != 15 || s.Queued != 10 {
		t.Fatalf("stats %+v", s)
	}
	h, err := NewHub(HubConfig{WriterEndpoint: ep, RingEvents: 100, RingBytes: 1 << 20, Capture: CaptureConfig{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	waitFor(t, "report", func() bool { return w.Stats().Acked == 11 })
	b, _ := os.ReadFile(filepath.Join(dir, "api.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 11 || !strings.Contains(lines[10], `"dropped":15`) || !strings.Contains(lines[10], `"level":"warn"`) {
		t.Fatalf("capture:\n%s", b)
	}
}

func TestWriterCloseDeadlineAndFallback(t *testing.T) {
	dir := t.TempDir()
	ep := "ipc://" + filepath.Join(dir, "none.sock")
	w := NewWriter(WriterOptions{Endpoint: ep, Service: "api", CloseTimeout: 100 * time.Millisecond})
	lost := zerolog.New(w)
	lost.Info().Msg("lost")
	if err := w.Close(); err == nil {
		t.Fatal("Close without logd: want a deadline error")
	}
	if s := w.Stats(); s.Dropped != 1 || s.Accepted != 1 {
		t.Fatalf("stats %+v", s)
	}
	if _, err := w.Write([]byte(`{"a":1}` + "\n")); err != ErrClosed {
		t.Fatalf("write after close: %v", err)
	}

	fb := &lumberjack.Logger{Filename: filepath.Join(dir, "fallback.log")}
	w = NewWriter(WriterOptions{Endpoint: ep, Service: "api", Fallback: fb, FallbackAfter: 50 * time.Millisecond, CloseTimeout: 5 * time.Second})
	log := zerolog.New(w)
	for i := 0; i < 5; i++ {
		log.Info().Int("i", i).Msg("to fallback")
	}
	waitFor(t, "fallback", func() bool { return w.Stats().Fallback == 5 })
	w.Close()
	fb.Close()
	b, _ := os.ReadFile(fb.Filename)
	if strings.Count(string(b), "to fallback") != 5 {
		t.Fatalf("fallback file:\n%s", b)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBadInputIsCountedAndServiceContinues(t *testing.T) {
	var logbuf syncBuffer
	dir := t.TempDir()
	h := startHub(t, func(c *HubConfig) { c.Capture.Dir = dir; c.Log = zerolog.New(&logbuf) })
	addr := strings.TrimPrefix(h.WriterEndpoint(), "tcp://")
	raw := func(frames ...[]byte) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			c.Write(f)
		}
		return c
	}
	good := `{"level":"info","message":"ok"}` + "\n"
	var bad []string
	for i := 0; i < 50; i++ {
		bad = append(bad, "not json\n", "{\"a\":\"\xff\xfe\"}\n", `{"a":1`+"\n", "{\"a\":1}\n{\"b\":2}\n")
	}
	c := raw(appendHello(nil, hello{Source: 7, Service: "api"}), encodeBatch(1, append(append([]string{good}, bad...), good)...))
	typ, body, _, err := readFrame(c, nil)
	if err != nil || typ != frameAck {
		t.Fatalf("no ack after a batch with bad events: %v", err)
	}
	if seq, _ := decodeAck(body); seq != uint64(len(bad)+2) {
		t.Fatalf("ack %d, want %d", seq, len(bad)+2)
	}
	c.Close()
	if s := h.Stats(); s.Rejected != uint64(len(bad)) || s.Received != 2 {
		t.Fatalf("stats %+v", s)
	}
	if n := strings.Count(logbuf.String(), "rejected malformed event"); n == 0 || n > 10 {
		t.Fatalf("%d log lines for %d rejected events: want rate-limited", n, len(bad))
	}

	// Broken frames: each closes its connection and is counted.
	huge := []byte{0x7f, 0xff, 0xff, 0xff, frameBatch}
	badHello := appendHello(nil, hello{Source: 1, Service: "api"})
	badHello[5] = 'X'
	hugeLine := appendU32(appendU64(nil, 1), 1)
	hugeLine = appendU32(append(hugeLine, 1), MaxLine+1)
	hugeLine = append(hugeLine, make([]byte, 10)...)
	hb, st := beginFrame(nil, frameBatch)
	hb = finishFrame(append(hb, hugeLine...), st)
	for i, frames := range [][][]byte{
		{huge},
		{badHello},
		{appendAck(nil, 1)},
		{appendHello(nil, hello{Source: 2, Service: "api"}), hb},
		{appendHello(nil, hello{Source: 3, Service: "api"}), appendAck(nil, 3)},
	} {
		before := h.Stats().BadFrames
		c := raw(frames...)
		io.ReadAll(c) // until the hub closes it (EOF or reset)
		c.Close()
		waitFor(t, fmt.Sprintf("bad frame %d counted", i), func() bool { return h.Stats().BadFrames == before+1 })
	}
	sc, _ := net.Dial("tcp", strings.TrimPrefix(h.PubEndpoint(), "tcp://"))
	sc.Write([]byte{0, 0, 0, 3, frameSubscribe, 'L', 'O'})
	io.ReadAll(sc)
	sc.Close()

	// Still serving, nothing accepted was lost.
	a := newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: "api"})
	a.log.Warn().Msg("still alive")
	a.waitAcked(t)
	b, _ := os.ReadFile(filepath.Join(dir, "api.log"))
	if string(b) != good+good+a.want.String() {
		t.Fatalf("capture:\n%s", b)
	}
}

// readArchives returns the concatenated content of the rotated files of
// key, oldest first, then the current file.
func readCaptures(t testing.TB, dir, key string) (string, int) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var gz []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".tmp") {
			t.Fatalf("temporary file left: %s", n)
		}
		if strings.HasPrefix(n, key+"-") {
			if !strings.HasSuffix(n, ".log.gz") {
				t.Fatalf("rotated file not compressed: %s", n)
			}
			gz = append(gz, n)
		}
	}
	sort.Strings(gz)
	var all bytes.Buffer
	for _, n := range gz {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if _, err := io.Copy(&all, zr); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		f.Close()
	}
	cur, _ := os.ReadFile(filepath.Join(dir, key+".log"))
	all.Write(cur)
	return all.String(), len(gz)
}

func TestRotationBySizeCompressesAndAnnounces(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var announced []string
	h := startHub(t, func(c *HubConfig) {
		c.Capture = CaptureConfig{Dir: dir, MaxSize: 4096, OnArchive: func(p, svc string) {
			mu.Lock()
			defer mu.Unlock()
			if svc != "api" {
				t.Errorf("archive %s announced for service %q", p, svc)
			}
			announced = append(announced, p)
		}}
	})
	a := newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: "api"})
	for i := 0; i < 400; i++ {
		a.log.Info().Int("i", i).Str("pad", strings.Repeat("p", 60)).Msg("size")
		if i%40 == 0 {
			a.waitAcked(t) // several batches, so that rotations happen between them
		}
	}
	a.waitAcked(t)
	a.w.Close()
	h.Close()
	got, n := readCaptures(t, dir, "api")
	if got != a.want.String() {
		t.Fatalf("archives + current file (%d bytes) differ from the stream (%d bytes)", len(got), a.want.Len())
	}
	mu.Lock()
	defer mu.Unlock()
	if n < 3 || len(announced) != n || h.Stats().Archives != uint64(n) {
		t.Fatalf("%d archives, %d announced, stats %d", n, len(announced), h.Stats().Archives)
	}
}

func TestRotationByTime(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, func(c *HubConfig) { c.Capture = CaptureConfig{Dir: dir, RotateEvery: 200 * time.Millisecond} })
	a := newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: "api"})
	for round := 0; round < 3; round++ {
		before := h.Stats().Archives
		for i := 0; i < 5; i++ {
			a.log.Info().Int("round", round).Int("i", i).Msg("time")
		}
		a.waitAcked(t)
		waitFor(t, "time rotation", func() bool { return h.Stats().Archives > before })
	}
	a.w.Close()
	h.Close()
	got, n := readCaptures(t, dir, "api")
	if got != a.want.String() || n < 3 {
		t.Fatalf("%d archives; content equal: %v", n, got == a.want.String())
	}
}

func TestSinceFromRingAndFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *HubConfig) {
		c.RingEvents = 50
		c.Capture = CaptureConfig{Dir: dir, MaxSize: 2048}
	}
	h := startHub(t, cfg)
	a := newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: "api"})
	for i := 0; i < 300; i++ {
		if i%3 == 0 {
			a.log.Warn().Int("i", i).Msg("since")
		} else {
			a.log.Info().Int("i", i).Msg("since")
		}
		if i%25 == 0 {
			a.waitAcked(t)
		}
	}
	a.waitAcked(t)
	all := a.lines()
	query := func(h *Hub, f Filter) []string {
		st, err := Subscribe(context.Background(), h.PubEndpoint(), SubscribeOptions{Since: time.Now().Add(-time.Hour), Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var out []string
		for {
			e, err := st.Next()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			if !e.History {
				t.Fatalf("live event in a history query")
			}
			out = append(out, string(e.Line))
		}
	}
	check := func(what string, got, want []string) {
		t.Helper()
		if strings.Join(got, "") != strings.Join(want, "") {
			t.Fatalf("%s: got %d lines, want %d", what, len(got), len(want))
		}
	}
	check("all", query(h, Filter{}), all)
	var warns []string
	for _, l := range all {
		if strings.Contains(l, `"warn"`) {
			warns = append(warns, l)
		}
	}
	check("warn", query(h, Filter{MinLevel: zerolog.WarnLevel}), warns)
	check("other service", query(h, Filter{Services: []string{"db"}}), nil)

	// A new hub on the same capture directory answers from the files.
	a.w.Close()
	h.Close()
	h2 := startHub(t, cfg)
	check("after restart", query(h2, Filter{MinLevel: zerolog.WarnLevel}), warns)
	// A time in the future selects nothing.
	st, _ := Subscribe(context.Background(), h2.PubEndpoint(), SubscribeOptions{Since: time.Now().Add(time.Hour)})
	if _, err := st.Next(); err != io.EOF {
		t.Fatalf("future since: %v", err)
	}
	st.Close()
}

func TestInProcessSubscribeAndIngest(t *testing.T) {
	h := startHub(t, nil)
	sub, err := h.Subscribe(Filter{Services: []string{"web"}}, time.Time{}, 16)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Ingest("web", []byte(`{"level":"error","message":"boom"}`)); err != nil {
		t.Fatal(err)
	}
	h.Ingest("other", []byte(`{"level":"error","message":"not for web"}`))
	if err := h.Ingest("web", []byte(`not json`)); err == nil {
		t.Fatal("ingest of a non-JSON line: want an error")
	}
	e := <-sub.Events()
	if string(e.Line) != `{"level":"error","message":"boom"}`+"\n" || e.Seq != 1 || e.StreamSeq != 1 || e.Level != zerolog.ErrorLevel {
		t.Fatalf("event %+v", e)
	}
	sub.Close()
	if _, ok := <-sub.Events(); ok {
		t.Fatal("channel not closed after Close")
	}
	sub2, _ := h.Subscribe(Filter{}, time.Time{}, 1)
	h.Close()
	for range sub2.Events() {
	}
}
