package timer

import (
	"context"
	"time"
)

// TickTime returns the scheduled instant of tick n of period: the Unix epoch
// plus n·period. It is the same instant on every host, whatever its start time.
func TickTime(n int64, period time.Duration) time.Time {
	return time.Unix(0, n*int64(period))
}

// TickNumber returns the number of the latest tick of period scheduled at or
// before t (floor of t/period since the Unix epoch).
func TickNumber(t time.Time, period time.Duration) int64 {
	ns := t.UnixNano()
	n := ns / int64(period)
	if ns%int64(period) < 0 {
		n--
	}
	return n
}

// NextAligned returns the first instant strictly after t that is a whole
// multiple of period since the Unix epoch. Log rotation by time uses it so
// that every node rotates at the same instants (e.g. on the hour).
func NextAligned(t time.Time, period time.Duration) time.Time {
	if period <= 0 {
		return t
	}
	return TickTime(TickNumber(t, period)+1, period)
}

// Every calls fn for each tick of period, aligned to the wall clock, until ctx
// is done; it runs in the caller's goroutine. fn gets the tick number, its
// scheduled time and how many ticks were skipped before it because fn or the
// host was too slow (ticks are skipped, never bunched). It returns ctx.Err().
func Every(ctx context.Context, period time.Duration, fn func(n int64, at time.Time, missed int64)) error {
	if period <= 0 {
		return ErrBadPeriod
	}
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	next := TickNumber(time.Now(), period) + 1
	for {
		n, missed, err := waitTick(ctx, t, next, period)
		if err != nil {
			return err
		}
		fn(n, TickTime(n, period), missed)
		next = n + 1
	}
}

// waitTick sleeps until tick next is due and returns the latest due tick and
// how many due ticks before it are skipped. The wall clock decides: the timer
// only sleeps, so a wall-clock step or a late wake-up never shifts the grid.
func waitTick(ctx context.Context, t *time.Timer, next int64, period time.Duration) (n, missed int64, err error) {
	for {
		d := time.Until(TickTime(next, period))
		if d <= 0 {
			break
		}
		t.Reset(d)
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-t.C:
		}
	}
	n = TickNumber(time.Now(), period)
	if n < next { // the wall clock went back during the sleep
		n = next
	}
	return n, n - next, nil
}
