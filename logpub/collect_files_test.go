package logpub

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// TestCollectorResumesFromOriginCaptureFiles: the origin's ring no longer
// has what the collector missed, its capture files (rotated, compressed)
// do: the collector gets it all, with the sequences, and no gap.
func TestCollectorResumesFromOriginCaptureFiles(t *testing.T) {
	capDir := t.TempDir()
	o := startOrigin(t, "origin", func(c *HubConfig) {
		c.RingEvents = 50
		c.Capture = CaptureConfig{Dir: capDir, MaxSize: 16 << 10}
	})
	api, db := o.app(t, "api"), o.app(t, "db")
	dir, state := t.TempDir(), t.TempDir()
	c1 := newTestCollector(t, dir, state, nil)
	c1.SetPeers([]CollectorPeer{o.peer})
	logN(api, 0, 20)
	waitCollected(t, c1, 20)
	c1.Close()
	logN(api, 20, 500)
	logN(db, 0, 30) // a source the collector never saw
	logN(api, 520, 100)
	api.waitAcked(t)
	db.waitAcked(t)
	c2 := newTestCollector(t, dir, state, nil)
	c2.SetPeers([]CollectorPeer{o.peer})
	waitCollected(t, c2, 630)
	for svc, a := range map[string]*app{"api": api, "db": db} {
		if got, want := collectedFile(t, dir, "origin", svc), strings.Join(a.lines(), ""); got != want {
			t.Fatalf("%s: collected %d lines, want %d", svc, strings.Count(got, "\n"), len(a.lines()))
		}
		checkEnvelopes(t, dir, o, svc, len(a.lines()))
	}
	if st := c2.Stats(); st.Missed != 0 || st.Collected != 630 {
		t.Fatalf("stats %+v", st)
	}
}

// ingestN sends n events numbered from first through Hub.Ingest (one run
// of the sequence index each) and returns their lines.
func ingestN(t *testing.T, h *Hub, first, n int) []string {
	t.Helper()
	var l []string
	for i := first; i < first+n; i++ {
		line := fmt.Sprintf(`{"level":"info","i":%d,"pad":"%s","message":"ingested"}`+"\n", i, strings.Repeat("x", i%40))
		if err := h.Ingest("api", []byte(line)); err != nil {
			t.Fatal(err)
		}
		l = append(l, line)
	}
	return l
}

// TestCollectorCountsWhatPrunedFilesLost: the origin keeps one rotated
// file; what it pruned is a gap, what it kept is collected with its
// sequences.
func TestCollectorCountsWhatPrunedFilesLost(t *testing.T) {
	capDir := t.TempDir()
	o := startOrigin(t, "origin", func(c *HubConfig) {
		c.RingEvents = 10
		c.Capture = CaptureConfig{Dir: capDir, MaxSize: 4 << 10, MaxBackups: 1, NoCompress: true}
	})
	dir, state := t.TempDir(), t.TempDir()
	c1 := newTestCollector(t, dir, state, nil)
	c1.SetPeers([]CollectorPeer{o.peer})
	lines := ingestN(t, o.hub, 0, 5)
	waitCollected(t, c1, 5)
	c1.Close()
	lines = append(lines, ingestN(t, o.hub, 5, 295)...)
	waitFor(t, "pruning", func() bool {
		ents, _ := os.ReadDir(capDir)
		n := 0
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") { // not the capture indexes
				n++
			}
		}
		return n == 2
	})
	c2 := newTestCollector(t, dir, state, nil)
	c2.SetPeers([]CollectorPeer{o.peer})
	waitFor(t, "collected or missed", func() bool { s := c2.Stats(); return s.Collected+s.Missed == 295 && s.Collected > 10 })
	st := c2.Stats()
	miss := int(st.Missed)
	want := strings.Join(lines[:5], "") + strings.Join(lines[5+miss:], "")
	if got := collectedFile(t, dir, "origin", "api"); got != want {
		t.Fatalf("collected %d lines, want %d (missed %d)", strings.Count(got, "\n"), 300-miss, miss)
	}
	if st.Gaps != 1 || miss == 0 {
		t.Fatalf("stats %+v", st)
	}
	checkEnvelopesFrom(t, dir, o, "api", 5+1+miss)
}

// TestCollectorIgnoresEditedOriginFiles: capture files changed behind the
// origin's back do not match its sequence index: nothing of them is sent
// under a wrong sequence; the collector counts the gap.
func TestCollectorIgnoresEditedOriginFiles(t *testing.T) {
	capDir := t.TempDir()
	o := startOrigin(t, "origin", func(c *HubConfig) {
		c.RingEvents = 10
		c.Capture = CaptureConfig{Dir: capDir}
	})
	dir, state := t.TempDir(), t.TempDir()
	c1 := newTestCollector(t, dir, state, nil)
	c1.SetPeers([]CollectorPeer{o.peer})
	lines := ingestN(t, o.hub, 0, 5)
	waitCollected(t, c1, 5)
	c1.Close()
	lines = append(lines, ingestN(t, o.hub, 5, 100)...)
	// One byte moves from event 7 to event 8: the same lines, the same
	// size, but runs 7 and 8 no longer match; events 5 and 6 before them
	// still do, and are not sent either.
	p := filepath.Join(capDir, "api.log")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(strings.Replace(string(b), `"i":7,"pad":"x`, `"i":7,"pad":"`, 1), `"i":8,"pad":"`, `"i":8,"pad":"x`, 1)
	if len(edited) != len(b) || edited == string(b) {
		t.Fatal("edit failed")
	}
	if err := os.WriteFile(p, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	c2 := newTestCollector(t, dir, state, nil)
	c2.SetPeers([]CollectorPeer{o.peer})
	waitFor(t, "the ring's events and the gap", func() bool { s := c2.Stats(); return s.Collected == 10 && s.Missed == 90 })
	if got, want := collectedFile(t, dir, "origin", "api"), strings.Join(lines[:5], "")+strings.Join(lines[95:], ""); got != want {
		t.Fatalf("collected:\n%s\nwant:\n%s", got, want)
	}
}

// writeJournalCase writes n capture lines of service api in dir and the
// journal records of n+extra events, the first prevN of them in .api.env.1.
func writeJournalCase(t *testing.T, dir string, n, extra, prevN int) {
	t.Helper()
	var capB, prevB, curB []byte
	node := uuid.New()
	for i := 0; i < n+extra; i++ {
		line := []byte(fmt.Sprintf(`{"i":%d}`+"\n", i))
		if i < n {
			capB = append(capB, line...)
		}
		rec := appendEnvRecord(nil, &Event{Node: node, Source: 1, Seq: uint64(i + 1), Received: time.Unix(0, int64(i)), Line: line})
		if i < prevN {
			prevB = append(prevB, rec...)
		} else {
			curB = append(curB, rec...)
		}
	}
	os.WriteFile(filepath.Join(dir, "api.log"), capB, 0o644)
	if prevN > 0 {
		os.WriteFile(journalPath(dir, "api")+".1", prevB, 0o644)
	}
	os.WriteFile(journalPath(dir, "api"), curB, 0o644)
}

func TestRecoverJournalCutsUncapturedRecords(t *testing.T) {
	for _, c := range []struct{ n, extra, prevN int }{
		{50_000, 3, 0}, // a journal larger than the recovery window
		{110, 2, 100},  // the cut in the current journal, beside a previous one
		{100, 5, 103},  // the cut reaches into the previous journal
		{0, 4, 0},      // nothing captured yet
		{20, 0, 0},     // nothing to cut
	} {
		dir := t.TempDir()
		writeJournalCase(t, dir, c.n, c.extra, c.prevN)
		var last uint64
		calls := 0
		err := recoverJournal(dir, "api", zerolog.Nop(), func(_ string, e *Envelope) { calls++; last = max(last, e.Seq) })
		if err != nil || last != uint64(c.n) || calls == 0 && c.n > 0 || calls > c.n {
			t.Fatalf("%+v: %d records, last seq %d, %v", c, calls, last, err)
		}
		envs, err := ReadEnvelopes(dir, "api")
		if err != nil || len(envs) != c.n {
			t.Fatalf("%+v: %d envelopes left, %v", c, len(envs), err)
		}
	}
}
