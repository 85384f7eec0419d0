package logpub

import (
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// BenchmarkCaptureIndex measures the capture write of batches of 200-byte
// events with the capture index against the same writes without it, in
// the same run: ratio is the cost of the index (goal ≤ 1.1 for batches of
// 64; a batch of one event pays a second small write).
func BenchmarkCaptureIndex(b *testing.B) {
	for _, per := range []int{1, 64} {
		b.Run("batch"+strconv.Itoa(per), func(b *testing.B) {
			var batch []byte
			for i := 0; i < per; i++ {
				batch = append(batch, event200(i)...)
			}
			run := func(indexed bool) time.Duration {
				c, err := newCapture(CaptureConfig{Dir: b.TempDir(), MaxSize: 1 << 40}, zerolog.Nop())
				if err != nil {
					b.Fatal(err)
				}
				defer c.close()
				f := c.file("api")
				if !indexed {
					f.idx.close()
				}
				start := time.Now()
				for i := 0; i < b.N; i++ {
					if _, err := c.write("api", batch, int64(i*per+1)); err != nil {
						b.Fatal(err)
					}
				}
				return time.Since(start)
			}
			b.ResetTimer()
			with := run(true)
			without := run(false)
			b.StopTimer()
			b.ReportMetric(float64(with.Nanoseconds())/float64(b.N), "indexed-ns/batch")
			b.ReportMetric(float64(without.Nanoseconds())/float64(b.N), "plain-ns/batch")
			b.ReportMetric(float64(with)/float64(without), "ratio")
		})
	}
}
