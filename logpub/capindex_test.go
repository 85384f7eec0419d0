package logpub

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// queryHistory returns the history since t that a hub answers.
func queryHistory(t testing.TB, h *Hub, since time.Time, f Filter) []Event {
	t.Helper()
	st, err := Subscribe(context.Background(), h.PubEndpoint(), SubscribeOptions{Since: since, Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []Event
	for {
		e, err := st.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		e.Line = append([]byte(nil), e.Line...)
		out = append(out, e)
	}
}

func eventLines(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = string(e.Line)
	}
	return out
}

// waitArchives waits until the capture dir holds rotated files only in
// their compressed form, at least n of them.
func waitArchives(t testing.TB, dir string, n int) {
	t.Helper()
	waitFor(t, "compressed archives", func() bool {
		ents, _ := os.ReadDir(dir)
		gz := 0
		for _, e := range ents {
			name := e.Name()
			if strings.HasSuffix(name, ".log.gz") {
				gz++
			} else if strings.HasSuffix(name, ".log") && isBackupName(name, "") {
				return false
			}
		}
		return gz >= n
	})
}

// TestSharedCaptureHistoryByService: with every service in one capture
// file, --since --service api returns exactly api's events, with their
// service, from compressed rotated files, the current file and the ring,
// and again from the files alone after a restart.
func TestSharedCaptureHistoryByService(t *testing.T) {
	for _, ring := range []int{25, 0} {
		dir := t.TempDir()
		cfg := func(c *HubConfig) {
			c.RingEvents = ring
			c.Capture = CaptureConfig{Dir: dir, Shared: "all", MaxSize: 2048}
		}
		h := startHub(t, cfg)
		apps := map[string]*app{}
		for _, svc := range []string{"api", "db", "web"} {
			apps[svc] = newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: svc})
		}
		for i := 0; i < 60; i++ {
			for _, svc := range []string{"api", "db", "web"} {
				apps[svc].log.Info().Int("i", i).Str("svc", svc).Msg("shared")
				apps[svc].waitAcked(t) // interleave the services in the file
			}
		}
		waitArchives(t, dir, 3)
		check := func(what string, h *Hub) {
			t.Helper()
			for _, svc := range []string{"api", "db"} {
				got := queryHistory(t, h, time.Now().Add(-10*time.Minute), Filter{Services: []string{svc}})
				if !slices.Equal(eventLines(got), apps[svc].lines()) {
					t.Fatalf("ring %d, %s, --service %s: %d events, want exactly its %d", ring, what, svc, len(got), len(apps[svc].lines()))
				}
				for _, e := range got {
					if e.Service != svc || !e.History {
						t.Fatalf("ring %d, %s: event of service %q (history %v) in a query for %s", ring, what, e.Service, e.History, svc)
					}
				}
			}
			if got := queryHistory(t, h, time.Now().Add(-10*time.Minute), Filter{}); len(got) != 180 {
				t.Fatalf("ring %d, %s: %d events in all, want 180", ring, what, len(got))
			}
		}
		check("running", h)
		for _, a := range apps {
			a.w.Close()
		}
		h.Close()
		check("after restart", startHub(t, cfg))
	}
}

// TestHistoryBoundaryIsExact: every event has a unique receive time, and a
// --since at any event's receive time, to the nanosecond, returns exactly
// that event and the later ones, whether the answer starts in a compressed
// rotated file, the current file or the ring, and across the file/ring
// boundary: nothing lost, nothing repeated.
func TestHistoryBoundaryIsExact(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *HubConfig) {
		c.RingEvents = 40
		c.Capture = CaptureConfig{Dir: dir, MaxSize: 4096}
	}
	h := startHub(t, cfg)
	a := newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: "api"})
	for i := 0; i < 200; i++ {
		a.log.Info().Int("i", i).Msg("boundary") // zerolog's time: whole seconds
		if i%7 == 0 {
			a.waitAcked(t) // batches of several events
		}
	}
	a.waitAcked(t)
	waitArchives(t, dir, 3)
	check := func(what string, h *Hub) {
		t.Helper()
		all := queryHistory(t, h, time.Now().Add(-time.Hour), Filter{})
		if !slices.Equal(eventLines(all), a.lines()) {
			t.Fatalf("%s: full history differs from what was logged (%d vs %d events)", what, len(all), len(a.lines()))
		}
		for i := 1; i < len(all); i++ {
			if !all[i].Received.After(all[i-1].Received) {
				t.Fatalf("%s: receive times not strictly increasing at %d: %v then %v", what, i, all[i-1].Received, all[i].Received)
			}
		}
		for _, k := range []int{0, 1, 37, 80, 120, 159, 160, 161, 180, 199} {
			got := queryHistory(t, h, all[k].Received, Filter{})
			if !slices.Equal(eventLines(got), eventLines(all[k:])) {
				t.Fatalf("%s: since event %d's receive time: %d events, want %d", what, k, len(got), len(all)-k)
			}
			got = queryHistory(t, h, all[k].Received.Add(time.Nanosecond), Filter{})
			if !slices.Equal(eventLines(got), eventLines(all[k+1:])) {
				t.Fatalf("%s: since 1 ns after event %d: %d events, want %d", what, k, len(got), len(all)-k-1)
			}
		}
	}
	check("running", h)
	a.w.Close()
	h.Close()
	check("after restart", startHub(t, cfg))
}

// TestCaptureIndexDamage: a truncated or garbled index, or none, costs
// only precision: the lines are still served, by zerolog's time field.
func TestCaptureIndexDamage(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *HubConfig) { c.RingEvents, c.Capture = 0, CaptureConfig{Dir: dir} } // history from the files only
	h := startHub(t, cfg)
	a := newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: "api"})
	for i := 0; i < 20; i++ {
		a.log.Info().Int("i", i).Msg("damage")
		a.waitAcked(t)
	}
	a.w.Close()
	h.Close()
	idx := filepath.Join(dir, ".api.log.idx")
	b, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	for name, damaged := range map[string][]byte{
		"truncated": b[:len(b)/2+3],
		"garbled":   append(slices.Clone(b[:len(b)/2]), bytes.Repeat([]byte{0xff}, len(b)/2)...),
		"empty":     nil,
	} {
		if err := os.WriteFile(idx, damaged, 0o644); err != nil {
			t.Fatal(err)
		}
		h := startHub(t, cfg)
		got := queryHistory(t, h, time.Now().Add(-time.Hour), Filter{})
		if !slices.Equal(eventLines(got), a.lines()) {
			t.Fatalf("%s index: %d events, want %d", name, len(got), len(a.lines()))
		}
		h.Close()
	}
	// A capture file emptied behind the hub's back: its stale index is
	// dropped, not applied to new lines.
	os.WriteFile(idx, b, 0o644)
	os.Truncate(filepath.Join(dir, "api.log"), 0)
	h = startHub(t, cfg)
	if err := h.Ingest("api", []byte(`{"level":"info","message":"fresh"}`)); err != nil {
		t.Fatal(err)
	}
	got := queryHistory(t, h, time.Now().Add(-time.Minute), Filter{})
	if len(got) != 1 || !strings.Contains(string(got[0].Line), "fresh") || time.Since(got[0].Received) > time.Minute {
		t.Fatalf("after the file was emptied: %d events %v", len(got), eventLines(got))
	}
}

// TestReceiveTimesIncreaseAcrossRestart: a restarted hub stamps after the
// last receive time in its capture indexes, even when the clock is behind
// it (here, an index from an hour ahead).
func TestReceiveTimesIncreaseAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *HubConfig) { c.Capture = CaptureConfig{Dir: dir} }
	h := startHub(t, cfg)
	if err := h.Ingest("api", []byte(`{"message":"one"}`)); err != nil {
		t.Fatal(err)
	}
	h.Close()
	ahead := time.Now().Add(time.Hour).UnixNano()
	idx := filepath.Join(dir, ".api.log.idx")
	b := appendIdxRecord([]byte(idxMagic), idxRecord{off: 0, n: int64(len(`{"message":"one"}`) + 1), count: 1, recv: ahead, service: "api"})
	if err := os.WriteFile(idx, b, 0o644); err != nil {
		t.Fatal(err)
	}
	h = startHub(t, cfg)
	if err := h.Ingest("api", []byte(`{"message":"two"}`)); err != nil {
		t.Fatal(err)
	}
	got := queryHistory(t, h, time.Unix(0, ahead), Filter{})
	if len(got) != 2 || !strings.Contains(string(got[1].Line), "two") || got[1].Received.UnixNano() <= ahead {
		t.Fatalf("history since the index's last time: %v", eventLines(got))
	}
}

// TestTornLastLineIsCut: a capture file ending in a partial line (a hub
// killed mid-write) is cut back before the next write, so history has the
// whole lines and the new event, not a line glued onto a fragment.
func TestTornLastLineIsCut(t *testing.T) {
	dir := t.TempDir()
	whole := `{"level":"info","message":"whole"}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "api.log"), []byte(whole+`{"level":"info","mess`), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startHub(t, func(c *HubConfig) { c.RingEvents, c.Capture = 0, CaptureConfig{Dir: dir} })
	if err := h.Ingest("api", []byte(`{"level":"info","message":"next"}`)); err != nil {
		t.Fatal(err)
	}
	got := queryHistory(t, h, time.Now().Add(-time.Minute), Filter{})
	want := []string{`{"level":"info","message":"next"}` + "\n"}
	if !slices.Equal(eventLines(got), want) {
		t.Fatalf("history: %q, want %q", eventLines(got), want)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "api.log"))
	if string(b) != whole+want[0] {
		t.Fatalf("capture file: %q", b)
	}
}
