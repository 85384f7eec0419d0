package harmony

import (
	"context"
	"fmt"
	"io"
)

// Report sums up what a batch met on its way.
type Report struct {
	Tasks    int       `json:"tasks"`
	Lines    int64     `json:"lines"`
	Bad      int64     `json:"bad"`       // lines that could not be processed
	BadLines []BadLine `json:"bad_lines"` // the first of them, in source order
}

// MaxReportedBad bounds Report.BadLines; Report.Bad counts them all.
const MaxReportedBad = 1000

func (r *Report) addBad(b ...BadLine) {
	r.Bad += int64(len(b))
	for _, x := range b {
		if len(r.BadLines) < MaxReportedBad {
			r.BadLines = append(r.BadLines, x)
		}
	}
}

// processTask runs job over one task and turns bad line indexes into
// source line numbers; details beyond MaxBadDetail are only counted.
func processTask(job Job, source string, firstLine uint64, data []byte) (out []byte, bad uint32, details []BadLine, err error) {
	out, err = job.Process(data, func(i int, reason string) {
		bad++
		if len(details) < MaxBadDetail {
			if len(reason) > 200 {
				reason = reason[:200]
			}
			details = append(details, BadLine{Source: source, Line: firstLine + uint64(i), Reason: reason})
		}
	})
	return out, bad, details, err
}

// RunLocal processes tasks in this process, one after the other, and writes
// the output to w. It is the reference a distributed batch must equal byte
// for byte, and the single-process baseline of the benchmarks.
func RunLocal(ctx context.Context, job Job, tasks []Task, w io.Writer) (Report, error) {
	rep := Report{Tasks: len(tasks)}
	m := job.NewMerger(w)
	for i, t := range tasks {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		out, nbad, details, err := processTask(job, t.Source, t.FirstLine, t.Data)
		if err != nil {
			return rep, fmt.Errorf("harmony: task %d (%s:%d): %w", i, t.Source, t.FirstLine, err)
		}
		rep.Lines += int64(t.Lines)
		rep.Bad += int64(nbad) - int64(len(details))
		rep.addBad(details...)
		if err := m.Add(out); err != nil {
			return rep, fmt.Errorf("harmony: merge task %d: %w", i, err)
		}
	}
	return rep, m.Close()
}
