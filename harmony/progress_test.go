package harmony

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgressMeterAndPrinter(t *testing.T) {
	m := NewProgressMeter(100)
	m.start = time.Now().Add(-10 * time.Second)
	m.samples = []sample{{at: time.Now().Add(-2 * time.Second), done: 20, lines: 2000}}
	p := m.Update(CollectorStats{Committed: 40, Lines: 4000}, VentilatorStats{Sent: 45, Dispatched: 42, InFlight: map[string]int{"a": 2}})
	if p.Rate < 9 || p.Rate > 11 || p.LineRate < 900 || p.LineRate > 1100 {
		t.Fatalf("rate %.1f tasks/s, %.0f lines/s; want about 10 and 1000", p.Rate, p.LineRate)
	}
	if p.ETA < 5*time.Second || p.ETA > 7*time.Second || p.Resent != 3 {
		t.Fatalf("ETA %v, resent %d; want about 6 s and 3", p.ETA, p.Resent)
	}
	var bar bytes.Buffer
	(&ProgressPrinter{W: &bar, TTY: true}).Print(p)
	if s := bar.String(); !strings.HasPrefix(s, "\r[############------------------] 40/100 tasks") || !strings.Contains(s, "ETA 6s") {
		t.Fatalf("bar %q", s)
	}
	var plain bytes.Buffer
	pp := &ProgressPrinter{W: &plain}
	pp.Print(p)
	pp.Print(p) // within the interval: nothing
	p.Finished, p.Done = true, 100
	pp.Print(p)
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "40/100 tasks") || !strings.Contains(lines[1], "done in") {
		t.Fatalf("plain progress %q", plain.String())
	}
}
