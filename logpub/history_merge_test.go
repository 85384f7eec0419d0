package logpub

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// counterOf returns the "i" field of a test line.
func counterOf(t testing.TB, line []byte) int {
	t.Helper()
	var v struct {
		I *int `json:"i"`
	}
	if err := json.Unmarshal(line, &v); err != nil || v.I == nil {
		t.Fatalf("line without a counter: %q (%v)", line, err)
	}
	return *v.I
}

// interleave logs n events numbered from first through the apps, in bursts
// of 1–5 events of one app at a time, each burst acknowledged before the
// next: the hub receives them in counter order. It returns the service of
// each counter and whether its event is a warning (every fourth).
func interleave(t *testing.T, rng *rand.Rand, apps []*app, services []string, first, n int, svcOf map[int]string) {
	t.Helper()
	for i := first; i < first+n; {
		k := rng.IntN(len(apps))
		for b := 1 + rng.IntN(5); b > 0 && i < first+n; b-- {
			if i%4 == 0 {
				apps[k].log.Warn().Int("i", i).Msg("merge")
			} else {
				apps[k].log.Info().Int("i", i).Msg("merge")
			}
			svcOf[i] = services[k]
			i++
		}
		apps[k].waitAcked(t)
	}
}

// TestHistoryInReceiveOrderAcrossServices: three services log in turn,
// in random bursts; with a ring of 30 events most history comes from each
// service's rotated (compressed, or plain) and current capture files. A hub's history
// must come out in exact receive order across all of them and the ring,
// with per-service order kept, for any --since (in a compressed archive,
// a current file, at the file/ring boundary) and any filter, before and
// after a restart, and across events captured before and after it.
func TestHistoryInReceiveOrderAcrossServices(t *testing.T) {
	t.Run("gzip", func(t *testing.T) { testHistoryInReceiveOrder(t, false) })
	t.Run("plain", func(t *testing.T) { testHistoryInReceiveOrder(t, true) })
}

func testHistoryInReceiveOrder(t *testing.T, plain bool) {
	dir := t.TempDir()
	cfg := func(c *HubConfig) {
		c.RingEvents = 30
		c.Capture = CaptureConfig{Dir: dir, MaxSize: 4096, NoCompress: plain}
	}
	services := []string{"api", "db", "web"}
	rng := rand.New(rand.NewPCG(1, 2))
	svcOf := map[int]string{}
	start := func() (*Hub, []*app) {
		h := startHub(t, cfg)
		var apps []*app
		for _, s := range services {
			apps = append(apps, newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: s}))
		}
		return h, apps
	}
	h, apps := start()
	const n = 450
	interleave(t, rng, apps, services, 0, n, svcOf)
	pattern := "-*.log"
	if !plain {
		waitArchives(t, dir, 6)
		pattern += ".gz"
	}
	for _, s := range services {
		if files, _ := filepath.Glob(filepath.Join(dir, s+pattern)); len(files) < 2 {
			t.Fatalf("service %s: %d rotated files %s, want at least 2", s, len(files), pattern)
		}
	}

	check := func(what string, h *Hub, total int) {
		t.Helper()
		all := queryHistory(t, h, time.Now().Add(-time.Hour), Filter{})
		if len(all) != total {
			t.Fatalf("%s: %d events, want %d", what, len(all), total)
		}
		last := map[string]int{}
		for k, e := range all {
			i := counterOf(t, e.Line)
			if i != k {
				t.Fatalf("%s: event %d of the history is counter %d: not in receive order", what, k, i)
			}
			if e.Service != svcOf[i] {
				t.Fatalf("%s: counter %d from service %q, want %q", what, i, e.Service, svcOf[i])
			}
			if p, ok := last[e.Service]; ok && p >= i {
				t.Fatalf("%s: service %s: counter %d after %d", what, e.Service, i, p)
			}
			last[e.Service] = i
			if k > 0 && !e.Received.After(all[k-1].Received) {
				t.Fatalf("%s: receive times not increasing at %d", what, k)
			}
		}
		ring := total - 30
		for _, k := range []int{1, 50, n / 2, ring - 31, ring - 1, ring, ring + 1, total - 1} {
			got := queryHistory(t, h, all[k].Received, Filter{})
			if !slices.Equal(eventLines(got), eventLines(all[k:])) {
				t.Fatalf("%s: since event %d: %d events, want %d in the same order", what, k, len(got), total-k)
			}
		}
		flt := Filter{MinLevel: zerolog.WarnLevel, Services: []string{"api", "web"}}
		var want []string
		for _, e := range all[n/3:] {
			if e.Level >= zerolog.WarnLevel && e.Service != "db" {
				want = append(want, string(e.Line))
			}
		}
		if got := queryHistory(t, h, all[n/3].Received, flt); !slices.Equal(eventLines(got), want) || len(want) == 0 {
			t.Fatalf("%s: warnings of api and web: %d events, want %d in the same order", what, len(got), len(want))
		}
	}
	check("running", h, n)
	for _, a := range apps {
		a.w.Close()
	}
	h.Close()

	h, apps = start()
	check("after restart", h, n)
	const more = 90
	interleave(t, rng, apps, services, n, more, svcOf)
	check("events from before and after the restart", h, n+more)
}

// TestHistoryUnindexedLinesOrder: lines without index records are ordered
// by zerolog's time field, never before the line before them in their
// file; a line without a time field keeps its place after the line before
// it. Capture files from before the index (a.log, b.log) interleave by
// their time fields; lines a crash left without records (api.log) stay
// where they are in their file, before the indexed lines after them.
func TestHistoryUnindexedLinesOrder(t *testing.T) {
	dir := t.TempDir()
	old := func(sec int, msg string) string {
		ts := time.Date(2026, 1, 1, 10, 0, sec, 0, time.UTC).Format(time.RFC3339)
		return fmt.Sprintf(`{"level":"info","time":%q,"message":%q}`+"\n", ts, msg)
	}
	write := func(name string, lines ...string) {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			f.WriteString(l)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write("a.log", old(0, "a0"), old(2, "a2"), old(4, "a4"))
	write("b.log", old(1, "b1"), old(3, "b3"), `{"level":"info","message":"b-no-time"}`+"\n", old(5, "b5"))

	cfg := func(c *HubConfig) { c.Capture = CaptureConfig{Dir: dir} }
	h := startHub(t, cfg)
	for _, m := range []string{"api1", "api2"} {
		if err := h.Ingest("api", []byte(`{"level":"info","message":"`+m+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()
	// A crash between a line and its index record, twice: one line without
	// a time field, one whose time field is before the line before it.
	write("api.log", `{"level":"info","message":"crash-no-time"}`+"\n", old(0, "crash-old-time"))

	h = startHub(t, cfg)
	for _, ev := range [][2]string{{"api", "api3"}, {"db", "db1"}, {"api", "api4"}} {
		if err := h.Ingest(ev[0], []byte(`{"level":"info","message":"`+ev[1]+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	since := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	messages := func(evs []Event) []string {
		var out []string
		for _, e := range evs {
			var v struct{ Message string }
			json.Unmarshal(e.Line, &v)
			out = append(out, v.Message)
		}
		return out
	}
	want := []string{"a0", "b1", "a2", "b3", "b-no-time", "a4", "b5", "api1", "api2", "crash-no-time", "crash-old-time", "api3", "db1", "api4"}
	check := func(what string, h *Hub) {
		t.Helper()
		got := queryHistory(t, h, since, Filter{})
		if !slices.Equal(messages(got), want) {
			t.Fatalf("%s: history %q, want %q", what, messages(got), want)
		}
		// An unindexed line's receive time is its time field, or none.
		if got[4].Service != "b" || !got[4].Received.IsZero() || !got[10].Received.Equal(time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)) {
			t.Fatalf("%s: unindexed lines: %+v, %+v", what, got[4], got[10])
		}
		got = queryHistory(t, h, since, Filter{Services: []string{"b", "api"}})
		wantBA := []string{"b1", "b3", "b-no-time", "b5", "api1", "api2", "crash-no-time", "crash-old-time", "api3", "api4"}
		if !slices.Equal(messages(got), wantBA) {
			t.Fatalf("%s: services b and api: %q, want %q", what, messages(got), wantBA)
		}
	}
	check("the last events in the ring", h)
	h.Close()
	check("from the files only", startHub(t, cfg))
}

// historyFiles opens the capture files a --since query of h would read
// (closed at the end of the test).
func historyFiles(t testing.TB, h *Hub, since time.Time) []fileSnap {
	t.Helper()
	s := &hubSub{h: h, next: map[uint64]uint64{}, nodeMatch: true, since: since}
	h.mu.Lock()
	s.snapshotLocked()
	h.mu.Unlock()
	t.Cleanup(func() {
		for _, f := range s.files {
			f.close()
		}
	})
	return s.files
}

// TestHistoryMergeStreams: the merge reads each service's files one after
// the other, all services abreast, and sends while it reads: when the
// first batch goes out, every service has started its first file and
// none has gone beyond its second, though each has five or more.
func TestHistoryMergeStreams(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, func(c *HubConfig) {
		c.RingEvents = 10
		c.Capture = CaptureConfig{Dir: dir, MaxSize: 16 << 10, NoCompress: true}
	})
	services := []string{"api", "db", "web"}
	const n = 6000
	for i := 0; i < n; i++ {
		line := fmt.Sprintf(`{"level":"info","i":%d,"message":"streams"}`, i)
		if err := h.Ingest(services[i%3], []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	since := time.Now().Add(-time.Hour)
	files := historyFiles(t, h, since)
	if len(files) != 3 {
		t.Fatalf("%d keys, want 3", len(files))
	}
	touched := func(fs *fileSnap) (started int) {
		for _, f := range fs.files {
			if pos, err := f.Seek(0, io.SeekCurrent); err == nil && pos > 0 {
				started++
			}
		}
		return started
	}
	batches, next := 0, 0
	err := readHistory(files, since, &Filter{}, h.cfg.Node, func(q []qent) error {
		if batches == 0 {
			for i := range files {
				if got := touched(&files[i]); got < 1 || got > 2 || len(files[i].files) < 5 {
					t.Errorf("service %s: %d of its %d files read at the first batch", files[i].key, got, len(files[i].files))
				}
			}
		}
		batches++
		for _, e := range q {
			if i := counterOf(t, e.ev.Line); i != next {
				t.Fatalf("event %d: counter %d", next, i)
			}
			next++
		}
		return nil
	})
	if err != nil || next != n-10 || batches < 5 {
		t.Fatalf("%d events in %d batches, want %d: %v", next, batches, n-10, err)
	}
}
