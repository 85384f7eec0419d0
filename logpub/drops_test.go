package logpub

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestStuckSubscriberLossIsCounted: a subscriber that stops reading is cut
// off after the write timeout; every live event it did not get, including
// those still queued when its sender gave up, is in SubscriberDrops.
func TestStuckSubscriberLossIsCounted(t *testing.T) {
	h := startHub(t, func(c *HubConfig) {
		c.WriterEndpoint = ""
		c.WriteTimeout = 3 * time.Second
	})
	w := dialWire(t, h.PubEndpoint(), subscribeReq{Follow: true})
	w.c.(*net.TCPConn).SetReadBuffer(4096)
	if _, end := w.frame(); !end {
		t.Fatal("live stream does not start with END")
	}
	// Small socket buffers on the hub's side too, so that what is queued
	// below cannot all fit in them.
	h.connMu.Lock()
	for c := range h.conns {
		c.(*net.TCPConn).SetWriteBuffer(4096)
	}
	h.connMu.Unlock()
	// Ingest until far more than the socket buffers hold went by and
	// events wait in the subscription's queue: the sender is then blocked
	// in a write (or will be), and every event so far was offered to the
	// subscriber.
	queued := func() int {
		h.mu.Lock()
		defer h.mu.Unlock()
		n := 0
		for s := range h.subs {
			s.mu.Lock()
			n += len(s.q)
			s.mu.Unlock()
		}
		return n
	}
	line := []byte(`{"level":"info","pad":"` + strings.Repeat("x", 1000) + `"}`)
	for ingested := 0; ingested < 1000 || queued() < 100; ingested += 50 {
		if h.Stats().Subscribers != 1 {
			t.Fatal("the subscriber was cut off before its queue filled: machine too slow for this test's write timeout")
		}
		for i := 0; i < 50; i++ {
			if err := h.Ingest("api", line); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "the stuck subscriber to be cut off", func() bool { return h.Stats().Subscribers == 0 })
	st := h.Stats()
	if st.SubscriberDrops == 0 || st.Received != st.Delivered+st.SubscriberDrops {
		t.Fatalf("received %d, delivered %d + dropped %d = %d", st.Received, st.Delivered, st.SubscriberDrops, st.Delivered+st.SubscriberDrops)
	}
}
