package faults

import (
	"bufio"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

// app is an application logging through logpub.Writer into a logd's
// writer endpoint (a unix socket, so the test process reaches a logd in
// any namespace). Each event carries the app's run id and its index.
type app struct {
	t       *testing.T
	run     string
	service string
	w       *logpub.Writer
	log     zerolog.Logger
	sent    int
	closed  bool
	stats   logpub.WriterStats
}

func newApp(t *testing.T, endpoint, service string) *app {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: endpoint, Service: service, CloseTimeout: 20 * time.Second})
	a := &app{t: t, run: hex.EncodeToString(b[:]), service: service, w: w}
	a.log = zerolog.New(w).With().Timestamp().Str("run", a.run).Logger()
	t.Cleanup(func() { a.close() })
	return a
}

// write logs n events, every's apart (0: as fast as possible).
func (a *app) write(n int, every time.Duration) {
	for range n {
		a.log.Info().Int("i", a.sent).Str("pad", "0123456789abcdefghijklmnopqrstuvwxyz").Msg("fault test event")
		a.sent++
		if every > 0 {
			time.Sleep(every) // the app's own pace, not a wait for a condition
		}
	}
}

// close flushes (waiting for logd's acks up to the close timeout) and
// returns the writer's counters.
func (a *app) close() logpub.WriterStats {
	if !a.closed {
		a.closed = true
		_ = a.w.Close()
		a.stats = a.w.Stats()
	}
	return a.stats
}

// capture is what a logd's capture files hold of one app run.
type capture struct {
	seen    map[int]int // index → times found
	lines   int         // every line in the files, of any app
	corrupt int         // lines that are not JSON (torn writes)
	// recovered: events found whole after a torn fragment on its line
	recovered int
	files     int
}

// readCapture reads every capture file (plain and gzip) under dir.
func readCapture(t *testing.T, dir, run string) capture {
	t.Helper()
	c := capture{seen: map[int]int{}}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") || !strings.Contains(d.Name(), ".log") {
			return nil
		}
		c.files++
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		var r io.Reader = f
		if strings.HasSuffix(p, ".gz") {
			gz, err := gzip.NewReader(f)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			defer gz.Close()
			r = gz
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			c.lines++
			var ev struct {
				Run *string `json:"run"`
				I   *int    `json:"i"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				c.corrupt++
				// A torn write followed by a whole event on the same line:
				// the event is there, after the fragment.
				if !tornSuffix(sc.Bytes(), &ev) {
					continue
				}
				c.recovered++
			}
			if ev.Run != nil && *ev.Run == run && ev.I != nil {
				c.seen[*ev.I]++
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatalf("read capture %s: %v", dir, err)
	}
	return c
}

// ledger accounts for every event of an app run.
type ledger struct {
	Sent       int    // events the app wrote
	Acked      uint64 // acknowledged by logd as captured
	Dropped    uint64 // dropped by the writer, and counted
	Captured   int    // distinct events found in the capture files
	Duplicates int    // extra copies found (at-least-once after a crash)
	Missing    int    // sent, not in the files
	Lost       int    // missing and not counted as dropped: must be 0
}

func (l ledger) String() string {
	return fmt.Sprintf("sent %d, acked %d, captured %d, dropped-and-counted %d, duplicates %d, lost %d",
		l.Sent, l.Acked, l.Captured, l.Dropped, l.Duplicates, l.Lost)
}

// account closes the app and checks its events against the capture.
func account(t *testing.T, a *app, c capture) ledger {
	t.Helper()
	st := a.close()
	l := ledger{Sent: a.sent, Acked: st.Acked, Dropped: st.Dropped}
	for i := range a.sent {
		switch n := c.seen[i]; {
		case n == 0:
			l.Missing++
		default:
			l.Captured++
			l.Duplicates += n - 1
		}
	}
	if l.Missing > int(l.Dropped) {
		l.Lost = l.Missing - int(l.Dropped)
	}
	if l.Lost != 0 {
		t.Errorf("%s: events lost without being counted: %v", a.service, l)
	}
	if uint64(l.Captured) < l.Acked {
		t.Errorf("%s: fewer events in the capture files than logd acknowledged: %v", a.service, l)
	}
	if st.Accepted != st.Acked+st.Dropped {
		t.Errorf("%s: writer counters do not add up: %+v", a.service, st)
	}
	return l
}

// tornSuffix finds a whole JSON event at the end of a line that starts
// with a torn fragment, and decodes it into ev.
func tornSuffix(line []byte, ev any) bool {
	for i := 1; i < len(line); i++ {
		if line[i] == '{' && json.Valid(line[i:]) {
			return json.Unmarshal(line[i:], ev) == nil
		}
	}
	return false
}
