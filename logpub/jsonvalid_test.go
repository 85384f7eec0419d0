package logpub

import (
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkValidJSON measures the hub's JSON check on a typical zerolog
// line against encoding/json.Valid, the baseline it replaces, in the same
// run (ratio > 1: ours is faster).
func BenchmarkValidJSON(b *testing.B) {
	line := []byte(`{"level":"info","service":"api","path":"/orders/42","status":200,"took":27.47,"req":951,"user":"ada lovelace","message":"request handled in the usual way","time":"2026-11-27T05:35:53Z"}`)
	var base time.Duration
	const baseRuns = 20000
	start := time.Now()
	for i := 0; i < baseRuns; i++ {
		if !json.Valid(line) {
			b.Fatal("baseline says invalid")
		}
	}
	base = time.Since(start) / baseRuns
	b.SetBytes(int64(len(line)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !validJSON(line) {
			b.Fatal("invalid")
		}
	}
	b.StopTimer()
	ours := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(base.Nanoseconds()), "stdlib-ns/op")
	b.ReportMetric(float64(base)/float64(ours), "speedup")
}
