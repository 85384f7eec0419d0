package dashboard

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

// BenchmarkIngest compares, in the same run and into the same logpub hub,
// the HTTP bridge (POST /api/v1/logs, NDJSON bodies of 1000 zerolog lines)
// with the zerolog writer path (zerolog → logpub.Writer → hub over
// loopback TCP, until the hub has acknowledged every event). ns/op covers
// one event through each path; the metrics give both rates and their ratio.
func BenchmarkIngest(b *testing.B) {
	const batch = 1000
	hub := newTestHub(b, "node-a")
	s, err := New(Config{Addr: "127.0.0.1:0", Logs: hub})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()

	// A body of zerolog lines like the writer's, ~120 bytes each.
	var body bytes.Buffer
	enc := zerolog.New(&body).With().Timestamp().Logger()
	for i := 0; i < batch; i++ {
		enc.Info().Str("route", "/api/v1/items").Int("status", 200).Int("i", i).Msg("handled request")
	}
	payload := body.Bytes()
	url := "http://" + s.Addr() + "/api/v1/logs?service=bridge"
	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: hub.hub.WriterEndpoint(), Service: "app"})
	defer w.Close()
	log := zerolog.New(w).With().Timestamp().Logger()
	n := roundUp(b.N, batch)

	// The two paths alternate batch by batch, so a change of load on the
	// machine weighs on both alike and their ratio stays meaningful.
	var httpTime, writerTime time.Duration
	b.SetBytes(int64(len(payload) / batch))
	b.ResetTimer()
	for sent := 0; sent < n; sent += batch {
		t0 := time.Now()
		resp, err := c.Post(url, "application/x-ndjson", bytes.NewReader(payload))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("POST: %s", resp.Status)
		}
		t1 := time.Now()
		for i := 0; i < batch; i++ {
			log.Info().Str("route", "/api/v1/items").Int("status", 200).Int("i", i).Msg("handled request")
		}
		for w.Stats().Acked < uint64(sent+batch) { // the hub has them all
			if st := w.Stats(); st.Dropped > 0 {
				b.Fatalf("writer dropped events: %+v", st)
			}
			time.Sleep(20 * time.Microsecond) // poll interval
		}
		httpTime += t1.Sub(t0)
		writerTime += time.Since(t1)
	}
	b.StopTimer()
	httpRate := float64(n) / httpTime.Seconds()
	writerRate := float64(n) / writerTime.Seconds()

	if got, want := hub.Stats().Levels["info"].In, uint64(2*n); got != want {
		b.Fatalf("hub received %d events, want %d", got, want)
	}
	b.ReportMetric(httpRate, "http_events/s")
	b.ReportMetric(writerRate, "writer_events/s")
	b.ReportMetric(httpRate/writerRate, "http/writer")
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// BenchmarkStreamFanout measures delivery to stream clients: one event
// handed to a source with 10 SSE-ready clients queued (not written).
func BenchmarkStreamFanout(b *testing.B) {
	s := &Server{}
	clients := make([]*streamClient, 10)
	for i := range clients {
		clients[i] = &streamClient{ch: make(chan Event, 1024), s: s}
	}
	line := []byte(fmt.Sprintf(`{"level":"info","time":"2026-11-27T04:00:00Z","message":"%s"}`, bytes.Repeat([]byte("x"), 60)))
	e := &Event{Level: "info", Service: "api", Node: "a", Line: line}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range clients {
			c.deliver(e)
			if len(c.ch) == cap(c.ch) {
				for len(c.ch) > 0 {
					<-c.ch
				}
			}
		}
	}
}
