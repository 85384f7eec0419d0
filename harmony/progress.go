package harmony

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
)

// NewBatchID returns a new random batch id.
func NewBatchID() BatchID { return BatchID(uuid.New()) }

// Progress is a batch's progress, for a progress bar or the dashboard.
type Progress struct {
	Done     int            `json:"done"` // tasks written out
	N        int            `json:"n"`
	Lines    int64          `json:"lines"`
	Bad      int64          `json:"bad"`
	Rate     float64        `json:"rate"`      // tasks per second, recent
	LineRate float64        `json:"line_rate"` // lines per second, recent
	ETA      time.Duration  `json:"eta"`       // 0 when unknown
	Elapsed  time.Duration  `json:"elapsed"`
	Resent   int64          `json:"resent"`    // task sends beyond the first
	InFlight map[string]int `json:"in_flight"` // tasks per worker endpoint
	Finished bool           `json:"finished"`
}

// ProgressMeter turns collector and ventilator snapshots into Progress,
// with rates smoothed over the last few seconds.
type ProgressMeter struct {
	n       int
	start   time.Time
	samples []sample
}

type sample struct {
	at    time.Time
	done  int
	lines int64
}

// NewProgressMeter starts measuring a batch of n tasks.
func NewProgressMeter(n int) *ProgressMeter {
	return &ProgressMeter{n: n, start: time.Now()}
}

// Update records a snapshot and returns the progress.
func (m *ProgressMeter) Update(c CollectorStats, v VentilatorStats) Progress {
	now := time.Now()
	m.samples = append(m.samples, sample{now, c.Committed, c.Lines})
	for len(m.samples) > 2 && now.Sub(m.samples[0].at) > 5*time.Second {
		m.samples = m.samples[1:]
	}
	p := Progress{Done: c.Committed, N: m.n, Lines: c.Lines, Bad: c.Bad, Elapsed: now.Sub(m.start),
		Resent: v.Sent - int64(v.Dispatched), InFlight: v.InFlight, Finished: c.Done}
	first := m.samples[0]
	if dt := now.Sub(first.at).Seconds(); dt > 0.2 {
		p.Rate = float64(c.Committed-first.done) / dt
		p.LineRate = float64(c.Lines-first.lines) / dt
	} else if el := p.Elapsed.Seconds(); el > 0 {
		p.Rate = float64(c.Committed) / el
		p.LineRate = float64(c.Lines) / el
	}
	if p.Rate > 0 && p.Done < p.N {
		p.ETA = time.Duration(float64(p.N-p.Done) / p.Rate * float64(time.Second))
	}
	return p
}

// ProgressPrinter shows progress on a terminal as a bar redrawn in place,
// or elsewhere as a plain line every Interval.
type ProgressPrinter struct {
	W        io.Writer
	TTY      bool
	Interval time.Duration // plain mode: time between lines (default 5 s)
	last     time.Time
}

// Print shows p.
func (pp *ProgressPrinter) Print(p Progress) {
	if !pp.TTY {
		every := pp.Interval
		if every <= 0 {
			every = 5 * time.Second
		}
		if !p.Finished && time.Since(pp.last) < every {
			return
		}
		pp.last = time.Now()
		fmt.Fprintf(pp.W, "harmony: %d/%d tasks, %d lines, %.0f lines/s, %d bad, ETA %s\n",
			p.Done, p.N, p.Lines, p.LineRate, p.Bad, eta(p))
		return
	}
	const width = 30
	filled := 0
	if p.N > 0 {
		filled = p.Done * width / p.N
	}
	bar := strings.Repeat("#", filled) + strings.Repeat("-", width-filled)
	fmt.Fprintf(pp.W, "\r[%s] %d/%d tasks  %.0f lines/s  ETA %s  ", bar, p.Done, p.N, p.LineRate, eta(p))
	if p.Finished {
		fmt.Fprintln(pp.W)
	}
}

func eta(p Progress) string {
	switch {
	case p.Finished:
		return "done in " + p.Elapsed.Round(time.Millisecond).String()
	case p.ETA <= 0:
		return "?"
	default:
		return p.ETA.Round(time.Second).String()
	}
}
