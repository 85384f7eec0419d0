package logpub

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestLiveStreamStartsWhenSubscribeReturns: a live-only subscription is
// registered at the hub by the time Subscribe returns, so an event
// accepted right after is in the stream. (Subscribe used to return once
// its request was written, and the first events could fall before the
// hub registered it, uncounted.)
func TestLiveStreamStartsWhenSubscribeReturns(t *testing.T) {
	h := startHub(t, nil)
	for i := 0; i < 30; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := Subscribe(ctx, h.PubEndpoint(), SubscribeOptions{Follow: true})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		line := fmt.Sprintf(`{"level":"info","round":%d}`, i)
		if err := h.Ingest("api", []byte(line)); err != nil {
			t.Fatal(err)
		}
		e, err := st.Next()
		st.Close()
		cancel()
		if err != nil {
			t.Fatalf("round %d: the event accepted right after Subscribe did not come: %v", i, err)
		}
		if string(e.Line) != line+"\n" {
			t.Fatalf("round %d: got %q", i, e.Line)
		}
	}
}
