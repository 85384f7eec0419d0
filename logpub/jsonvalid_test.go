package logpub

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// BenchmarkValidJSON measures the hub's one-pass event check on a typical
// zerolog line against what it replaces, encoding/json.Valid plus
// utf8.Valid and a newline search, in the same run (speedup > 1: ours is
// faster).
func BenchmarkValidJSON(b *testing.B) {
	line := []byte(`{"level":"info","service":"api","path":"/orders/42","status":200,"took":27.47,"req":951,"user":"ada lovelace","message":"request handled in the usual way","time":"2026-11-27T05:35:53Z"}`)
	var base time.Duration
	const baseRuns = 20000
	start := time.Now()
	for i := 0; i < baseRuns; i++ {
		if !json.Valid(line) || !utf8.Valid(line) || bytes.IndexByte(line, '\n') >= 0 {
			b.Fatal("baseline says invalid")
		}
	}
	base = time.Since(start) / baseRuns
	b.SetBytes(int64(len(line)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !validEvent(line) {
			b.Fatal("invalid")
		}
	}
	b.StopTimer()
	ours := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(base.Nanoseconds()), "stdlib-ns/op")
	b.ReportMetric(float64(base)/float64(ours), "speedup")
}

// TestValidEventWordBoundaries puts each kind of byte that ends the
// eight-byte fast path at every offset of a long string and compares the
// check with encoding/json, utf8.Valid and a newline search.
func TestValidEventWordBoundaries(t *testing.T) {
	specials := []string{`"`, `\`, `\"`, `\u00e9`, `\x`, "\x01", "\x1f", "\n", "\x7f", "\xff", "é", "日本", "\xed\xa0\x80", "\xc3"}
	for _, sp := range specials {
		for off := 0; off < 40; off++ {
			line := []byte(`{"k":"` + strings.Repeat("x", off) + sp + strings.Repeat("y", 20) + `","n":1}`)
			want := json.Valid(line) && utf8.Valid(line) && bytes.IndexByte(line, '\n') < 0
			if got := validEvent(line); got != want {
				t.Errorf("validEvent(%q) = %v, want %v", line, got, want)
			}
		}
	}
}
