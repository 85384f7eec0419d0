package timer

import "time"

// periodIndex returns the index of p in Periods, or -1.
func periodIndex(p time.Duration) int {
	for i, q := range Periods {
		if q == p {
			return i
		}
	}
	return -1
}

// tickLoop sends the ticks of Periods[i] to the clients that subscribed.
func (s *Service) tickLoop(i int) {
	defer s.wg.Done()
	period := Periods[i]
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	next := TickNumber(time.Now(), period) + 1
	type out struct {
		id string
		b  []byte
	}
	var batch []out
	for {
		// With no subscriber the loop sleeps instead of waking every
		// period: an idle logd costs nothing here.
		s.mu.Lock()
		idle := s.ticks[i].subs == 0
		s.mu.Unlock()
		if idle {
			select {
			case <-s.ctx.Done():
				return
			case <-s.tickWake[i]:
			}
			next = TickNumber(time.Now(), period) + 1
			continue
		}
		n, skipped, err := waitTick(s.ctx, t, next, period)
		if err != nil {
			return
		}
		next = n + 1
		m := message{Type: msgTick, Period: int64(period), N: n, At: n * int64(period)}
		batch = batch[:0]
		s.mu.Lock()
		st := &s.ticks[i]
		st.skipped += uint64(skipped)
		st.last = n
		for id, c := range s.clients {
			if !c.subs[i] {
				continue
			}
			if c.sent-c.acked >= uint64(s.cfg.Window) {
				st.dropped++
				continue
			}
			c.sent++
			m.Seq = c.sent
			b, _ := m.encode() // fixed-size fields only: cannot fail
			batch = append(batch, out{id, b})
			st.sent++
		}
		s.mu.Unlock()
		for _, o := range batch {
			s.sendRaw(o.id, o.b)
		}
	}
}

// setSubLocked records that a client subscribed (on) to Periods[i] or
// stopped, and wakes the period's loop for its first subscriber.
func (s *Service) setSubLocked(c *client, i int, on bool) {
	if c.subs[i] == on {
		return
	}
	c.subs[i] = on
	if !on {
		s.ticks[i].subs--
		return
	}
	s.ticks[i].subs++
	select {
	case s.tickWake[i] <- struct{}{}:
	default:
	}
}
