package dashboard

import (
	"encoding/json"
	"errors"
	"sync"
	"time"
)

// stubHub is the smallest honest LogSource: an in-memory hub that stamps,
// counts and fans out lines as logd's hub does. It stands in for
// logpub.Hub until that lands in main; the tests then switch to the real
// hub and this file goes away.
type stubHub struct {
	node string

	mu       sync.Mutex
	seq      uint64
	subs     map[int]stubSub
	nextID   int
	levels   map[string]LevelStats
	nodes    map[string]uint64
	rejected uint64
	closed   bool
}

type stubSub struct {
	f       Filter
	deliver func(*Event)
}

var errStubClosed = errors.New("stub hub closed")

func newStubHub(node string) *stubHub {
	return &stubHub{node: node, subs: map[int]stubSub{}, levels: map[string]LevelStats{}, nodes: map[string]uint64{}}
}

func (h *stubHub) Subscribe(f Filter, deliver func(*Event)) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := h.nextID
	h.nextID++
	h.subs[id] = stubSub{f: f, deliver: deliver}
	return func() {
		h.mu.Lock()
		delete(h.subs, id)
		h.mu.Unlock()
	}
}

// Ingest parses the level as the real hub does, then publishes under the
// lock, so deliveries are ordered and none happens after cancel returns.
func (h *stubHub) Ingest(service string, line []byte) error {
	var fields struct {
		Level string `json:"level"`
	}
	if err := json.Unmarshal(line, &fields); err != nil {
		h.mu.Lock()
		h.rejected++
		h.mu.Unlock()
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errStubClosed
	}
	h.seq++
	e := Event{Time: time.Now(), Node: h.node, Service: service, Level: fields.Level, Seq: h.seq, Line: line}
	ls := h.levels[e.Level]
	ls.In++
	h.nodes[h.node]++
	for _, s := range h.subs {
		if s.f.Match(&e) {
			s.deliver(&e)
			ls.Out++
		}
	}
	h.levels[e.Level] = ls
	return nil
}

func (h *stubHub) Stats() LogStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := LogStats{Levels: make(map[string]LevelStats, len(h.levels)), Nodes: make(map[string]uint64, len(h.nodes)), Rejected: h.rejected}
	for k, v := range h.levels {
		st.Levels[k] = v
	}
	for k, v := range h.nodes {
		st.Nodes[k] = v
	}
	return st
}

func (h *stubHub) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
}

// hubWriter is an io.Writer for zerolog that hands each line to a hub, as
// the logpub writer does over the mesh.
type hubWriter struct {
	hub     LogSource
	service string
}

func (w hubWriter) Write(p []byte) (int, error) {
	line := p
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if err := w.hub.Ingest(w.service, append([]byte(nil), line...)); err != nil {
		return 0, err
	}
	return len(p), nil
}
