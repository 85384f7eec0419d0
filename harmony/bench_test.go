package harmony

import (
	"context"
	"io"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

const benchLines = 200_000

var benchInput = sync.OnceValue(func() []Task {
	return cut(genLines(benchLines, 1), "bench.log", 2000)
})

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHarmony runs the same batch over 1 and 2 workers (goroutines of
// this process, over real TCP sockets, with ventilator and collector) and,
// in each iteration, the single-process baseline (RunLocal) on the same
// input right before it, so both see the same machine load. It reports
// lines/s of both and the ratios:
//
//	x_single      wall-clock speed-up over the single process
//	of_ideal      x_single / min(workers, cores)
//	cpu_x_single  CPU time per line against the single process (overhead)
//	cores         CPU time / wall time of the pipeline: under 2 with two
//	              workers, the machine (or a starved pipeline) held it back
//	single_cpu_ns/line, extra_cpu_ns/line
//	              CPU per line of the single process, and what the pipeline
//	              spends per line on top of it (tasks, sockets, merge): the
//	              overhead, independent of the processor's own speed
func BenchmarkHarmony(b *testing.B) {
	for _, spec := range []string{"filter level>=warn msg~timeout|retry", "count-by level,service,minute"} {
		job := mustJob(b, spec)
		tasks := benchInput()
		for _, n := range []int{1, 2} {
			b.Run(spec[:6]+"/workers="+string(rune('0'+n)), func(b *testing.B) {
				var ws []*Worker
				for range n {
					w, err := NewWorker(WorkerConfig{})
					if err != nil {
						b.Fatal(err)
					}
					defer w.Close()
					ws = append(ws, w)
				}
				src := endpoints(ws)
				var local, dist, localCPU, distCPU time.Duration
				b.ResetTimer()
				for range b.N {
					c0, t0 := cpuTime(), time.Now()
					if _, err := RunLocal(context.Background(), job, tasks, io.Discard); err != nil {
						b.Fatal(err)
					}
					c1, t1 := cpuTime(), time.Now()
					if _, err := Run(context.Background(), RunConfig{Job: job, Tasks: tasks, Out: io.Discard, Workers: src}); err != nil {
						b.Fatal(err)
					}
					c2, t2 := cpuTime(), time.Now()
					local, dist = local+t1.Sub(t0), dist+t2.Sub(t1)
					localCPU, distCPU = localCPU+c1-c0, distCPU+c2-c1
				}
				lines := float64(benchLines * b.N)
				speedup := local.Seconds() / dist.Seconds()
				b.ReportMetric(lines/local.Seconds(), "single_lines/s")
				b.ReportMetric(lines/dist.Seconds(), "lines/s")
				b.ReportMetric(speedup, "x_single")
				b.ReportMetric(speedup/float64(min(n, runtime.NumCPU())), "of_ideal")
				b.ReportMetric(distCPU.Seconds()/localCPU.Seconds(), "cpu_x_single")
				b.ReportMetric(distCPU.Seconds()/dist.Seconds(), "cores")
				b.ReportMetric(float64(localCPU.Nanoseconds())/lines, "single_cpu_ns/line")
				b.ReportMetric(float64((distCPU-localCPU).Nanoseconds())/lines, "extra_cpu_ns/line")
			})
		}
	}
}
