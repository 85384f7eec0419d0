package harmony

import (
	"context"
	"io"
	"testing"
)

func BenchmarkLocalFilter(b *testing.B) {
	data := genLines(100_000, 1)
	tasks := cut(data, "b.log", 2000)
	job := mustJob(b, "filter level>=warn msg~timeout|retry")
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, err := RunLocal(context.Background(), job, tasks, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(100_000*b.N)/b.Elapsed().Seconds(), "lines/s")
}
