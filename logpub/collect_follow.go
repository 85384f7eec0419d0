package logpub

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// errResume ends a session whose live stream lost events at the origin
// (this collector's queue there overflowed): they are still in the
// origin's ring, so the follower resumes from its cursors at once.
var errResume = errors.New("logpub: collector: the origin dropped live events for us; resuming from the cursors")

// errIdle ends a session quiet for IdleResume after live events, to fetch
// from the ring what the origin may have dropped at the end of a burst.
var errIdle = errors.New("logpub: collector: idle after a burst; resuming from the cursors")

// follow collects one origin until ctx ends, resuming after every
// disconnect. prev is the done channel of the origin's previous follower.
func (c *Collector) follow(ctx context.Context, o *origin, endpoint string, cc *CurveClient, prev <-chan struct{}, done chan struct{}) {
	defer c.wg.Done()
	defer close(done)
	if prev != nil {
		<-prev
	}
	for ctx.Err() == nil {
		err := c.session(ctx, o, endpoint, cc)
		c.mu.Lock()
		o.connected = false
		if err != nil && ctx.Err() == nil {
			o.lastErr = err.Error()
		}
		c.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errIdle) {
			continue
		}
		if errors.Is(err, errResume) {
			c.log.Info().Str("origin", o.name).Msg("origin dropped live events for this collector; resuming from the cursors")
			continue
		}
		c.log.Debug().Err(err).Str("origin", o.name).Str("endpoint", endpoint).Msg("collecting from origin interrupted; will resume")
		t := time.NewTimer(c.cfg.Retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// cursors returns the origin's cursors for a resume request.
func (c *Collector) cursors(o *origin) []SourceSeq {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := make([]SourceSeq, 0, len(o.sources))
	for src, cs := range o.sources {
		l = append(l, SourceSeq{Source: src, Seq: cs.Seq})
	}
	return l
}

// session subscribes to the origin from the cursors, captures the
// history then the live events, and returns when the stream ends.
func (c *Collector) session(ctx context.Context, o *origin, endpoint string, cc *CurveClient) error {
	d, err := c.dir(o)
	if err != nil {
		return err
	}
	st, err := Subscribe(ctx, endpoint, SubscribeOptions{Filter: Filter{Services: c.cfg.Services},
		Follow: true, Resume: true, After: c.cursors(o), Curve: cc})
	if err != nil {
		return err
	}
	defer st.Close()
	c.resumes.Add(1)
	c.mu.Lock()
	o.connected, o.lastErr = true, ""
	c.mu.Unlock()
	var (
		batch []Event
		gd    GapDetector
		live  bool
		idle  atomic.Bool
	)
	quiet := time.AfterFunc(time.Hour, func() { idle.Store(true); st.Close() })
	quiet.Stop()
	defer quiet.Stop()
	for {
		ev, err := st.Next()
		if errors.Is(err, ErrHistoryEnd) {
			if err := c.flush(d, o, batch); err != nil {
				return err
			}
			batch = batch[:0]
			c.settle(o, st.Sources())
			live = true
			continue
		}
		if err != nil {
			if ferr := c.flush(d, o, batch); ferr != nil {
				return ferr
			}
			if idle.Load() {
				return errIdle
			}
			return err
		}
		if live {
			quiet.Reset(c.cfg.IdleResume)
		}
		if live && gd.Check(&ev) > 0 {
			if err := c.flush(d, o, batch); err != nil {
				return err
			}
			return errResume
		}
		batch = append(batch, ev)
		if st.Buffered() == 0 || len(batch) >= collectMaxBatch {
			if err := c.flush(d, o, batch); err != nil {
				return err
			}
			clear(batch)
			batch = batch[:0]
		}
	}
}

// svcTally is what one flush found for one service.
type svcTally struct {
	events            []*Event
	missed, gaps      uint64
	filtered, deduped uint64
}

// flush captures a batch of one origin's events: events at or below a
// source's cursor are dropped (deduped), a jump beyond it is a gap
// (counted and logged), events below MinLevel advance the cursor without
// being captured. Each service's cursors advance only once its events are
// captured; a failed write returns the error (the session then resumes
// from the cursors, so nothing is lost).
func (c *Collector) flush(d *outDir, o *origin, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	next, tally, order := c.sortOut(o, evs, "")
	for _, svc := range order {
		t := tally[svc]
		if len(t.events) > 0 {
			if done, err := d.write(svc, t.events); err != nil {
				c.captureErrors.Add(1)
				c.log.Error().Err(err).Str("origin", o.name).Str("service", svc).Int("events", len(t.events)-done).
					Msg("capture of collected events failed; they will be collected again")
				if done > 0 {
					// Those written before a rotation are captured: move
					// the cursors past them (and count what came with
					// them), or they would come twice.
					last := t.events[done-1]
					upto := evs[:indexOf(evs, last)+1]
					pn, pt, _ := c.sortOut(o, upto, svc)
					c.commit(o, svc, pn, pt[svc])
				}
				return err
			}
		}
		c.commit(o, svc, next, t)
	}
	return nil
}

// indexOf returns the index in evs of the event e points to.
func indexOf(evs []Event, e *Event) int {
	for i := range evs {
		if &evs[i] == e {
			return i
		}
	}
	return len(evs) - 1
}

// sortOut sorts a batch of one origin's events by service (all services, or
// only the one named): the cursors they advance, and per service the
// events to capture and the counts of gaps, duplicates and filtered ones.
func (c *Collector) sortOut(o *origin, evs []Event, only string) (map[uint64]cursorSource, map[string]*svcTally, []string) {
	lf := Filter{MinLevel: c.cfg.MinLevel, LevelSet: c.cfg.LevelSet}
	next := map[uint64]cursorSource{}
	tally := map[string]*svcTally{}
	var order []string
	for i := range evs {
		e := &evs[i]
		if only != "" && e.Service != only {
			continue
		}
		t := tally[e.Service]
		if t == nil {
			t = &svcTally{}
			tally[e.Service] = t
			order = append(order, e.Service)
		}
		last, have := next[e.Source]
		if !have {
			if cs := o.sources[e.Source]; cs != nil {
				last, have = *cs, true
			} else if seed, ok := c.seed(o, e.Source); ok {
				last, have = seed, true
			}
		}
		if have && e.Seq <= last.Seq {
			t.deduped++
			continue
		}
		if exp := last.Seq + 1; e.Seq > exp && (have || o.known) {
			t.missed += e.Seq - exp
			t.gaps++
			c.log.Warn().Str("origin", o.name).Str("service", e.Service).Uint64("source", e.Source).
				Uint64("from_seq", exp).Uint64("to_seq", e.Seq-1).Msg("events no longer available at the origin: gap")
		}
		next[e.Source] = cursorSource{Service: e.Service, Seq: e.Seq}
		if !lf.matchLevel(e.Level) {
			t.filtered++
			continue
		}
		t.events = append(t.events, e)
	}
	return next, tally, order
}

// commit advances the cursors of one service's sources and the counters.
func (c *Collector) commit(o *origin, svc string, next map[uint64]cursorSource, t *svcTally) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for src, cs := range next {
		if cs.Service != svc {
			continue
		}
		if cur := o.sources[src]; cur != nil {
			*cur = cs
		} else {
			v := cs
			o.sources[src] = &v
		}
	}
	n := uint64(len(t.events))
	o.collected += n
	o.deduped += t.deduped
	o.missed += t.missed
	o.seen = time.Now()
	c.dirty = true
	c.collected.Add(n)
	c.deduped.Add(t.deduped)
	c.filtered.Add(t.filtered)
	c.missed.Add(t.missed)
	c.gaps.Add(t.gaps)
}

// settle compares the cursors, once the history is in, with the origin's
// report of its last sequence per source: whatever the origin accepted
// beyond what arrived is no longer available there (evicted from its
// ring, or rejected as malformed): a gap, counted and logged, and the
// cursor moves on. Cursors of sources the origin no longer knows are
// dropped (without a service filter, the report is complete).
func (c *Collector) settle(o *origin, sources []SourceSeq) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reported := make(map[uint64]bool, len(sources))
	for _, s := range sources {
		reported[s.Source] = true
		cs := o.sources[s.Source]
		if cs == nil {
			cs = &cursorSource{Service: s.Service}
			o.sources[s.Source] = cs
			if seed, ok := c.seedLocked(o, s.Source); ok {
				cs.Seq = seed.Seq
				if s.Seq > cs.Seq {
					c.noteGapLocked(o, s.Service, s.Source, cs.Seq+1, s.Seq)
				}
			} else if o.known {
				c.noteGapLocked(o, s.Service, s.Source, 1, s.Seq)
			}
		} else if s.Seq > cs.Seq {
			c.noteGapLocked(o, s.Service, s.Source, cs.Seq+1, s.Seq)
		} else if s.Seq < cs.Seq {
			c.log.Warn().Str("origin", o.name).Str("service", s.Service).Uint64("source", s.Source).
				Uint64("cursor", cs.Seq).Uint64("origin_seq", s.Seq).Msg("origin's sequence went back (it restarted with the same identity); following it")
		}
		cs.Seq = s.Seq
	}
	if len(c.cfg.Services) == 0 {
		for src := range o.sources {
			if !reported[src] {
				delete(o.sources, src)
			}
		}
	}
	o.known = true
	o.seen = time.Now()
	c.dirty = true
}

func (c *Collector) noteGapLocked(o *origin, service string, source, from, to uint64) {
	if to < from {
		return
	}
	n := to - from + 1
	o.missed += n
	c.missed.Add(n)
	c.gaps.Add(1)
	c.log.Warn().Str("origin", o.name).Str("service", service).Uint64("source", source).
		Uint64("from_seq", from).Uint64("to_seq", to).Msg("events no longer available at the origin: gap")
}

// seed returns the cursor of a writer source that a previous incarnation
// of this origin (same name, another UUID: a restarted logd) had. A Writer
// keeps its source id and sequence across its logd's restarts and resends
// what was not acknowledged, so its cursor carries over: resent events
// already collected are dropped, what the restarted logd never had is a
// gap. Ingest sources (even ids) restart their sequence with their hub and
// are not carried over.
func (c *Collector) seed(o *origin, src uint64) (cursorSource, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seedLocked(o, src)
}

func (c *Collector) seedLocked(o *origin, src uint64) (cursorSource, bool) {
	if src&1 == 0 {
		return cursorSource{}, false
	}
	var best cursorSource
	found := false
	for _, other := range c.origins {
		if other == o || other.name != o.name {
			continue
		}
		if cs := other.sources[src]; cs != nil && (!found || cs.Seq > best.Seq) {
			best, found = *cs, true
		}
	}
	return best, found
}
