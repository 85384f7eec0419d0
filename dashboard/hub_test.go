package dashboard

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

// testHub is a real logpub.Hub (writers and subscribers on loopback
// ports, capture in a temp dir) read through hubSource, the same mapping
// logd's wiring uses.
type testHub struct {
	hubSource
	hub *logpub.Hub
}

func newTestHub(t testing.TB, node string) *testHub {
	t.Helper()
	return newTestHubCapture(t, node, t.TempDir())
}

// newTestHubCapture is newTestHub with capture in dir ("" disables it).
func newTestHubCapture(t testing.TB, node, dir string) *testHub {
	t.Helper()
	cfg := logpub.DefaultHubConfig()
	cfg.NodeName = node
	cfg.WriterEndpoint = "tcp://127.0.0.1:0"
	cfg.PubEndpoint = "tcp://127.0.0.1:0"
	cfg.Capture.Dir = dir
	h, err := logpub.NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &testHub{hubSource: hubSource{hub: h, node: node}, hub: h}
}

func (h *testHub) close() { h.hub.Close() }

// logger returns a zerolog logger writing through a logpub.Writer to the
// hub, like an application; the writer is closed when the test ends.
func (h *testHub) logger(t testing.TB, service string) zerolog.Logger {
	t.Helper()
	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: h.hub.WriterEndpoint(), Service: service})
	t.Cleanup(func() { w.Close() })
	return zerolog.New(w).With().Timestamp().Logger()
}

// hubSource adapts a logpub.Hub to LogSource, as cmd/logd does.
type hubSource struct {
	hub  *logpub.Hub
	node string
}

func (s hubSource) Subscribe(f Filter, deliver func(*Event)) (cancel func()) {
	var lf logpub.Filter
	if lvl, err := zerolog.ParseLevel(f.Level); err == nil && f.Level != "" {
		lf.MinLevel = lvl
	}
	if f.Service != "" {
		lf.Services = []string{f.Service}
	}
	if f.Node != "" {
		lf.Nodes = []string{f.Node}
	}
	sub, err := s.hub.Subscribe(lf, time.Time{}, 1024)
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range sub.Events() {
			e := Event{Time: ev.Received, Node: s.node, Service: ev.Service, Level: ev.Level.String(),
				Seq: ev.Seq, Line: bytes.TrimSuffix(ev.Line, []byte{'\n'})}
			deliver(&e)
		}
	}()
	return func() { sub.Close(); <-done }
}

func (s hubSource) Ingest(service string, line []byte) error { return s.hub.Ingest(service, line) }

func (s hubSource) Stats() LogStats {
	hs := s.hub.Stats()
	st := LogStats{Levels: map[string]LevelStats{}, Nodes: map[string]uint64{s.node: hs.Received},
		Rejected: hs.Rejected, Out: hs.Delivered, Dropped: hs.SubscriberDrops}
	for l, n := range hs.ByLevel {
		st.Levels[l] = LevelStats{In: n}
	}
	return st
}
