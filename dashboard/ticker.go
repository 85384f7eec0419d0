package dashboard

import (
	"sync"
	"time"
)

// WallTicker is a TickSource on the local clock, for when no timer service
// is at hand. Like the timer service's ticks, tick N fires at Unix epoch +
// N·period, so there is no drift; a receiver that falls behind skips ticks
// (reported in Tick.Missed) instead of getting them bunched.
type WallTicker struct{}

// SubscribeTicks starts a goroutine that calls deliver on every tick of the
// period; cancel stops it and waits for it to end.
func (WallTicker) SubscribeTicks(period time.Duration, deliver func(Tick)) (cancel func()) {
	if period <= 0 {
		period = 100 * time.Millisecond
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		next := uint64(time.Now().UnixNano()/int64(period)) + 1
		timer := time.NewTimer(time.Until(tickTime(next, period)))
		defer timer.Stop()
		for {
			select {
			case <-stop:
				return
			case <-timer.C:
			}
			now := time.Now()
			n := uint64(now.UnixNano() / int64(period))
			var missed uint64
			if n > next {
				missed = n - next
			}
			if n < next { // woke early (clock step): wait for the tick
				timer.Reset(time.Until(tickTime(next, period)))
				continue
			}
			deliver(Tick{N: n, At: tickTime(n, period), Missed: missed})
			next = n + 1
			timer.Reset(time.Until(tickTime(next, period)))
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(stop) })
		<-done
	}
}

func tickTime(n uint64, period time.Duration) time.Time {
	return time.Unix(0, int64(n)*int64(period))
}
