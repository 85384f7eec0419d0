package timer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkTickJitter measures how late ticks reach a client over the
// service's socket (received time minus scheduled time), next to a local
// time.Ticker of the same period and the in-process Every, measured in the
// same run. One iteration is one tick.
func BenchmarkTickJitter(b *testing.B) {
	for _, p := range []time.Duration{100 * time.Millisecond, 10 * time.Millisecond} {
		b.Run(p.String(), func(b *testing.B) {
			s, err := NewService(DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			c, err := NewClient(ClientConfig{Endpoint: s.Endpoint()})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch, err := c.Ticks(ctx, p)
			if err != nil {
				b.Fatal(err)
			}
			<-ch // connected and subscribed
			ref := make(chan []time.Duration)
			go func() { ref <- tickerLateness(ctx, p) }()
			local := make(chan []time.Duration)
			go func() {
				var out []time.Duration
				Every(ctx, p, func(_ int64, at time.Time, _ int64) { out = append(out, time.Since(at)) })
				local <- out
			}()
			b.ResetTimer()
			lates := make([]time.Duration, 0, b.N)
			var missed int64
			for i := 0; i < b.N; i++ {
				tk := <-ch
				lates = append(lates, time.Since(tk.At))
				missed += tk.Missed
			}
			b.StopTimer()
			cancel()
			base, inproc := <-ref, <-local
			b.ReportMetric(float64(percentile(inproc, .5))/1e3, "every-p50-µs")
			b.ReportMetric(float64(percentile(inproc, .99))/1e3, "every-p99-µs")
			sp99, tp99 := percentile(lates, .99), percentile(base, .99)
			b.ReportMetric(float64(percentile(lates, .5))/1e3, "p50-µs")
			b.ReportMetric(float64(sp99)/1e3, "p99-µs")
			b.ReportMetric(float64(percentile(lates, 1))/1e3, "max-µs")
			b.ReportMetric(float64(percentile(base, .5))/1e3, "ticker-p50-µs")
			b.ReportMetric(float64(tp99)/1e3, "ticker-p99-µs")
			b.ReportMetric(float64(percentile(base, 1))/1e3, "ticker-max-µs")
			b.ReportMetric(float64(sp99-tp99)/1e3, "p99-over-ticker-µs")
			b.ReportMetric(float64(missed), "missed")
		})
	}
}

// tickerLateness runs a time.Ticker until ctx is done and returns how late
// each tick was received against its ideal time (start + k·period). A
// Ticker drops ticks for a slow receiver, so k is not known: lateness is
// taken modulo the period and cannot exceed it.
func tickerLateness(ctx context.Context, p time.Duration) []time.Duration {
	start := time.Now()
	t := time.NewTicker(p)
	defer t.Stop()
	var out []time.Duration
	for {
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
			el := time.Since(start)
			k := el / p
			out = append(out, el-k*p)
		}
	}
}

// BenchmarkTickDrift60s receives 100 ms ticks for 60 s and reports the
// drift: how many ticks the last one received lags the wall clock's tick
// (goal 0), and ticks missed on the way.
func BenchmarkTickDrift60s(b *testing.B) {
	for i := 0; i < b.N; i++ {
		s, err := NewService(DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		c, err := NewClient(ClientConfig{Endpoint: s.Endpoint()})
		if err != nil {
			b.Fatal(err)
		}
		p := 100 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		ch, err := c.Ticks(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		var first, last Tick
		var n, missed int64
		for tk := range ch {
			if n == 0 {
				first = tk
			} else {
				missed += tk.Missed
			}
			last = tk
			n++
		}
		drift := TickNumber(time.Now(), p) - last.N
		cancel()
		c.Close()
		s.Close()
		b.ReportMetric(float64(drift), "drift-ticks")
		b.ReportMetric(float64(missed), "missed")
		b.ReportMetric(float64(last.N-first.N+1-n-missed), "unaccounted")
	}
}

// BenchmarkCPUPer1000Clients runs the service in a child process and 100 or
// 1000 clients subscribed to 10 ms ticks in this one, and reports the
// service's CPU use (ms of CPU per s), the same with no client, the
// difference scaled to 1000 clients, and the ticks each client received.
func BenchmarkCPUPer1000Clients(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchClientsCPU(b, n) })
	}
}

func benchClientsCPU(b *testing.B, clients int) {
	window := 3 * time.Second
	for i := 0; i < b.N; i++ {
		child, ep, pid := startChildService(b)
		idle := childCPU(b, pid, window)
		ctx, cancel := context.WithCancel(context.Background())
		var cs []*Client
		var chans []<-chan Tick
		for j := 0; j < clients; j++ {
			c, err := NewClient(ClientConfig{Endpoint: ep})
			if err != nil {
				b.Fatal(err)
			}
			cs = append(cs, c)
			ch, err := c.Ticks(ctx, 10*time.Millisecond)
			if err != nil {
				b.Fatal(err)
			}
			chans = append(chans, ch)
		}
		got := make(chan int64, clients)
		for _, ch := range chans {
			go func() {
				var n int64
				for range ch {
					n++
				}
				got <- n
			}()
		}
		time.Sleep(2 * time.Second) // let every client connect and subscribe
		busy := childCPU(b, pid, window)
		cancel()
		var total int64
		for range chans {
			total += <-got
		}
		for _, c := range cs {
			c.Close()
		}
		child.Process.Kill()
		child.Wait()
		b.ReportMetric(idle, "idle-cpu-ms/s")
		b.ReportMetric(busy, "cpu-ms/s")
		b.ReportMetric((busy-idle)*1000/float64(clients), "cpu-ms/s-per-1000")
		b.ReportMetric(float64(total)/(window.Seconds()+2)/float64(clients), "ticks/s/client")
	}
}

func startChildService(b *testing.B) (*exec.Cmd, string, int) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildService$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), "TIMER_CHILD_SERVICE=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if ep, ok := strings.CutPrefix(sc.Text(), "ENDPOINT "); ok {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, ep, cmd.Process.Pid
		}
	}
	b.Fatal("child service gave no endpoint")
	return nil, "", 0
}

// childCPU returns the CPU ms per s the process pid used over window.
func childCPU(b *testing.B, pid int, window time.Duration) float64 {
	b.Helper()
	c0, t0 := procCPU(b, pid), time.Now()
	time.Sleep(window)
	c1, t1 := procCPU(b, pid), time.Now()
	return float64(c1-c0) / t1.Sub(t0).Seconds() * 1000
}

// procCPU reads utime+stime of pid from /proc, in seconds.
func procCPU(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// TestChildService is the service process of BenchmarkCPUPer1000Clients;
// it does nothing unless TIMER_CHILD_SERVICE is set.
func TestChildService(t *testing.T) {
	if os.Getenv("TIMER_CHILD_SERVICE") == "" {
		t.Skip("only as the child of BenchmarkCPUPer1000Clients")
	}
	cfg := DefaultConfig()
	cfg.MaxClients = 2000
	s := startService(t, cfg)
	fmt.Printf("ENDPOINT %s\n", s.Endpoint())
	select {} // killed by the benchmark
}
