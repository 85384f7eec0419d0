package logpub

// ring keeps the most recent events within a count and a byte bound, for
// --since queries. It is owned by the Hub and used under the Hub's lock.
type ring struct {
	maxEvents int
	maxBytes  int
	buf       []*Event // circular
	head      int      // index of the oldest event
	n         int
	bytes     int
	evicted   uint64
}

func newRing(maxEvents, maxBytes int) *ring {
	return &ring{maxEvents: maxEvents, maxBytes: maxBytes, buf: make([]*Event, 0, min(maxEvents, 1024))}
}

func (r *ring) cost(e *Event) int { return len(e.Line) + len(e.Service) + 128 } // 128: the Event itself

func (r *ring) add(e *Event) {
	if r.maxEvents <= 0 {
		return
	}
	c := r.cost(e)
	for r.n > 0 && (r.n >= r.maxEvents || r.bytes+c > r.maxBytes) {
		r.evictOldest()
	}
	if r.n < len(r.buf) {
		i := r.head + r.n // no modulo: a division per event shows in profiles
		if i >= len(r.buf) {
			i -= len(r.buf)
		}
		r.buf[i] = e
	} else if len(r.buf) < r.maxEvents {
		// Grow: unroll the circle into a larger slice.
		nb := make([]*Event, 0, min(max(2*len(r.buf), 16), r.maxEvents))
		for i := 0; i < r.n; i++ {
			nb = append(nb, r.buf[(r.head+i)%len(r.buf)])
		}
		nb = append(nb, e)
		r.buf, r.head = nb[:cap(nb)], 0
	}
	r.n++
	r.bytes += c
}

func (r *ring) evictOldest() {
	e := r.buf[r.head]
	r.buf[r.head] = nil
	if r.head++; r.head == len(r.buf) {
		r.head = 0
	}
	r.n--
	r.bytes -= r.cost(e)
	r.evicted++
}

// each calls fn for every event, oldest first.
func (r *ring) each(fn func(*Event)) {
	for i := 0; i < r.n; i++ {
		fn(r.buf[(r.head+i)%len(r.buf)])
	}
}

// oldest returns the oldest event, or nil.
func (r *ring) oldest() *Event {
	if r.n == 0 {
		return nil
	}
	return r.buf[r.head]
}
