package logpub

import (
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// threadCPU is the CPU time of the calling OS thread.
func threadCPU() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// BenchmarkWriter measures log.Info().Str(..).Int(..).Msg(..) through a
// Writer connected to a running Hub, against the same call to io.Discard
// timed in the same run; ratio = writer ns/op ÷ discard ns/op (goal ≤ 1.5).
// The hub shares the machine's cores, so the wall-clock ratio includes its
// work; cpu-ratio compares the CPU time of the calling thread only (the
// cost to the app), which a loaded machine does not distort.
func BenchmarkWriter(b *testing.B) {
	h := startHub(b, func(c *HubConfig) { c.Capture.Dir = b.TempDir(); c.RingEvents = 10000 })
	benchWriter(b, h.WriterEndpoint(), false)
}

// BenchmarkWriterHubProcess is BenchmarkWriter with the hub in its own
// process, as logd is: the app's process holds only the Writer. Here
// app-cpu-ratio is the whole cost to the app: the CPU time of its process
// (the calling thread and the Writer's sender, until every event is
// acknowledged) per op, over that of the io.Discard loop.
func BenchmarkWriterHubProcess(b *testing.B) {
	dir := b.TempDir()
	ep := "ipc://" + dir + "/w.sock"
	startHubProcess(b, ep, dir+"/cap")
	benchWriter(b, ep, true)
}

func benchWriter(b *testing.B, endpoint string, appCPU bool) {
	w := NewWriter(WriterOptions{Endpoint: endpoint, Service: "bench", MaxEvents: 1 << 20, MaxBytes: 256 << 20})
	defer w.Close()
	logW := zerolog.New(w).With().Timestamp().Logger()
	logD := zerolog.New(io.Discard).With().Timestamp().Logger()
	// Warm up: the connection is up and the batch buffers have grown.
	for i := 0; i < 10000; i++ {
		logW.Info().Str("user", "ada").Int("n", i).Msg("request served")
	}
	waitFor(b, "warm-up acks", func() bool { return w.Stats().Queued == 0 })

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, cpu0, proc0 := time.Now(), threadCPU(), processCPU()
	for i := 0; i < b.N; i++ {
		logD.Info().Str("user", "ada").Int("n", i).Msg("request served")
	}
	discard, discardCPU, discardProc := time.Since(start), threadCPU()-cpu0, processCPU()-proc0
	before := w.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, proc0 = threadCPU(), processCPU()
	for i := 0; i < b.N; i++ {
		logW.Info().Str("user", "ada").Int("n", i).Msg("request served")
	}
	writerCPU := threadCPU() - cpu0
	b.StopTimer()
	elapsed := b.Elapsed()
	if appCPU {
		waitFor(b, "every event acknowledged", func() bool { return w.Stats().Queued == 0 })
		b.ReportMetric(float64(processCPU()-proc0)/float64(discardProc), "app-cpu-ratio")
	}
	after := w.Stats()
	b.ReportMetric(float64(discard.Nanoseconds())/float64(b.N), "discard-ns/op")
	b.ReportMetric(float64(elapsed)/float64(discard), "ratio")
	b.ReportMetric(float64(writerCPU.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(discardCPU.Nanoseconds())/float64(b.N), "discard-cpu-ns/op")
	b.ReportMetric(float64(writerCPU)/float64(discardCPU), "cpu-ratio")
	b.ReportMetric(float64(after.Dropped-before.Dropped)/float64(b.N), "dropped/op")
}
