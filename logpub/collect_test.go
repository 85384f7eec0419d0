package logpub

import (
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// origin is a hub on loopback with its node identity, as a collector sees it.
type testOrigin struct {
	hub  *Hub
	peer CollectorPeer
}

func startOrigin(t *testing.T, name string, mod func(*HubConfig)) *testOrigin {
	t.Helper()
	id := uuid.New()
	h := startHub(t, func(c *HubConfig) {
		c.Node, c.NodeName = id, name
		if mod != nil {
			mod(c)
		}
	})
	return &testOrigin{hub: h, peer: CollectorPeer{ID: id, Name: name, Endpoint: h.PubEndpoint()}}
}

func (o *testOrigin) app(t *testing.T, service string) *app {
	return newApp(t, WriterOptions{Endpoint: o.hub.WriterEndpoint(), Service: service})
}

func newTestCollector(t *testing.T, dir, state string, mod func(*CollectorConfig)) *Collector {
	t.Helper()
	cfg := DefaultCollectorConfig()
	cfg.Self = uuid.New()
	cfg.Dir, cfg.StateDir = dir, state
	cfg.Retry, cfg.SaveEvery, cfg.IdleResume = 50*time.Millisecond, 50*time.Millisecond, 300*time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewCollector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// logN logs n events numbered from first.
func logN(a *app, first, n int) {
	for i := first; i < first+n; i++ {
		a.log.Info().Int("i", i).Str("pad", strings.Repeat("x", i%40)).Msg("collected")
	}
}

// collectedFile reads the collected capture of one origin and service
// (rotated files first).
func collectedFile(t *testing.T, dir, origin, service string) string {
	t.Helper()
	got, _ := readCollected(dir, origin, service)
	return got
}

func readCollected(dir, origin, service string) (string, error) {
	d := filepath.Join(dir, origin)
	c := &capture{cfg: CaptureConfig{Dir: d}}
	_, all := c.backups(service)
	var sb strings.Builder
	for _, p := range append(all, filepath.Join(d, service+".log")) {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			return "", err
		}
		sb.Write(b)
	}
	return sb.String(), nil
}

func waitCollected(t *testing.T, c *Collector, n uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for c.Stats().Collected < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d collected events: %+v", n, c.Stats())
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// checkEnvelopes checks the journal against the capture: one record per
// line, of this origin, CRC and length matching, sequences 1..n per source.
func checkEnvelopes(t *testing.T, dir string, o *testOrigin, service string, lines int) {
	t.Helper()
	checkEnvelopesGap(t, dir, o, service, lines, -1)
}

// checkEnvelopesFrom checks the envelopes of a capture with one gap, before
// the record of the event with sequence seqAfterGap.
func checkEnvelopesFrom(t *testing.T, dir string, o *testOrigin, service string, seqAfterGap int) {
	t.Helper()
	envs, _ := ReadEnvelopes(filepath.Join(dir, o.peer.Name), service)
	at := -1
	for i, e := range envs {
		if int(e.Seq) == seqAfterGap {
			at = i
		}
	}
	if at < 0 {
		t.Fatalf("no envelope of seq %d", seqAfterGap)
	}
	checkEnvelopesGap(t, dir, o, service, len(envs), at)
}

func checkEnvelopesGap(t *testing.T, dir string, o *testOrigin, service string, lines, gapAt int) {
	t.Helper()
	envs, err := ReadEnvelopes(filepath.Join(dir, o.peer.Name), service)
	if err != nil {
		t.Fatal(err)
	}
	content := collectedFile(t, dir, o.peer.Name, service)
	ls := strings.SplitAfter(content, "\n")
	ls = ls[:len(ls)-1]
	if len(envs) != lines || len(ls) != lines {
		t.Fatalf("%s/%s: %d envelopes, %d lines, want %d", o.peer.Name, service, len(envs), len(ls), lines)
	}
	seq := map[uint64]uint64{}
	for i, e := range envs {
		if e.Node != o.peer.ID || int(e.Len) != len(ls[i]) || e.CRC != crc32.ChecksumIEEE([]byte(ls[i])) {
			t.Fatalf("envelope %d %+v does not describe line %q", i, e, ls[i])
		}
		if e.Seq != seq[e.Source]+1 && !(i == gapAt && e.Seq > seq[e.Source]) {
			t.Fatalf("envelope %d: seq %d after %d", i, e.Seq, seq[e.Source])
		}
		seq[e.Source] = e.Seq
		if time.Since(e.Received) > time.Minute || e.Received.After(time.Now()) {
			t.Fatalf("envelope %d: received %v", i, e.Received)
		}
	}
}

func TestCollectorTwoHubsByteIdenticalWithEnvelope(t *testing.T) {
	a, b := startOrigin(t, "node-a", nil), startOrigin(t, "node-b", nil)
	apiA, apiB, wrk := a.app(t, "api"), b.app(t, "api"), b.app(t, "worker")
	logN(apiA, 0, 300) // history, from the origins' rings
	apiA.log.Log().Msg("an event without a level is collected too")
	logN(apiB, 0, 200)
	logN(wrk, 0, 100)
	for _, x := range []*app{apiA, apiB, wrk} {
		x.waitAcked(t)
	}
	dir := t.TempDir()
	var archived []string
	c := newTestCollector(t, dir, t.TempDir(), nil)
	self := CollectorPeer{ID: c.cfg.Self, Name: "self", Endpoint: a.peer.Endpoint}
	c.SetPeers([]CollectorPeer{a.peer, b.peer, self})
	waitCollected(t, c, 601)
	logN(apiA, 300, 300) // live
	logN(wrk, 100, 50)
	waitCollected(t, c, 951)
	_ = archived
	for _, k := range []struct {
		o   *testOrigin
		svc string
		app *app
	}{{a, "api", apiA}, {b, "api", apiB}, {b, "worker", wrk}} {
		want := strings.Join(k.app.lines(), "")
		if got := collectedFile(t, dir, k.o.peer.Name, k.svc); got != want {
			t.Fatalf("%s/%s: collected %d bytes, want %d byte-identical", k.o.peer.Name, k.svc, len(got), len(want))
		}
		checkEnvelopes(t, dir, k.o, k.svc, len(k.app.lines()))
	}
	st := c.Stats()
	if st.Collected != 951 || st.Missed != 0 || st.Deduped != 0 || len(st.Origins) != 2 || !st.Origins[0].Connected {
		t.Fatalf("stats %+v", st)
	}
	// Nothing collected was published again by the origins' hubs.
	if a.hub.Stats().Received != 601 {
		t.Fatalf("origin a received %d", a.hub.Stats().Received)
	}
}

// TestCollectedFilesBesideOwnCaptures: the collector's directories inside
// its logd's capture directory leave that hub's --since history and its
// rotation alone.
func TestCollectedFilesBesideOwnCaptures(t *testing.T) {
	capDir := t.TempDir()
	self := startOrigin(t, "self", func(c *HubConfig) { c.Capture = CaptureConfig{Dir: capDir}; c.RingEvents = 5 })
	other := startOrigin(t, "other", nil)
	mine, theirs := self.app(t, "api"), other.app(t, "api")
	logN(mine, 0, 20)
	logN(theirs, 0, 30)
	mine.waitAcked(t)
	c := newTestCollector(t, capDir, t.TempDir(), func(c *CollectorConfig) { c.Self = self.peer.ID })
	c.SetPeers([]CollectorPeer{self.peer, other.peer})
	waitCollected(t, c, 30)
	st, err := Subscribe(context.Background(), self.hub.PubEndpoint(), SubscribeOptions{Since: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got strings.Builder
	for {
		e, err := st.Next()
		if err != nil {
			break
		}
		got.Write(e.Line)
	}
	if got.String() != strings.Join(mine.lines(), "") {
		t.Fatalf("--since on the collecting hub: %d lines, want its own 20", strings.Count(got.String(), "\n"))
	}
	if s := collectedFile(t, capDir, "other", "api"); s != strings.Join(theirs.lines(), "") {
		t.Fatalf("collected %d lines", strings.Count(s, "\n"))
	}
}

func TestCollectorResumesAcrossRestartWithoutLossOrDuplicate(t *testing.T) {
	o := startOrigin(t, "origin", nil)
	api := o.app(t, "api")
	dir, state := t.TempDir(), t.TempDir()
	c1 := newTestCollector(t, dir, state, nil)
	c1.SetPeers([]CollectorPeer{o.peer})
	logN(api, 0, 200)
	waitCollected(t, c1, 200)
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	logN(api, 200, 300) // while no collector runs
	api.waitAcked(t)
	c2 := newTestCollector(t, dir, state, nil)
	c2.SetPeers([]CollectorPeer{o.peer})
	logN(api, 500, 100)
	waitCollected(t, c2, 400)
	want := strings.Join(api.lines(), "")
	if got := collectedFile(t, dir, "origin", "api"); got != want {
		t.Fatalf("collected %d bytes (%d lines), want %d (%d lines)", len(got), strings.Count(got, "\n"), len(want), len(api.lines()))
	}
	checkEnvelopes(t, dir, o, "api", 600)
	if st := c2.Stats(); st.Missed != 0 || st.Collected != 400 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := os.Stat(filepath.Join(state, cursorFileName)); err != nil {
		t.Fatal(err)
	}
}

// TestCollectorRecoversFromJournalAhead simulates a crash between the
// envelope journal and the capture write: the lines cut from the capture
// are collected again, once.
func TestCollectorRecoversFromJournalAhead(t *testing.T) {
	o := startOrigin(t, "origin", nil)
	api := o.app(t, "api")
	dir, state := t.TempDir(), t.TempDir()
	c1 := newTestCollector(t, dir, state, func(c *CollectorConfig) { c.SaveEvery = time.Hour })
	c1.SetPeers([]CollectorPeer{o.peer})
	logN(api, 0, 100)
	waitCollected(t, c1, 100)
	if err := c1.Close(); err != nil { // saves cursors at 100
		t.Fatal(err)
	}
	// The last 3 lines never reached the capture file; the journal and
	// the cursor file say they did.
	p := filepath.Join(dir, "origin", "api.log")
	b, _ := os.ReadFile(p)
	cut := len(b)
	for i := 0; i < 3; i++ {
		cut = strings.LastIndexByte(string(b[:cut-1]), '\n') + 1
	}
	if err := os.WriteFile(p, b[:cut], 0o644); err != nil {
		t.Fatal(err)
	}
	cf, _ := loadCursors(state)
	for _, co := range cf.Origins {
		for k, s := range co.Sources {
			s.Seq = 97 // as if saved before the last write
			co.Sources[k] = s
		}
	}
	if err := saveCursors(state, cf); err != nil {
		t.Fatal(err)
	}
	c2 := newTestCollector(t, dir, state, nil)
	c2.SetPeers([]CollectorPeer{o.peer})
	logN(api, 100, 10)
	waitCollected(t, c2, 13)
	if got, want := collectedFile(t, dir, "origin", "api"), strings.Join(api.lines(), ""); got != want {
		t.Fatalf("collected %d lines, want %d", strings.Count(got, "\n"), len(api.lines()))
	}
	checkEnvelopes(t, dir, o, "api", 110)
}

func TestCollectorCountsGapsTheOriginCannotFill(t *testing.T) {
	o := startOrigin(t, "origin", func(c *HubConfig) { c.RingEvents = 50 })
	api := o.app(t, "api")
	dir, state := t.TempDir(), t.TempDir()
	c1 := newTestCollector(t, dir, state, nil)
	c1.SetPeers([]CollectorPeer{o.peer})
	logN(api, 0, 20)
	waitCollected(t, c1, 20)
	c1.Close()
	// While no collector runs: a new source logs 10 events, then api
	// logs 200; the ring of 50 keeps api's last 50 only.
	db := o.app(t, "db")
	logN(db, 0, 10)
	db.waitAcked(t)
	logN(api, 20, 200)
	api.waitAcked(t)
	c2 := newTestCollector(t, dir, state, nil)
	c2.SetPeers([]CollectorPeer{o.peer})
	waitFor(t, "the gaps", func() bool { s := c2.Stats(); return s.Collected == 50 && s.Missed == 160 })
	lines := api.lines()
	want := strings.Join(lines[:20], "") + strings.Join(lines[170:], "")
	if got := collectedFile(t, dir, "origin", "api"); got != want {
		t.Fatalf("collected %d lines, want %d", strings.Count(got, "\n"), 70)
	}
	if st := c2.Stats(); st.Gaps != 2 || st.Origins[0].Missed != 160 {
		t.Fatalf("stats %+v", st)
	}
	// Live events go on after the gap.
	logN(api, 220, 5)
	waitCollected(t, c2, 55)
}

func TestCollectorSlowCollectorResumesFromRing(t *testing.T) {
	o := startOrigin(t, "origin", func(c *HubConfig) { c.SubQueueEvents = 8 })
	api := o.app(t, "api")
	dir := t.TempDir()
	c := newTestCollector(t, dir, t.TempDir(), nil)
	c.SetPeers([]CollectorPeer{o.peer})
	waitFor(t, "connected", func() bool { s := c.Stats(); return len(s.Origins) == 1 && s.Origins[0].Connected })
	logN(api, 0, 5000)
	waitCollected(t, c, 5000)
	if got, want := collectedFile(t, dir, "origin", "api"), strings.Join(api.lines(), ""); got != want {
		t.Fatalf("collected %d lines, want 5000", strings.Count(got, "\n"))
	}
	st := c.Stats()
	if st.Missed != 0 {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("origin dropped for the collector %d times (resumes %d)", o.hub.Stats().SubscriberDrops, st.Resumes)
}

func TestCollectorFiltersAndDedupes(t *testing.T) {
	o := startOrigin(t, "origin", nil)
	api, db := o.app(t, "api"), o.app(t, "db")
	dir := t.TempDir()
	c := newTestCollector(t, dir, t.TempDir(), func(c *CollectorConfig) {
		c.MinLevel, c.Services = zerolog.WarnLevel, []string{"api"}
	})
	c.SetPeers([]CollectorPeer{o.peer})
	for i := 0; i < 20; i++ {
		api.log.Info().Int("i", i).Msg("info")
		api.log.Warn().Int("i", i).Msg("warn")
		db.log.Error().Int("i", i).Msg("other service")
	}
	waitFor(t, "filtered", func() bool { s := c.Stats(); return s.Collected == 20 && s.Filtered == 20 })
	got := collectedFile(t, dir, "origin", "api")
	if strings.Count(got, "\n") != 20 || strings.Contains(got, `"info"`) {
		t.Fatalf("collected:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "origin", "db.log")); !os.IsNotExist(err) {
		t.Fatalf("db collected: %v", err)
	}
	// Events received again are dropped by sequence.
	c.mu.Lock()
	var or *origin
	for _, x := range c.origins {
		or = x
	}
	c.mu.Unlock()
	d, _ := c.dir(or)
	var src uint64
	for s := range or.sources {
		src = s
	}
	again := []Event{{Node: o.peer.ID, Service: "api", Source: src, Seq: 2, Level: zerolog.WarnLevel, Line: []byte("{}\n")}}
	if err := c.flush(d, or, again); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Deduped != 1 || s.Collected != 20 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCollectorPeersComeAndGo(t *testing.T) {
	a := startOrigin(t, "a", nil)
	api := a.app(t, "api")
	dir := t.TempDir()
	c := newTestCollector(t, dir, t.TempDir(), func(c *CollectorConfig) { c.Nodes = []string{"a"} })
	other := CollectorPeer{ID: uuid.New(), Name: "b", Endpoint: "tcp://127.0.0.1:1"}
	c.SetPeers([]CollectorPeer{a.peer, other})
	logN(api, 0, 10)
	waitCollected(t, c, 10)
	if n := len(c.Stats().Origins); n != 1 {
		t.Fatalf("%d origins, want only a (Nodes filter)", n)
	}
	c.SetPeers(nil)
	waitFor(t, "a left", func() bool { s := c.Stats().Origins[0]; return !s.Present && !s.Connected })
	logN(api, 10, 10)
	api.waitAcked(t)
	c.SetPeers([]CollectorPeer{a.peer})
	waitCollected(t, c, 20)
	if got := collectedFile(t, dir, "a", "api"); got != strings.Join(api.lines(), "") {
		t.Fatalf("collected %d lines", strings.Count(got, "\n"))
	}
}

func TestCollectorBadConfigAndState(t *testing.T) {
	if _, err := NewCollector(CollectorConfig{}); err == nil {
		t.Fatal("no dir accepted")
	}
	if _, err := NewCollector(CollectorConfig{Dir: t.TempDir(), Services: []string{"../x"}}); err == nil {
		t.Fatal("bad service accepted")
	}
	state := t.TempDir()
	os.WriteFile(filepath.Join(state, cursorFileName), []byte("{not json"), 0o644)
	_, err := NewCollector(CollectorConfig{Dir: t.TempDir(), StateDir: state})
	if err == nil || !strings.Contains(err.Error(), cursorFileName) {
		t.Fatalf("corrupt cursor file: %v", err)
	}
	// A torn journal record is ignored.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "x"), 0o755)
	os.WriteFile(filepath.Join(dir, "x", ".api.env"), make([]byte, envRecordSize+5), 0o644)
	c, err := NewCollector(CollectorConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestCollectorCloseLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
	o := startOrigin(t, "origin", nil)
	api := o.app(t, "api")
	c := newTestCollector(t, t.TempDir(), t.TempDir(), func(c *CollectorConfig) { c.Capture.RotateEvery = time.Hour })
	c.SetPeers([]CollectorPeer{o.peer, {ID: uuid.New(), Name: "gone", Endpoint: "tcp://127.0.0.1:1"}})
	logN(api, 0, 10)
	waitCollected(t, c, 10)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c.SetPeers([]CollectorPeer{o.peer}) // after Close: nothing starts
	api.w.Close()
	o.hub.Close()
	_ = context.Background
}

// TestCollectorFollowsAnOriginRestart: a restarted origin logd has a new
// node UUID; its writers keep their source and sequence. The collector
// carries their cursors over: nothing twice, nothing silently missing.
func TestCollectorFollowsAnOriginRestart(t *testing.T) {
	wep := "ipc://" + filepath.Join(t.TempDir(), "w.sock")
	capDir := t.TempDir()
	o1 := startOrigin(t, "origin", func(c *HubConfig) { c.WriterEndpoint, c.Capture.Dir = wep, capDir })
	api := newApp(t, WriterOptions{Endpoint: wep, Service: "api"})
	dir := t.TempDir()
	c := newTestCollector(t, dir, t.TempDir(), nil)
	c.SetPeers([]CollectorPeer{o1.peer})
	logN(api, 0, 100)
	waitCollected(t, c, 100)
	o1.hub.Close()
	logN(api, 100, 50) // queued in the writer while no logd runs
	o2 := startOrigin(t, "origin", func(c *HubConfig) { c.WriterEndpoint, c.Capture.Dir = wep, capDir })
	c.SetPeers([]CollectorPeer{o2.peer})
	api.waitAcked(t)
	waitCollected(t, c, 150)
	if got, want := collectedFile(t, dir, "origin", "api"), strings.Join(api.lines(), ""); got != want {
		t.Fatalf("collected %d lines, want %d", strings.Count(got, "\n"), 150)
	}
	if st := c.Stats(); st.Missed != 0 || len(st.Origins) != 2 {
		t.Fatalf("stats %+v", st)
	}

	// What a resend looks like after a crash, and what a lost tail looks
	// like, on a third incarnation of the same name.
	c.mu.Lock()
	var src uint64
	for s := range c.origins[o2.peer.ID].sources {
		src = s
	}
	o3 := c.originLocked(uuid.New(), "origin")
	o3.known = false
	c.mu.Unlock()
	d, _ := c.dir(o3)
	var evs []Event
	for seq := uint64(146); seq <= 155; seq++ { // 146..150 collected already
		if seq == 152 {
			continue // never reached the third incarnation
		}
		evs = append(evs, Event{Node: o3.id, Service: "api", Source: src, Seq: seq, Level: zerolog.InfoLevel,
			Line: []byte(fmt.Sprintf(`{"level":"info","seq":%d}`+"\n", seq))})
	}
	if err := c.flush(d, o3, evs); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Deduped != 5 || st.Missed != 1 || st.Collected != 154 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCollectorOverCurve collects from a hub that requires CURVE, with the
// peer's keys; without them nothing is collected and the error is shown.
func TestCollectorOverCurve(t *testing.T) {
	k := newCurveKeys(t)
	o := startOrigin(t, "origin", func(c *HubConfig) { c.Curve = k.server() })
	api := o.app(t, "api")
	logN(api, 0, 30)
	api.waitAcked(t)
	dir := t.TempDir()
	c := newTestCollector(t, dir, t.TempDir(), nil)
	plain := o.peer
	c.SetPeers([]CollectorPeer{plain})
	waitFor(t, "the plaintext attempt to fail", func() bool {
		s := c.Stats()
		return len(s.Origins) == 1 && s.Origins[0].LastError != ""
	})
	keyed := o.peer
	keyed.Curve = k.admitted()
	c.SetPeers([]CollectorPeer{keyed})
	waitCollected(t, c, 30)
	if got := collectedFile(t, dir, "origin", "api"); got != strings.Join(api.lines(), "") {
		t.Fatalf("collected %d lines", strings.Count(got, "\n"))
	}
}

func TestCollectorForgetsLongGoneOrigins(t *testing.T) {
	state := t.TempDir()
	cf := &cursorFile{Version: 1, Origins: map[string]*cursorOrigin{
		uuid.NewString(): {Name: "old", Seen: time.Now().Add(-40 * 24 * time.Hour), Sources: map[string]cursorSource{"7": {Service: "api", Seq: 3}}},
		uuid.NewString(): {Name: "recent", Seen: time.Now().Add(-time.Hour), Sources: map[string]cursorSource{"9": {Service: "api", Seq: 5}}},
	}}
	if err := saveCursors(state, cf); err != nil {
		t.Fatal(err)
	}
	c := newTestCollector(t, t.TempDir(), state, nil)
	if st := c.Stats(); len(st.Origins) != 1 || st.Origins[0].Name != "recent" || st.Origins[0].Sources != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTwoCollectorsDoNotLoop: two collecting logds in one mesh collect
// each other too, but only what their own apps wrote: nothing collected
// travels further.
func TestTwoCollectorsDoNotLoop(t *testing.T) {
	a, h1, h2 := startOrigin(t, "a", nil), startOrigin(t, "c1", nil), startOrigin(t, "c2", nil)
	api, own := a.app(t, "api"), h2.app(t, "own")
	logN(api, 0, 40)
	logN(own, 0, 5)
	d1, d2 := t.TempDir(), t.TempDir()
	c1 := newTestCollector(t, d1, t.TempDir(), func(c *CollectorConfig) { c.Self = h1.peer.ID })
	c2 := newTestCollector(t, d2, t.TempDir(), func(c *CollectorConfig) { c.Self = h2.peer.ID })
	peers := []CollectorPeer{a.peer, h1.peer, h2.peer}
	c1.SetPeers(peers)
	c2.SetPeers(peers)
	waitCollected(t, c1, 45)
	waitCollected(t, c2, 40)
	logN(api, 40, 10)
	waitCollected(t, c1, 55)
	waitCollected(t, c2, 50)
	if s1, s2 := c1.Stats(), c2.Stats(); s1.Collected != 55 || s2.Collected != 50 {
		t.Fatalf("collected %d and %d, want 55 and 50", s1.Collected, s2.Collected)
	}
	for _, d := range []string{d1, d2} {
		if got := collectedFile(t, d, "a", "api"); got != strings.Join(api.lines(), "") {
			t.Fatalf("%s: %d lines of a", d, strings.Count(got, "\n"))
		}
	}
	if got := collectedFile(t, d1, "c2", "own"); got != strings.Join(own.lines(), "") {
		t.Fatalf("c1 collected %d lines of c2's own app", strings.Count(got, "\n"))
	}
	if ents, _ := os.ReadDir(filepath.Join(d2, "c1")); len(ents) != 0 {
		t.Fatalf("c2 collected from c1 what c1 collected: %v", ents)
	}
}
