package dashboard

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// sample is one point of the live graphs: event rates over the last tick.
type sample struct {
	T      float64            `json:"t"`      // Unix seconds
	Levels []float64          `json:"levels"` // events/s, indexed like Levels
	Nodes  map[string]float64 `json:"nodes"`  // events/s by node name
}

// graph turns the log source's cumulative counters into rates on each tick,
// keeps the last points for new pages, and fans samples out to the open
// graph streams through bounded queues. Each rate is taken over a sliding
// window (default 1 s) ending at the tick, so bursts do not alias into
// spikes at 100 ms sampling while the graph still moves on every tick.
type graph struct {
	mu      sync.Mutex
	ring    []sample
	next    int  // ring index of the next sample
	full    bool // the ring has wrapped
	window  time.Duration
	base    []statsAt // counters of the last window, oldest first
	subs    map[*graphSub]struct{}
	bufSize int
	closed  bool
}

type graphSub struct {
	ch      chan []byte // encoded samples
	dropped atomic.Uint64
}

type statsAt struct {
	at time.Time
	st LogStats
}

func newGraph(points, bufSize int, window time.Duration) *graph {
	return &graph{ring: make([]sample, points), subs: map[*graphSub]struct{}{}, bufSize: bufSize, window: window}
}

// sample records the rates since the previous call.
func (g *graph) sample(at time.Time, st LogStats) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := len(g.base); n > 0 && !at.After(g.base[n-1].at) {
		return // a tick out of order (clock step): skip it
	}
	g.base = append(g.base, statsAt{at, st})
	// Keep as base the newest counters at least a window old.
	for len(g.base) > 2 && !g.base[1].at.After(at.Add(-g.window)) {
		g.base = g.base[1:]
	}
	if len(g.base) < 2 {
		return // the first call is only a baseline
	}
	prev := g.base[0]
	dt := at.Sub(prev.at).Seconds()
	sm := sample{T: float64(at.UnixMilli()) / 1000, Levels: make([]float64, len(Levels)), Nodes: make(map[string]float64, len(st.Nodes))}
	for i, l := range Levels {
		sm.Levels[i] = rate(st.Levels[l].In, prev.st.Levels[l].In, dt)
	}
	for n, c := range st.Nodes {
		sm.Nodes[n] = rate(c, prev.st.Nodes[n], dt)
	}
	g.ring[g.next] = sm
	g.next = (g.next + 1) % len(g.ring)
	g.full = g.full || g.next == 0
	data, err := json.Marshal(sm)
	if err != nil {
		return
	}
	for sub := range g.subs {
		select {
		case sub.ch <- data:
		default:
			sub.dropped.Add(1)
		}
	}
}

// rate is the per-second increase of a counter; a counter that went back
// (its source restarted) counts as no increase.
func rate(cur, prev uint64, dt float64) float64 {
	if cur <= prev {
		return 0
	}
	return float64(cur-prev) / dt
}

// history returns the kept samples, oldest first.
func (g *graph) historyLocked() []sample {
	if !g.full {
		return append([]sample(nil), g.ring[:g.next]...)
	}
	return append(append([]sample(nil), g.ring[g.next:]...), g.ring[:g.next]...)
}

// subscribe returns the history and a queue of the samples that follow it.
func (g *graph) subscribe() ([]sample, *graphSub, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, nil, false
	}
	sub := &graphSub{ch: make(chan []byte, g.bufSize)}
	g.subs[sub] = struct{}{}
	return g.historyLocked(), sub, true
}

func (g *graph) unsubscribe(sub *graphSub) {
	g.mu.Lock()
	delete(g.subs, sub)
	g.mu.Unlock()
}

func (g *graph) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// graphHistory is the first event of a graph stream.
type graphHistory struct {
	Levels   []string `json:"levels"`
	PeriodMS int64    `json:"period_ms"`
	Samples  []sample `json:"samples"`
}

// handleGraph serves GET /api/v1/graph: SSE with a "history" event, then
// one "sample" event per tick.
func (s *Server) handleGraph(w http.ResponseWriter, r *http.Request) {
	done, ok := s.addClient(w)
	if !ok {
		return
	}
	defer done()
	hist, sub, ok := s.graph.subscribe()
	if !ok {
		http.Error(w, ErrClosed.Error(), http.StatusServiceUnavailable)
		return
	}
	defer s.graph.unsubscribe(sub)
	sw, err := startSSE(w)
	if err != nil {
		return
	}
	data, _ := json.Marshal(graphHistory{Levels: Levels, PeriodMS: s.cfg.GraphPeriod.Milliseconds(), Samples: hist})
	sw.event("history", data)
	if sw.flush() != nil {
		return
	}
	hb := time.NewTicker(s.cfg.Heartbeat)
	defer hb.Stop()
	var reported uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done(): // Close, also when Handler is served by the caller
			return
		case <-hb.C:
			sw.heartbeat()
		case data := <-sub.ch:
			sw.event("sample", data)
		}
		if d := sub.dropped.Load(); d != reported {
			s.clientDropped.Add(d - reported)
			reported = d
		}
		if sw.flush() != nil {
			return
		}
	}
}
