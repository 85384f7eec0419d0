package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestGraphRates(t *testing.T) {
	g := newGraph(3, 4, time.Second)
	t0 := time.Unix(1000, 0)
	g.sample(t0, LogStats{Levels: map[string]LevelStats{"info": {In: 10}}, Nodes: map[string]uint64{"a": 10}})
	_, sub, _ := g.subscribe()
	g.sample(t0.Add(500*time.Millisecond), LogStats{Levels: map[string]LevelStats{"info": {In: 60}, "warn": {In: 5}}, Nodes: map[string]uint64{"a": 60, "b": 5}})
	// A counter that went back (source restarted) is no negative rate.
	g.sample(t0.Add(time.Second), LogStats{Levels: map[string]LevelStats{"info": {In: 2}}, Nodes: map[string]uint64{"a": 2}})
	hist, _, _ := g.subscribe()
	if len(hist) != 2 {
		t.Fatalf("history has %d samples, want 2 (the first call is the baseline)", len(hist))
	}
	s := hist[0]
	if s.Levels[2] != 100 || s.Levels[3] != 10 || s.Nodes["a"] != 100 || s.Nodes["b"] != 10 || s.T != 1000.5 {
		t.Fatalf("sample = %+v, want info 100/s, warn 10/s", s)
	}
	if hist[1].Levels[2] != 0 || hist[1].Nodes["a"] != 0 {
		t.Fatalf("rate after a counter reset = %+v, want 0", hist[1])
	}
	if len(sub.ch) != 2 {
		t.Fatalf("subscriber got %d samples, want 2", len(sub.ch))
	}
	// The ring keeps the last points only.
	for i := 2; i < 10; i++ {
		g.sample(t0.Add(time.Duration(i)*time.Second), LogStats{})
	}
	hist, _, _ = g.subscribe()
	if len(hist) != 3 || hist[2].T != 1009 || hist[0].T != 1007 {
		t.Fatalf("ring history = %+v", hist)
	}
	if sub.dropped.Load() != 6 { // 10 samples offered to a queue of 4, none read
		t.Fatalf("dropped = %d, want 6", sub.dropped.Load())
	}
}

func TestGraphStreamFollowsTheLog(t *testing.T) {
	s, hub := startServer(t, Config{GraphPeriod: 20 * time.Millisecond})
	c := testClient(t)
	r := openStream(t, c, "http://"+s.Addr()+"/api/v1/graph")
	ev := readSSE(t, r)
	var h graphHistory
	if err := json.Unmarshal([]byte(ev.data), &h); ev.name != "history" || err != nil {
		t.Fatalf("first event %q: %v", ev.name, err)
	}
	if len(h.Levels) != 7 || h.PeriodMS != 20 {
		t.Fatalf("history = %+v", h)
	}
	testApp(t, hub, "api", 2*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev := readSSE(t, r)
		var sm sample
		if err := json.Unmarshal([]byte(ev.data), &sm); ev.name != "sample" || err != nil {
			t.Fatalf("event %q: %v", ev.name, err)
		}
		if sm.Levels[2] > 0 && sm.Nodes["node-a"] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no sample with an info rate while the app logs")
		}
	}
}

func TestWallTickerAligned(t *testing.T) {
	const period = 10 * time.Millisecond
	ticks := make(chan Tick, 100)
	cancel := WallTicker{}.SubscribeTicks(period, func(tk Tick) {
		select {
		case ticks <- tk:
		default:
		}
	})
	var prev Tick
	for i := 0; i < 5; i++ {
		select {
		case tk := <-ticks:
			if tk.At.UnixNano()%int64(period) != 0 || tk.At.UnixNano() != int64(tk.N)*int64(period) {
				t.Fatalf("tick %+v is not wall-aligned", tk)
			}
			if i > 0 && tk.N != prev.N+1+tk.Missed {
				t.Fatalf("tick %d after %d with %d missed", tk.N, prev.N, tk.Missed)
			}
			if time.Now().Before(tk.At) {
				t.Fatalf("tick %d delivered before its time", tk.N)
			}
			prev = tk
		case <-time.After(5 * time.Second):
			t.Fatal("no tick")
		}
	}
	cancel()
	cancel() // idempotent
}

func TestMetrics(t *testing.T) {
	s, hub := startServer(t, Config{Peers: meshPeers(t), Timers: fixedTimers{}, Shipping: fixedShipping{}, Batches: fixedBatches{}})
	c := testClient(t)
	base := "http://" + s.Addr()
	post(t, c, base+"/api/v1/logs", "{\"level\":\"info\"}\n{\"level\":\"info\"}\n{\"level\":\"error\"}\nbad\n")
	hub.Ingest("api", []byte("{not json")) // refused by the source itself
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`logmesh_events_in_total{level="info"} 2`,
		`logmesh_events_in_total{level="error"} 1`,
		`logmesh_events_out_total{level="info"} 0`,
		`logmesh_events_dropped_total{level="warn"} 0`,
		`logmesh_node_events_total{node="node-a"} 3`,
		`logmesh_inputs_rejected_total{path="http"} 1`,
		`logmesh_inputs_rejected_total{path="source"} 1`,
		`logmesh_http_lines_accepted_total 3`,
		`logmesh_peers 2`,
		`logmesh_ticks_missed_total 3`,
		`logmesh_bytes_shipped_total 5.24288e+06`,
		`logmesh_batch_tasks{state="done"} 25`,
		`logmesh_batch_tasks{state="pending"} 15`,
		`# TYPE logmesh_dashboard_clients gauge`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
}

// Close ends open streams and leaves no goroutine behind.
func TestCloseEndsStreamsNoLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	// No capture: lumberjack leaves its mill goroutine running after Close.
	hub := newTestHubCapture(t, "node-a", "")
	defer hub.close() // before the leak check
	s, err := New(Config{Addr: "127.0.0.1:0", Logs: hub, GraphPeriod: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	var bodies []io.ReadCloser
	for _, path := range []string{"/api/v1/stream", "/api/v1/stream?format=sse", "/api/v1/graph", "/api/v1/status"} {
		resp, err := c.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, resp.Body)
	}
	waitFor(t, 5*time.Second, "4 stream clients", func() bool { return s.clients.Load() == 4 })
	hub.Ingest("api", []byte(`{"level":"info"}`))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, b := range bodies { // every stream ended: reads reach EOF
		io.Copy(io.Discard, b)
		b.Close()
	}
	if s.clients.Load() != 0 {
		t.Fatalf("%d clients after Close", s.clients.Load())
	}
	if err := s.Start(context.Background()); err != ErrClosed {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNewNeedsLogSource(t *testing.T) {
	if _, err := New(Config{}); err != ErrNoLogSource {
		t.Fatalf("New without Logs: %v", err)
	}
	if _, err := New(Config{Logs: newTestHub(t, "x"), Addr: "nonsense"}); err == nil {
		t.Fatal("New with a bad address: no error")
	}
}

func TestStartAddressInUse(t *testing.T) {
	s, _ := startServer(t, Config{})
	s2, err := New(Config{Logs: newTestHub(t, "x"), Addr: s.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), s.Addr()) {
		t.Fatalf("Start on a used port: %v", err)
	}
}

// Rates slide over the window: a burst shows as a plateau, not a spike.
func TestGraphWindowSmoothsBursts(t *testing.T) {
	g := newGraph(100, 4, time.Second)
	t0 := time.Unix(2000, 0)
	var n uint64
	for i := 0; i <= 30; i++ { // 100 ms ticks; 10 events arrive every 3rd tick
		if i%3 == 0 {
			n += 10
		}
		g.sample(t0.Add(time.Duration(i)*100*time.Millisecond), LogStats{Levels: map[string]LevelStats{"info": {In: n}}})
	}
	hist, _, _ := g.subscribe()
	for _, s := range hist[10:] { // once a full window has passed
		if s.Levels[2] < 30 || s.Levels[2] > 40 {
			t.Fatalf("rate %.1f/s at %.1f, want about 33/s all along", s.Levels[2], s.T)
		}
	}
}

// With the default configuration the graphs get a sample every 100 ms,
// on wall-aligned ticks.
func TestGraphSamplesEvery100ms(t *testing.T) {
	s, _ := startServer(t, Config{})
	c := testClient(t)
	r := openStream(t, c, "http://"+s.Addr()+"/api/v1/graph")
	if ev := readSSE(t, r); ev.name != "history" {
		t.Fatalf("first event %q", ev.name)
	}
	var prev float64
	steps := 0
	for i := 0; i < 8; i++ {
		ev := readSSE(t, r)
		var sm sample
		if err := json.Unmarshal([]byte(ev.data), &sm); err != nil {
			t.Fatal(err)
		}
		ms := int64(sm.T*1000 + 0.5)
		if ms%100 != 0 {
			t.Fatalf("sample at %.3f is not on a 100 ms tick", sm.T)
		}
		if prev != 0 && sm.T-prev < 0.15 {
			steps++
		}
		prev = sm.T
	}
	if steps < 4 { // most steps are one tick; a loaded machine may skip some
		t.Fatalf("only %d of 7 steps were 100 ms", steps)
	}
}

// An idle stream gets SSE comment heartbeats, so proxies keep it open.
func TestSSEHeartbeat(t *testing.T) {
	s, _ := startServer(t, Config{Heartbeat: 30 * time.Millisecond})
	c := testClient(t)
	r := openStream(t, c, "http://"+s.Addr()+"/api/v1/stream?format=sse")
	for n := 0; ; n++ {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == ": hb\n" {
			return
		}
		if n > 10 {
			t.Fatalf("no heartbeat in the first lines; got %q", line)
		}
	}
}
