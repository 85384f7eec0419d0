package mesh

import (
	"sync"
	"sync/atomic"
	"time"
)

// closeGrace is how long Close waits for a reader to take the last events
// and Stop when the Events channel is full.
const closeGrace = 500 * time.Millisecond

// eventQueue sits between the actor and the Events channel, so the actor
// never blocks on a slow reader. It is bounded: past max waiting events,
// new events are dropped and counted.
type eventQueue struct {
	mu      sync.Mutex
	q       []Event
	holding bool       // the pump holds a popped event it has not delivered yet
	out     chan Event // the Events channel
	max     int
	signal  chan struct{}
	dropped atomic.Uint64
}

func (e *eventQueue) init(max int, out chan Event) {
	e.max = max
	e.out = out
	e.signal = make(chan struct{}, 1)
}

// push queues ev; it reports false when the queue is full and ev dropped.
// Stop is always queued. When nothing waits before it and the channel has
// room, ev goes straight into the channel, which spares a hand-off.
func (e *eventQueue) push(ev Event) bool {
	e.mu.Lock()
	if len(e.q) == 0 && !e.holding && ev.Type != EventStop {
		select {
		case e.out <- ev:
			e.mu.Unlock()
			return true
		default:
		}
	}
	if len(e.q) >= e.max && ev.Type != EventStop {
		e.mu.Unlock()
		e.dropped.Add(1)
		return false
	}
	e.q = append(e.q, ev)
	e.mu.Unlock()
	select {
	case e.signal <- struct{}{}:
	default:
	}
	return true
}

func (e *eventQueue) pop() (Event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.q) == 0 {
		return Event{}, false
	}
	ev := e.q[0]
	e.holding = true
	e.q[0] = Event{}
	e.q = e.q[1:]
	if len(e.q) == 0 {
		e.q = nil // let the backing array go after a burst
	}
	return ev, true
}

// pumpEvents moves events from the queue to the Events channel until the
// actor has stopped, then hands over what is left (the actor's last event
// is Stop) within closeGrace and closes the channel.
func (n *Node) pumpEvents() {
	defer close(n.events)
	for {
		ev, ok := n.evq.pop()
		if !ok {
			select {
			case <-n.evq.signal:
				continue
			case <-n.actorDone:
				n.flushEvents(nil)
				return
			}
		}
		select {
		case n.events <- ev:
			n.evq.delivered()
		case <-n.actorDone:
			n.flushEvents(&ev)
			return
		}
	}
}

func (n *Node) flushEvents(first *Event) {
	timer := time.NewTimer(closeGrace)
	defer timer.Stop()
	deliver := func(ev Event) bool {
		select {
		case n.events <- ev:
			return true
		case <-timer.C:
			return false
		}
	}
	if first != nil && !deliver(*first) {
		return
	}
	for {
		ev, ok := n.evq.pop()
		if !ok || !deliver(ev) {
			return
		}
	}
}

// delivered tells the queue the pump's held event is in the channel.
func (e *eventQueue) delivered() {
	e.mu.Lock()
	e.holding = false
	e.mu.Unlock()
}
