package logpub

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// wireSub is a subscriber that reads the raw frames, so that a test sees
// exactly what crossed the wire (Stream does no filtering of its own, but
// this does not depend on it).
type wireSub struct {
	t   testing.TB
	c   net.Conn
	buf []byte
}

func dialWire(t testing.TB, endpoint string, req subscribeReq) *wireSub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dial(ctx, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(appendSubscribe(nil, req)); err != nil {
		t.Fatal(err)
	}
	return &wireSub{t: t, c: c}
}

// frame reads one frame: its events, or end = true for END.
func (w *wireSub) frame() (evs []Event, end bool) {
	w.t.Helper()
	w.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	typ, body, buf, err := readFrame(w.c, w.buf)
	if err != nil {
		w.t.Fatalf("read frame: %v", err)
	}
	w.buf = buf
	switch typ {
	case frameEnd:
		return nil, true
	case frameEvents:
		evs, err := decodeEvents(body, nil)
		if err != nil {
			w.t.Fatal(err)
		}
		for i := range evs { // body is reused: own the lines
			evs[i].Line = append([]byte(nil), evs[i].Line...)
		}
		return evs, false
	}
	w.t.Fatalf("unexpected frame type %d", typ)
	return nil, false
}

// untilEnd reads events up to END.
func (w *wireSub) untilEnd() []Event {
	w.t.Helper()
	var out []Event
	for {
		evs, end := w.frame()
		if end {
			return out
		}
		out = append(out, evs...)
	}
}

// until reads events up to and including the first whose line contains
// marker.
func (w *wireSub) until(marker string) []Event {
	w.t.Helper()
	var out []Event
	for {
		evs, end := w.frame()
		if end {
			continue
		}
		for _, e := range evs {
			out = append(out, e)
			if strings.Contains(string(e.Line), marker) {
				return out
			}
		}
	}
}

func eventMessages(evs []Event) []string {
	var out []string
	for _, e := range evs {
		l := string(e.Line)
		if i := strings.Index(l, `"message":"`); i >= 0 {
			l = l[i+len(`"message":"`):]
			l = l[:strings.IndexByte(l, '"')]
		}
		out = append(out, l)
	}
	return out
}

var allLevels = []zerolog.Level{zerolog.TraceLevel, zerolog.DebugLevel, zerolog.InfoLevel, zerolog.WarnLevel,
	zerolog.ErrorLevel, zerolog.FatalLevel, zerolog.PanicLevel}

// TestLevelFilterEveryLevelAtSource checks, for every level, that a level
// filter passes exactly that level and above, in live streams, in ring
// history and in capture-file history, and that nothing else crosses the
// wire; events without a level (zerolog's Log()) or with an unknown one
// pass only without a level filter.
func TestLevelFilterEveryLevelAtSource(t *testing.T) {
	prev := zerolog.GlobalLevel()
	zerolog.SetGlobalLevel(zerolog.TraceLevel) // zerolog drops trace by default
	t.Cleanup(func() { zerolog.SetGlobalLevel(prev) })

	// Expectations are spelt out here, independent of the filter's code.
	filters := map[string]Filter{"none": {}}
	want := map[string][]string{"none": {"trace", "debug", "info", "warn", "error", "fatal", "panic", "nolevel", "unknown", "marker"}}
	for i, l := range allLevels {
		filters[l.String()] = Filter{}.AtLeast(l)
		want[l.String()] = append(slices.Clone(want["none"][i:7]), "marker")
	}
	for _, ring := range []int{1000, 0} { // history from the ring, then from files only
		h := startHub(t, func(c *HubConfig) {
			c.RingEvents = ring
			c.Capture = CaptureConfig{Dir: t.TempDir()}
		})
		subs := map[string]*wireSub{}
		for name, f := range filters {
			subs[name] = dialWire(t, h.PubEndpoint(), subscribeReq{Follow: true, Filter: f})
			if _, end := subs[name].frame(); !end {
				t.Fatal("live stream does not start with END")
			}
		}
		a := newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: "api"})
		for _, l := range allLevels {
			a.log.WithLevel(l).Msg(l.String())
		}
		a.log.Log().Msg("nolevel")
		a.waitAcked(t)
		if err := h.Ingest("api", []byte(`{"level":"verbose","message":"unknown"}`)); err != nil {
			t.Fatal(err)
		}
		a.log.WithLevel(zerolog.PanicLevel).Msg("marker")
		a.waitAcked(t)

		for name, f := range filters {
			if got := eventMessages(subs[name].until("marker")); !slices.Equal(got, want[name]) {
				t.Errorf("ring %d, live, --level %s: got %v, want %v", ring, name, got, want[name])
			}
			q := dialWire(t, h.PubEndpoint(), subscribeReq{Since: time.Now().Add(-time.Hour).UnixNano(), Filter: f})
			if got := eventMessages(q.untilEnd()); !slices.Equal(got, want[name]) {
				t.Errorf("ring %d, history, --level %s: got %v, want %v", ring, name, got, want[name])
			}
		}
	}
}

func TestFilterLevelsAndNodes(t *testing.T) {
	cases := []struct {
		f    Filter
		pass []zerolog.Level
	}{
		{Filter{}, nil}, // nil: every level, known or not
		{Filter{}.AtLeast(zerolog.TraceLevel), allLevels},
		{Filter{}.AtLeast(zerolog.DebugLevel), allLevels[1:]},
		{Filter{MinLevel: zerolog.TraceLevel}, allLevels},
		{Filter{MinLevel: zerolog.WarnLevel}, allLevels[3:]},
		{Filter{}.AtLeast(zerolog.PanicLevel), allLevels[6:]},
	}
	for _, c := range cases {
		for _, l := range append(slices.Clone(allLevels), zerolog.NoLevel, zerolog.Disabled, zerolog.Level(42), zerolog.Level(-7)) {
			if got, want := c.f.matchLevel(l), c.pass == nil || slices.Contains(c.pass, l); got != want {
				t.Errorf("filter %+v, level %v: pass %v, want %v", c.f, l, got, want)
			}
		}
	}
	id := uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	for _, n := range []string{"web-1", id.String(), strings.ToUpper(id.String()), strings.ReplaceAll(id.String(), "-", ""), "6ba7b810", "6BA7B810-9d"} {
		if f := (Filter{Nodes: []string{"other", n}}); !f.matchNode(id, "web-1") {
			t.Errorf("node %q does not match", n)
		}
	}
	for _, n := range []string{"web", "6ba7b81", "7ba7b810", "6ba7b810-9dad-11d1-80b4-00c04fd430c9", uuid.NewString()} {
		if f := (Filter{Nodes: []string{n}}); f.matchNode(id, "web-1") {
			t.Errorf("node %q matches", n)
		}
	}
}

// TestServiceAndNodeFilterAtSource: service and node filters, like the
// level filter, let nothing else cross the wire, live or from history (a
// shared capture file, with and without the ring).
func TestServiceAndNodeFilterAtSource(t *testing.T) {
	for _, ring := range []int{1000, 0} {
		h := startHub(t, func(c *HubConfig) {
			c.NodeName = "n1"
			c.RingEvents = ring
			c.Capture = CaptureConfig{Dir: t.TempDir(), Shared: "all"}
		})
		filters := map[string]Filter{
			"db":           {Services: []string{"db"}},
			"node by name": {Nodes: []string{"n1"}, Services: []string{"db"}},
			"other node":   {Nodes: []string{"n2", uuid.NewString()}},
		}
		want := map[string][]string{"db": {"db-0", "db-1", "db-2"}, "node by name": {"db-0", "db-1", "db-2"}, "other node": nil}
		live := map[string]*wireSub{}
		for name, f := range filters {
			live[name] = dialWire(t, h.PubEndpoint(), subscribeReq{Follow: true, Filter: f})
			if _, end := live[name].frame(); !end {
				t.Fatal("live stream does not start with END")
			}
		}
		for i := 0; i < 3; i++ {
			for _, svc := range []string{"api", "db"} {
				if err := h.Ingest(svc, []byte(`{"level":"info","message":"`+svc+"-"+strconv.Itoa(i)+`"}`)); err != nil {
					t.Fatal(err)
				}
			}
		}
		// A last event that every filter above passes, or none, marks the
		// end of the live part.
		h.Ingest("db", []byte(`{"level":"info","message":"marker"}`))
		for name, f := range filters {
			q := dialWire(t, h.PubEndpoint(), subscribeReq{Since: time.Now().Add(-time.Hour).UnixNano(), Filter: f})
			hist := eventMessages(q.untilEnd())
			if w := want[name]; w != nil {
				w = append(slices.Clone(w), "marker")
				if got := eventMessages(live[name].until("marker")); !slices.Equal(got, w) {
					t.Errorf("ring %d, live, %s: got %v, want %v", ring, name, got, w)
				}
				if !slices.Equal(hist, w) {
					t.Errorf("ring %d, history, %s: got %v, want %v", ring, name, hist, w)
				}
			} else if len(hist) != 0 {
				t.Errorf("ring %d, history, %s: got %v, want nothing", ring, name, hist)
			}
		}
		// The two matching live streams, 4 events each, and nothing more
		// (the count follows the write the client has already read).
		waitFor(t, "8 live events delivered", func() bool { return h.Stats().Delivered == 8 })
	}
}
