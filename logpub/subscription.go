package logpub

import "time"

// Subscription is an in-process subscription to a Hub (for the dashboard):
// the same bounded queue as a network subscriber, delivered on a channel.
type Subscription struct {
	s  *hubSub
	ch chan Event
}

// Subscribe returns an in-process subscription to live events (and, with
// since not zero, the history from then on). buffer is the channel size;
// events the receiver does not take in time are dropped and counted, as
// for a network subscriber. The channel closes after Close or Hub.Close.
func (h *Hub) Subscribe(f Filter, since time.Time, buffer int) (*Subscription, error) {
	sub := &Subscription{ch: make(chan Event, max(buffer, 0))}
	out := &chanOut{sub: sub}
	req := subscribeReq{Follow: true, Filter: f}
	if !since.IsZero() {
		req.Since = since.UnixNano()
	}
	s, err := h.subscribe(req, out, func() { close(sub.ch) })
	if err != nil {
		return nil, err
	}
	sub.s = s
	return sub, nil
}

// Events returns the channel of events, closed when the Subscription ends.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Dropped returns how many matching events this subscription lost.
func (s *Subscription) Dropped() uint64 {
	s.s.mu.Lock()
	defer s.s.mu.Unlock()
	return s.s.dropped
}

// Close ends the subscription and waits for its goroutine.
func (s *Subscription) Close() {
	s.s.stop()
	<-s.s.done
}

type chanOut struct {
	sub  *Subscription
	stop <-chan struct{}
}

func (o *chanOut) send(q []qent) error {
	for _, x := range q {
		e := *x.ev
		e.StreamSeq, e.History = x.sseq, x.hist
		select {
		case o.sub.ch <- e:
		case <-o.stop:
			return ErrClosed
		}
	}
	return nil
}

func (o *chanOut) end(uint64) error { return nil }

func (o *chanOut) bind(s *hubSub) { o.stop = s.stopCh }
