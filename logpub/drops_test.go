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
	// Far more than the socket buffers hold, ingested well within the
	// write timeout, so that events are still queued when the sender gives
	// up; every one of them was offered to the subscriber.
	line := []byte(`{"level":"info","pad":"` + strings.Repeat("x", 1000) + `"}`)
	for i := 0; i < 20000; i++ {
		if err := h.Ingest("api", line); err != nil {
			t.Fatal(err)
		}
	}
	if h.Stats().Subscribers != 1 {
		t.Fatal("the subscriber was cut off before the events were all ingested: machine too slow for this test's write timeout")
	}
	waitFor(t, "the stuck subscriber to be cut off", func() bool { return h.Stats().Subscribers == 0 })
	st := h.Stats()
	if st.SubscriberDrops == 0 || st.Received != st.Delivered+st.SubscriberDrops {
		t.Fatalf("received %d, delivered %d + dropped %d = %d", st.Received, st.Delivered, st.SubscriberDrops, st.Delivered+st.SubscriberDrops)
	}
}
