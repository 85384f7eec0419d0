// Command e2ebench runs the end-to-end comparisons of package bench/e2e and
// prints their figures as `go test -bench` lines on stdout (progress on
// stderr), which scripts/bench.sh folds into BENCHMARKS.md:
//
//	go run ./bench/e2e/cmd/e2ebench [-quick] [-events N] [-rounds R] [-profile DIR]
//
// Relay: logd vs rsyslogd vs raw TCP → file, the same 200-byte events, R
// rounds interleaved, the median of each. Latency: tail -F of a local file vs
// logtail (and tail -F of logd's capture) at a fixed rate.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/logmesh/logmesh/bench/e2e"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2ebench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	quick := flag.Bool("quick", os.Getenv("BENCH_QUICK") == "1", "small counts (also BENCH_QUICK=1)")
	events := flag.Int("events", 1_000_000, "events per relay run")
	rounds := flag.Int("rounds", 3, "relay rounds (each runs every target once)")
	rate := flag.Int("rate", 10_000, "latency run: events per second")
	dur := flag.Duration("duration", 5*time.Second, "latency run: how long events are sent")
	profile := flag.String("profile", "", "save CPU and heap profiles of logd and of this load generator in DIR")
	flag.Parse()
	if *quick {
		*events, *rounds, *dur = 20_000, 1, 2*time.Second
	}
	tmp, err := os.MkdirTemp("", "e2ebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintln(os.Stderr, "e2ebench: building logd and logtail")
	bins, err := e2e.Build(ctx, tmp, *profile != "")
	if err != nil {
		return err
	}
	prof := func(name string) string { return "" }
	if *profile != "" {
		if err := os.MkdirAll(*profile, 0o755); err != nil {
			return err
		}
		abs, err := filepath.Abs(*profile)
		if err != nil {
			return err
		}
		prof = func(name string) string { return filepath.Join(abs, name) }
		f, err := os.Create(prof("loadgen.cpu"))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Println("pkg: github.com/logmesh/logmesh/bench/e2e")
	if err := relay(ctx, bins, tmp, *events, *rounds, prof); err != nil {
		return err
	}
	if err := latency(ctx, bins, tmp, *rate, *dur, prof("logd-latency")); err != nil {
		return err
	}
	if *profile != "" {
		f, err := os.Create(prof("loadgen.mem"))
		if err != nil {
			return err
		}
		defer f.Close()
		return pprof.Lookup("allocs").WriteTo(f, 0)
	}
	return nil
}

func relay(ctx context.Context, bins e2e.Bins, tmp string, events, rounds int, prof func(string) string) error {
	targets := []e2e.Target{e2e.TargetLogd, e2e.TargetRsyslog, e2e.TargetRawTCP}
	if _, err := e2e.RsyslogPath(); errors.Is(err, e2e.ErrNoRsyslog) {
		fmt.Fprintln(os.Stderr, "e2ebench: rsyslog not installed, its rows are missing:", err)
		targets = []e2e.Target{e2e.TargetLogd, e2e.TargetRawTCP}
	}
	all := map[e2e.Target][]e2e.RelayResult{}
	for round := range rounds {
		for _, t := range targets {
			cfg := e2e.RelayConfig{Target: t, Bins: bins, Events: events, Dir: filepath.Join(tmp, fmt.Sprintf("%s-%d", t, round))}
			if t == e2e.TargetLogd && round == 0 {
				cfg.Profile = prof("logd-relay")
			}
			res, err := e2e.Relay(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "e2ebench: round %d: %v\n", round+1, res)
			all[t] = append(all[t], res)
			os.RemoveAll(cfg.Dir)
		}
	}
	med := map[e2e.Target]e2e.RelayResult{}
	for _, t := range targets {
		rs := all[t]
		m := e2e.RelayResult{Target: t, Events: events,
			EventsPerSec:  median(rs, func(r e2e.RelayResult) float64 { return r.EventsPerSec }),
			CPUPerMillion: median(rs, func(r e2e.RelayResult) float64 { return r.CPUPerMillion }),
			PeakRSSMiB:    median(rs, func(r e2e.RelayResult) float64 { return r.PeakRSSMiB }),
		}
		med[t] = m
		if t == e2e.TargetRawTCP {
			fmt.Printf("BenchmarkRelay200B/%s \t%d\t%.0f events/s\n", t, events, m.EventsPerSec)
			continue
		}
		fmt.Printf("BenchmarkRelay200B/%s \t%d\t%.0f events/s\t%.3f cpu-s/Mevents\t%.1f peak-RSS-MiB\n",
			t, events, m.EventsPerSec, m.CPUPerMillion, m.PeakRSSMiB)
	}
	l, raw := med[e2e.TargetLogd], med[e2e.TargetRawTCP]
	line := fmt.Sprintf("BenchmarkRelay200B/ratios \t%d\t%.3f logd/rawtcp", rounds, l.EventsPerSec/raw.EventsPerSec)
	if r, ok := med[e2e.TargetRsyslog]; ok {
		line += fmt.Sprintf("\t%.3f logd/rsyslog\t%.3f cpu-logd/rsyslog", l.EventsPerSec/r.EventsPerSec, l.CPUPerMillion/r.CPUPerMillion)
	}
	fmt.Println(line)
	return nil
}

func latency(ctx context.Context, bins e2e.Bins, tmp string, rate int, dur time.Duration, profile string) error {
	res, err := e2e.Latency(ctx, e2e.LatencyConfig{Bins: bins, Dir: filepath.Join(tmp, "latency"), Rate: rate, Duration: dur, Profile: profile})
	if err != nil {
		return err
	}
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) }
	for _, r := range res {
		fmt.Fprintf(os.Stderr, "e2ebench: latency at %d/s: %v\n", rate, r)
		fmt.Printf("BenchmarkTailLatency/%s \t%d\t%.0f p50-µs\t%.0f p99-µs\t%.0f max-µs\t%d lost\n",
			r.Name, r.Sent, us(r.P50), us(r.P99), us(r.Max), r.Sent-r.Got)
	}
	return nil
}

func median(rs []e2e.RelayResult, f func(e2e.RelayResult) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}
