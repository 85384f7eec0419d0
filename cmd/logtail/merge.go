package main

import (
	"context"
	"time"

	"github.com/logmesh/logmesh/logpub"
)

// feedTokens bounds the events of one logd that the merger holds or that
// are on their way to it: a node whose history waits for another's blocks
// on its connection (the logd then queues, and drops for this subscriber
// as it would for any slow one) instead of filling logtail's memory.
const feedTokens = 128

// itemKind says what an item tells the merger.
type itemKind uint8

const (
	itemEvent   itemKind = iota // an event of the feed
	itemOpen                    // a new feed; hist: its history is merged
	itemHistEnd                 // the feed's merged history is complete (or will not come)
	itemClose                   // the feed's stream has ended
	itemRelease                 // every logd to merge is known: printing may start
)

// item is what the streams send to the merger, in order per feed.
type item struct {
	kind itemKind
	hist bool // itemOpen: the feed has history to merge
	feed *feed
	ev   logpub.Event
}

// feed is one logd's stream as the merger sees it.
type feed struct {
	peer   *logdPeer
	tokens chan struct{} // one per event in flight to or held by the merger

	histSent bool // stream goroutine: its itemHistEnd (or none needed) was sent

	// Owned by the merger.
	hist       bool      // its history is merged: wait for its next event
	slow       bool      // it kept the merge waiting too long: no longer waited for
	closed     bool      // its stream has ended
	emptySince time.Time // since when the merger has had none of its events
	lastKey    time.Time // receive time of its latest event that had one
	q          []queued  // from head on
	head       int
}

func newFeed(peer *logdPeer) *feed {
	return &feed{peer: peer, tokens: make(chan struct{}, feedTokens)}
}

func (f *feed) pending() bool { return f.head < len(f.q) }

// queued is an event the merger holds.
type queued struct {
	ev   logpub.Event
	key  time.Time // receive time, or the feed's previous one if unknown
	hist bool      // arrived as merged history
	seq  uint64    // arrival order
}

// send passes an event to the merger, waiting for room; false when ctx
// ended first.
func (f *feed) send(ctx context.Context, out chan<- item, e logpub.Event) bool {
	select {
	case f.tokens <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	select {
	case out <- item{kind: itemEvent, feed: f, ev: e}:
		return true
	case <-ctx.Done():
		<-f.tokens
		return false
	}
}

// sendControl passes a control item to the merger unless logtail is
// stopping (done closed).
func sendControl(done <-chan struct{}, out chan<- item, it item) {
	select {
	case out <- it:
	case <-done:
	}
}

// merger prints the events of every feed: the history of the feeds that
// have one merged by the logds' receive times (each feed's history comes
// in order: the merger waits for the next event of each before printing
// the oldest), then live events in arrival order. A feed that keeps the
// merge waiting longer than wait is reported and no longer waited for.
type merger struct {
	out   *printer
	count int // stop after printing this many (0: no limit)
	wait  time.Duration
	warnf func(format string, a ...any)

	feeds   []*feed
	held    bool // until itemRelease: more feeds to merge may come
	seq     uint64
	printed int
	timer   *time.Timer
}

func newMerger(out *printer, count int, wait time.Duration, held bool, warnf func(string, ...any)) *merger {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &merger{out: out, count: count, wait: wait, held: held, warnf: warnf, timer: t}
}

// run merges and prints until events is closed, or until --count is
// reached: then it calls stop and discards the rest.
func (m *merger) run(events <-chan item, stop func()) {
	defer m.timer.Stop()
	for {
		if m.emit() {
			stop()
			for range events {
			}
			return
		}
		if len(events) == 0 {
			m.out.flush()
		}
		var expired <-chan time.Time
		if d, ok := m.deadline(); ok {
			m.timer.Reset(time.Until(d))
			expired = m.timer.C
		}
		select {
		case it, ok := <-events:
			m.timer.Stop()
			if !ok {
				// Every stream has stopped: nothing more to wait for.
				m.held = false
				for _, f := range m.feeds {
					f.hist = false
				}
				m.emit()
				return
			}
			m.add(it, time.Now())
		case now := <-expired:
			m.expire(now)
		}
	}
}

func (m *merger) add(it item, now time.Time) {
	f := it.feed
	switch it.kind {
	case itemRelease:
		m.held = false
	case itemOpen:
		f.hist, f.emptySince = it.hist, now
		m.feeds = append(m.feeds, f)
	case itemHistEnd:
		f.hist = false
	case itemClose:
		f.hist, f.closed = false, true
		m.remove(f)
	case itemEvent:
		key := it.ev.Received
		if key.IsZero() {
			key = f.lastKey // keeps its place after its predecessor
		} else {
			f.lastKey = key
		}
		m.seq++
		f.q = append(f.q, queued{ev: it.ev, key: key, hist: f.hist, seq: m.seq})
	}
}

// remove forgets a closed feed once all its events are printed.
func (m *merger) remove(f *feed) {
	if !f.closed || f.pending() {
		return
	}
	for i, g := range m.feeds {
		if g == f {
			m.feeds = append(m.feeds[:i], m.feeds[i+1:]...)
			return
		}
	}
}

// next returns the feed whose first queued event is printed next, or nil
// when none can be printed yet.
func (m *merger) next() *feed {
	if m.held {
		return nil
	}
	for _, f := range m.feeds {
		if f.hist && !f.slow && !f.pending() {
			return nil // its next event may be older than every other
		}
	}
	var best *feed
	for _, f := range m.feeds {
		if f.pending() && f.q[f.head].hist && (best == nil || f.q[f.head].key.Before(best.q[best.head].key)) {
			best = f
		}
	}
	if best != nil {
		return best
	}
	for _, f := range m.feeds {
		if f.hist && !f.slow {
			return nil // live events wait for the merged history
		}
	}
	for _, f := range m.feeds {
		if f.pending() && (best == nil || f.q[f.head].seq < best.q[best.head].seq) {
			best = f
		}
	}
	return best
}

// emit prints every event that can be printed now; it reports whether
// --count was reached.
func (m *merger) emit() bool {
	for {
		f := m.next()
		if f == nil {
			return false
		}
		e := f.q[f.head].ev
		f.q[f.head] = queued{}
		f.head++
		switch {
		case !f.pending():
			f.q, f.head = f.q[:0], 0
			f.emptySince = time.Now()
		case f.head >= 128 && 2*f.head >= len(f.q):
			n := copy(f.q, f.q[f.head:])
			clear(f.q[n:])
			f.q, f.head = f.q[:n], 0
		}
		<-f.tokens
		m.remove(f)
		if !m.out.print(&e, f.peer) {
			continue
		}
		m.printed++
		if m.count > 0 && m.printed >= m.count {
			return true
		}
	}
}

// deadline returns when the merge stops waiting for a feed, if it waits.
func (m *merger) deadline() (time.Time, bool) {
	if m.held {
		return time.Time{}, false
	}
	var d time.Time
	for _, f := range m.feeds {
		if f.hist && !f.slow && !f.pending() {
			if t := f.emptySince.Add(m.wait); d.IsZero() || t.Before(d) {
				d = t
			}
		}
	}
	return d, !d.IsZero()
}

// expire stops waiting for the feeds that kept the merge waiting too long.
func (m *merger) expire(now time.Time) {
	for _, f := range m.feeds {
		if f.hist && !f.slow && !f.pending() && !now.Before(f.emptySince.Add(m.wait)) {
			f.slow = true
			m.warnf("node %s: no history for %v; printing the other nodes' history without waiting for it (its history follows out of order)", f.peer.Name, m.wait)
		}
	}
}
