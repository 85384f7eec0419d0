package logpub

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/uuid"
)

// benchOrigin is a hub holding n events of 200 bytes, in its ring or, with
// a small ring, in its capture files.
func benchOrigin(b *testing.B, n int, fromFiles bool) *testOrigin {
	b.Helper()
	id := uuid.New()
	h := startHub(b, func(c *HubConfig) {
		c.Node, c.NodeName = id, "origin"
		c.RingEvents, c.RingBytes = n+1, (n+1)*400
		if fromFiles {
			c.RingEvents = 100
			c.Capture = CaptureConfig{Dir: b.TempDir(), NoCompress: true}
		}
	})
	for i := 0; i < n; i++ {
		if err := h.Ingest("api", event200(i)); err != nil {
			b.Fatal(err)
		}
	}
	return &testOrigin{hub: h, peer: CollectorPeer{ID: id, Name: "origin", Endpoint: h.PubEndpoint()}}
}

// subscribeRate reads the whole resumed history with a plain Stream: the
// baseline of what crossing the wire costs.
func subscribeRate(b *testing.B, o *testOrigin, n int) float64 {
	b.Helper()
	start := time.Now()
	st, err := Subscribe(context.Background(), o.peer.Endpoint, SubscribeOptions{Resume: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	got := 0
	for {
		_, err := st.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		got++
	}
	if got != n {
		b.Fatalf("subscriber got %d of %d", got, n)
	}
	return float64(n) / time.Since(start).Seconds()
}

// collectRate collects the origin's n events with a Collector (journal and
// capture on disk) and returns events per second.
func collectRate(b *testing.B, o *testOrigin, n int) float64 {
	b.Helper()
	cfg := DefaultCollectorConfig()
	cfg.Self, cfg.Dir = uuid.New(), b.TempDir()
	c, err := NewCollector(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetPeers([]CollectorPeer{o.peer})
	for c.Stats().Collected < uint64(n) {
		time.Sleep(time.Millisecond) // poll interval
		if time.Since(start) > 2*time.Minute {
			b.Fatalf("collected %+v", c.Stats())
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// collectBenchEvents is how many events one op catches up on.
const collectBenchEvents = 50_000

// BenchmarkCollector measures a Collector catching up on 50 000 events per
// op (from the origin's ring, then from its capture files) against a plain
// subscriber reading the same resumed history in the same op.
func BenchmarkCollector(b *testing.B) {
	for _, files := range []bool{false, true} {
		name := "FromRing"
		if files {
			name = "FromFiles"
		}
		b.Run(name, func(b *testing.B) {
			n := collectBenchEvents
			var base, rate float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				o := benchOrigin(b, n, files)
				subscribeRate(b, o, n) // warm-up: page cache, GC of the setup
				b.StartTimer()
				base += subscribeRate(b, o, n)
				rate += collectRate(b, o, n)
				b.StopTimer()
				o.hub.Close()
			}
			base /= float64(b.N)
			rate /= float64(b.N)
			b.ReportMetric(base, "subscriber-events/s")
			b.ReportMetric(rate, "collector-events/s")
			b.ReportMetric(rate/base, "ratio")
		})
	}
}
