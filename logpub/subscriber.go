package logpub

import (
	"errors"
	"sync"
	"time"
)

// ErrTooManySubscribers is returned when a Hub has MaxSubscribers
// subscriptions already.
var ErrTooManySubscribers = errors.New("logpub: too many subscribers")

// qent is one event queued for one subscriber, with its stream sequence.
type qent struct {
	ev   *Event
	sseq uint64
	hist bool
}

// subOut is where a subscription's events go: a connection or a channel.
type subOut interface {
	send(q []qent) error
	end(dropped uint64) error
}

// hubSub is one subscription: a bounded queue filled under the Hub's lock
// (never blocking) and drained by its own goroutine, so a slow subscriber
// only ever delays itself.
type hubSub struct {
	h         *Hub
	filter    Filter
	nodeMatch bool
	follow    bool
	out       subOut

	mu      sync.Mutex
	q       []qent
	qBytes  int
	next    map[uint64]uint64 // per source: last stream sequence given
	dropped uint64

	history []qent
	files   []fileSnap
	since   time.Time
	resume  *resumeState // sequence-based resume (resume.go), or nil

	onExit   func() // called when the sender has stopped
	wake     chan struct{}
	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
}

// subscribe registers a subscription and starts its sender. History (ring
// snapshot and capture files) is taken under the same lock as the
// registration, so nothing is missed or repeated between history and live.
func (h *Hub) subscribe(req subscribeReq, out subOut, onExit func()) (*hubSub, error) {
	s := &hubSub{
		h: h, onExit: onExit, filter: req.Filter, follow: req.Follow, out: out,
		nodeMatch: req.Filter.matchNode(h.cfg.Node, h.cfg.NodeName),
		next:      map[uint64]uint64{},
		wake:      make(chan struct{}, 1),
		stopCh:    make(chan struct{}),
		done:      make(chan struct{}),
	}
	if b, ok := out.(interface{ bind(*hubSub) }); ok {
		b.bind(s)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	if h.active >= h.cfg.MaxSubscribers {
		h.mu.Unlock()
		h.refused.Add(1)
		h.log.Warn().Int("max", h.cfg.MaxSubscribers).Msg("subscription refused: too many subscribers")
		return nil, ErrTooManySubscribers
	}
	h.active++
	if req.Resume {
		s.resumeSnapshotLocked(req.After)
	} else if req.Since != 0 && s.nodeMatch {
		s.since = time.Unix(0, req.Since)
		s.snapshotLocked()
	}
	if req.Follow {
		h.subs[s] = struct{}{}
	}
	h.wg.Add(1)
	h.mu.Unlock()
	go s.run()
	return s, nil
}

// snapshotLocked copies the matching ring events since s.since and, when
// the ring does not reach back that far, opens the capture files.
func (s *hubSub) snapshotLocked() {
	h := s.h
	inRing := map[string]int{} // per capture file key: ring events
	// The files are needed unless the ring holds an event at or before
	// since (then it holds every later one).
	needFiles := true
	if o := h.ring.oldest(); o != nil && !o.Received.After(s.since) {
		needFiles = false
	}
	h.ring.each(func(e *Event) {
		if h.capt != nil {
			inRing[h.capt.keyFor(e.Service)]++
		}
		if !e.Received.Before(s.since) && s.match(e) {
			s.history = append(s.history, qent{ev: e, hist: true})
		}
	})
	if h.capt != nil && needFiles {
		s.files = h.capt.snapshot(&s.filter, inRing)
	}
}

func (s *hubSub) match(e *Event) bool {
	return s.nodeMatch && s.filter.matchLevel(e.Level) && s.filter.matchService(e.Service)
}

// offer queues the matching events of one batch; called under the Hub's
// lock, never blocks.
func (s *hubSub) offer(evs []Event) {
	if !s.nodeMatch || !s.filter.matchService(evs[0].Service) {
		return
	}
	queued := false
	// The events of a batch share their source: one map lookup per run
	// of a source, not two per event.
	var src, sseq uint64
	have := false
	s.mu.Lock()
	for i := range evs {
		e := &evs[i]
		if !s.filter.matchLevel(e.Level) {
			continue
		}
		if !have || e.Source != src {
			if have {
				s.next[src] = sseq
			}
			src, sseq, have = e.Source, s.next[e.Source], true
		}
		sseq++
		if len(s.q) >= s.h.cfg.SubQueueEvents || s.qBytes+len(e.Line) > s.h.cfg.SubQueueBytes {
			s.dropped++
			s.h.subDrops.Add(1)
			continue
		}
		s.q = append(s.q, qent{ev: e, sseq: sseq})
		s.qBytes += len(e.Line)
		queued = true
	}
	if have {
		s.next[src] = sseq
	}
	s.mu.Unlock()
	if queued {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (s *hubSub) stop() {
	s.stopOnce.Do(func() { close(s.stopCh) })
}

func (s *hubSub) stopLocked() { s.stop() }

// run sends the history, then live events, until stopped or the output
// fails.
func (s *hubSub) run() {
	defer s.h.wg.Done()
	defer close(s.done)
	if s.onExit != nil {
		defer s.onExit()
	}
	var unsent int // live events of a send that failed
	defer func() {
		s.h.mu.Lock()
		delete(s.h.subs, s)
		s.h.active--
		// No offer comes after the removal: what is queued now, and the
		// batch whose send failed, is lost to this stream. Counted before
		// the lock is released, so that no one sees the subscription gone
		// and its loss not yet counted.
		s.countLost(unsent)
		s.h.mu.Unlock()
		for _, f := range s.files {
			f.close()
		}
	}()
	if !s.sendHistory() {
		return
	}
	if !s.follow {
		return
	}
	var batch []qent
	for {
		select {
		case <-s.stopCh:
			return
		case <-s.wake:
		}
		s.mu.Lock()
		batch, s.q = s.q, batch[:0]
		s.qBytes = 0
		s.mu.Unlock()
		if err := s.out.send(batch); err != nil {
			unsent = len(batch)
			return
		}
		s.h.delivered.Add(uint64(len(batch)))
		clear(batch)
	}
}

// countLost counts as dropped the live events a subscription leaves
// undelivered when its output failed (a write timeout to a stuck
// subscriber, a broken connection): unsent of a failed send plus those
// still queued. When the subscription was stopped (the subscriber left,
// or the Hub closed) they had no one to go to and are not drops.
func (s *hubSub) countLost(unsent int) {
	s.mu.Lock()
	n := uint64(unsent + len(s.q))
	clear(s.q)
	s.q, s.qBytes = nil, 0
	select {
	case <-s.stopCh:
		n = 0
	default:
	}
	s.dropped += n
	s.mu.Unlock()
	if n > 0 {
		s.h.subDrops.Add(n)
	}
}

// sendHistory sends capture-file history, then the ring snapshot, then END
// (always, so that clients know when history is complete).
func (s *hubSub) sendHistory() bool {
	if len(s.files) > 0 {
		err := readHistory(s.files, s.since, &s.filter, s.h.cfg.Node, func(q []qent) error {
			select {
			case <-s.stopCh:
				return ErrClosed
			default:
			}
			return s.out.send(q)
		})
		if err != nil {
			return false
		}
	}
	if s.resume != nil && s.sendFiles() != nil {
		return false
	}
	for len(s.history) > 0 {
		n := min(len(s.history), 4096)
		if err := s.out.send(s.history[:n]); err != nil {
			return false
		}
		s.history = s.history[n:]
	}
	s.history = nil
	if s.resume != nil && s.sendSources() != nil {
		return false
	}
	s.mu.Lock()
	d := s.dropped
	s.mu.Unlock()
	return s.out.end(d) == nil
}
