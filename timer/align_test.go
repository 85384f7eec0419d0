package timer

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAlignMath(t *testing.T) {
	p := 100 * time.Millisecond
	cases := []struct {
		t    time.Time
		n    int64
		next time.Time
	}{
		{time.Unix(0, 0), 0, time.Unix(0, int64(p))},
		{time.Unix(0, 99_999_999), 0, time.Unix(0, int64(p))},
		{time.Unix(0, 100_000_000), 1, time.Unix(0, 200_000_000)},
		{time.Unix(0, -1), -1, time.Unix(0, 0)},
		{time.Unix(1700000000, 123_456_789), 17000000001, time.Unix(1700000000, 200_000_000)},
	}
	for _, c := range cases {
		if got := TickNumber(c.t, p); got != c.n {
			t.Errorf("TickNumber(%v) = %d, want %d", c.t.UnixNano(), got, c.n)
		}
		if got := NextAligned(c.t, p); !got.Equal(c.next) {
			t.Errorf("NextAligned(%v) = %v, want %v", c.t.UnixNano(), got.UnixNano(), c.next.UnixNano())
		}
		if got := TickTime(c.n, p); got.After(c.t) || !got.Add(p).After(c.t) {
			t.Errorf("TickTime(%d) = %v, not the tick containing %v", c.n, got.UnixNano(), c.t.UnixNano())
		}
	}
	if got := NextAligned(time.Unix(5, 0), 0); !got.Equal(time.Unix(5, 0)) {
		t.Errorf("NextAligned with zero period = %v", got)
	}
}

func TestEveryAligned(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := 10 * time.Millisecond
	var ns []int64
	var lates []time.Duration
	err := Every(ctx, p, func(n int64, at time.Time, missed int64) {
		if !at.Equal(TickTime(n, p)) {
			t.Errorf("tick %d at %v, want %v", n, at, TickTime(n, p))
		}
		lates = append(lates, time.Since(at))
		if len(ns) > 0 && n != ns[len(ns)-1]+1+missed {
			t.Errorf("tick %d after %d with missed %d", n, ns[len(ns)-1], missed)
		}
		ns = append(ns, n)
		if len(ns) == 30 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Every returned %v", err)
	}
	for i, l := range lates {
		if l < 0 || l > 200*time.Millisecond {
			t.Errorf("tick %d delivered %v after its time", ns[i], l)
		}
	}
	if err := Every(ctx, 0, nil); !errors.Is(err, ErrBadPeriod) {
		t.Errorf("Every(0) = %v, want ErrBadPeriod", err)
	}
}
