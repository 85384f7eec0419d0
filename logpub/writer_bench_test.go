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

// BenchmarkWriterHubProcess measures log.Info().Str(..).Int(..).Msg(..)
// through a Writer against the same call to io.Discard in the same run,
// with the hub in its own process as logd runs (it still shares the
// machine's cores): ratio = writer ns/op ÷ discard ns/op (goal ≤ 1.5),
// allocs/op (goal 0). cpu-ratio compares the CPU time of the calling
// thread only; app-cpu-ratio is the whole cost to the app: the CPU time of
// its process (the calling thread and the Writer's sender, until every
// event is acknowledged) per op, over that of the io.Discard loop.
func BenchmarkWriterHubProcess(b *testing.B) {
	dir := b.TempDir()
	ep := "ipc://" + dir + "/w.sock"
	startHubProcess(b, ep, dir+"/cap")
	benchWriter(b, ep, true)
}

// BenchmarkWriter is BenchmarkWriterHubProcess with the hub inside the
// benchmark's process, which logd never is: the calls then also pay for
// the hub's goroutines and garbage collection.
func BenchmarkWriter(b *testing.B) {
	h := startHub(b, func(c *HubConfig) { c.Capture.Dir = b.TempDir(); c.RingEvents = 10000 })
	benchWriter(b, h.WriterEndpoint(), false)
}

// writerRounds is how many alternating rounds of the io.Discard loop and
// the Writer loop benchWriter runs: the host's load drifts by tens of
// per cent within a second on a shared VM, and one long loop of each would
// measure them at different moments.
const writerRounds = 10

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
	before := w.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	b.StopTimer()
	// Each round times a slice of b.N calls to io.Discard, then the same
	// number through the Writer, then waits (untimed) until the hub has
	// acknowledged them all, so that no round starts with the last one's
	// backlog. b's timer runs only around the Writer's slices: ns/op and
	// allocs/op are the Writer's.
	var discard, discardCPU, discardProc, writerCPU, writerProc time.Duration
	for r, i := 0, 0; r < writerRounds; r++ {
		end := b.N * (r + 1) / writerRounds
		start, cpu0, proc0 := time.Now(), threadCPU(), processCPU()
		for j := i; j < end; j++ {
			logD.Info().Str("user", "ada").Int("n", j).Msg("request served")
		}
		discard += time.Since(start)
		discardCPU += threadCPU() - cpu0
		discardProc += processCPU() - proc0
		cpu0, proc0 = threadCPU(), processCPU()
		b.StartTimer()
		for ; i < end; i++ {
			logW.Info().Str("user", "ada").Int("n", i).Msg("request served")
		}
		b.StopTimer()
		writerCPU += threadCPU() - cpu0
		waitFor(b, "every event acknowledged", func() bool { return w.Stats().Queued == 0 })
		writerProc += processCPU() - proc0
	}
	elapsed := b.Elapsed()
	if appCPU {
		// The process's CPU until every event is acknowledged: the calling
		// thread and the Writer's sender (the hub is elsewhere).
		b.ReportMetric(float64(writerProc.Nanoseconds())/float64(b.N), "app-cpu-ns/op")
		b.ReportMetric(float64(discardProc.Nanoseconds())/float64(b.N), "discard-app-cpu-ns/op")
		b.ReportMetric(float64(writerProc)/float64(discardProc), "app-cpu-ratio")
	}
	after := w.Stats()
	b.ReportMetric(float64(discard.Nanoseconds())/float64(b.N), "discard-ns/op")
	b.ReportMetric(float64(elapsed)/float64(discard), "ratio")
	b.ReportMetric(float64(writerCPU.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(discardCPU.Nanoseconds())/float64(b.N), "discard-cpu-ns/op")
	b.ReportMetric(float64(writerCPU)/float64(discardCPU), "cpu-ratio")
	b.ReportMetric(float64(after.Dropped-before.Dropped)/float64(b.N), "dropped/op")
}
