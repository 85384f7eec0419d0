package dashboard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
)

// maxRegexp bounds the length of a client's regexp filter. Go regexps run
// in linear time, so a long one is only a waste, never a hang.
const maxRegexp = 1024

// streamClient is one stream connection's bounded queue. The source's
// deliver never blocks: when the queue is full the event is dropped and
// counted, so a slow browser loses events and never slows logd.
type streamClient struct {
	ch      chan Event
	filter  Filter
	dropped atomic.Uint64
	s       *Server
}

func (c *streamClient) deliver(e *Event) {
	if !c.filter.Match(e) { // again: a source may filter more loosely (or not the regexp)
		return
	}
	if len(c.ch) == cap(c.ch) { // full: do not even copy the line
		c.drop()
		return
	}
	cp := *e
	cp.Line = append([]byte(nil), bytes.TrimSuffix(e.Line, []byte{'\n'})...)
	select {
	case c.ch <- cp:
	default:
		c.drop()
	}
}

func (c *streamClient) drop() {
	c.dropped.Add(1)
	c.s.clientDropped.Add(1)
}

// parseFilter reads level, service, node and regex from the query string.
func parseFilter(r *http.Request) (Filter, error) {
	q := r.URL.Query()
	f := Filter{Level: strings.ToLower(q.Get("level")), Service: q.Get("service"), Node: q.Get("node")}
	if f.Level != "" && LevelRank(f.Level) < 0 {
		return f, fmt.Errorf("unknown level %q (want one of %s)", f.Level, strings.Join(Levels, ", "))
	}
	if expr := q.Get("regex"); expr != "" {
		if len(expr) > maxRegexp {
			return f, fmt.Errorf("regex longer than %d bytes", maxRegexp)
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return f, fmt.Errorf("regex: %w", err)
		}
		f.Regexp = re
	}
	return f, nil
}

// wantsSSE picks the stream format: ?format=sse|ndjson, else the Accept header.
func wantsSSE(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "sse":
		return true
	case "ndjson":
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// sseLog is the payload of a "log" SSE event.
type sseLog struct {
	T       int64  `json:"t"` // receive time, Unix milliseconds
	Node    string `json:"node"`
	Service string `json:"service"`
	Level   string `json:"level"`
	Seq     uint64 `json:"seq"`
	Line    string `json:"line"`
}

// handleStream serves GET /api/v1/stream: live events matching the filter,
// as NDJSON (the zerolog lines unchanged) or as SSE "log" events.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r)
	if err != nil {
		http.Error(w, "dashboard: stream: "+err.Error(), http.StatusBadRequest)
		return
	}
	done, ok := s.addClient(w)
	if !ok {
		return
	}
	defer done()
	c := &streamClient{ch: make(chan Event, s.cfg.ClientBuffer), filter: f, s: s}
	cancel := s.cfg.Logs.Subscribe(f, c.deliver)
	defer cancel()
	if wantsSSE(r) {
		s.streamSSE(w, r, c)
	} else {
		s.streamNDJSON(w, r, c)
	}
}

func (s *Server) streamSSE(w http.ResponseWriter, r *http.Request, c *streamClient) {
	sw, err := startSSE(w)
	if err != nil {
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
		case e := <-c.ch:
			for n := 0; ; n++ { // write what is queued, then flush once
				data, _ := json.Marshal(sseLog{T: e.Time.UnixMilli(), Node: e.Node, Service: e.Service, Level: e.Level, Seq: e.Seq, Line: string(e.Line)})
				sw.event("log", data)
				if n == 255 || len(c.ch) == 0 {
					break
				}
				e = <-c.ch
			}
		}
		if d := c.dropped.Load(); d != reported {
			reported = d
			sw.event("dropped", fmt.Appendf(nil, `{"dropped":%d}`, d))
		}
		if sw.flush() != nil {
			return
		}
	}
}

func (s *Server) streamNDJSON(w http.ResponseWriter, r *http.Request, c *streamClient) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	buf := bufio.NewWriterSize(w, 32<<10)
	flush := func() error {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := buf.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	if flush() != nil {
		return
	}
	var reported uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done(): // Close, also when Handler is served by the caller
			return
		case e := <-c.ch:
			for n := 0; ; n++ {
				_, _ = buf.Write(e.Line)
				_ = buf.WriteByte('\n')
				if n == 255 || len(c.ch) == 0 {
					break
				}
				e = <-c.ch
			}
		}
		if d := c.dropped.Load(); d != reported {
			// Nothing is lost silently: the reader sees a zerolog-shaped
			// warning with the count.
			fmt.Fprintf(buf, `{"level":"warn","dropped":%d,"message":"dashboard: this stream lost %d events in total (reader too slow)"}`+"\n", d, d)
			reported = d
		}
		if flush() != nil {
			return
		}
	}
}
