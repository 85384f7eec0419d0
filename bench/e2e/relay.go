package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Target is a server that relays events to a file.
type Target string

// The relay targets.
const (
	TargetLogd    Target = "logd"    // logpub.Writer → logd → capture file
	TargetRsyslog Target = "rsyslog" // TCP, newline framing → rsyslogd imtcp → omfile
	TargetRawTCP  Target = "rawtcp"  // TCP → io.Copy to a file, in this process (the ceiling)
)

// RelayConfig configures one relay run.
type RelayConfig struct {
	Target Target
	Bins   Bins   // logd only
	Events int    // events sent
	Dir    string // scratch directory, created if missing
	// Profile, if not "", is the path prefix of logd's CPU and heap
	// profiles (logd built with profiling only).
	Profile string
	// Timeout bounds the whole run. Default 2 min.
	Timeout time.Duration
}

// RelayResult is what one relay run measured. CPU and RSS are the server
// process's (zero for TargetRawTCP, which runs in this process).
type RelayResult struct {
	Target        Target
	Events        int
	Seconds       float64 // from the first send until the last line is in the file
	EventsPerSec  float64
	CPUSeconds    float64 // server utime+stime during the run
	CPUPerMillion float64 // server CPU seconds per million events
	PeakRSSMiB    float64 // server VmHWM at the end of the run
}

func (r RelayResult) String() string {
	return fmt.Sprintf("%s: %d events in %.2fs: %.0f events/s, %.2f CPU s per million events, peak RSS %.1f MiB",
		r.Target, r.Events, r.Seconds, r.EventsPerSec, r.CPUPerMillion, r.PeakRSSMiB)
}

// Relay starts the target, sends cfg.Events 200-byte events, waits until
// all are in its output file, stops the target and returns the figures.
func Relay(ctx context.Context, cfg RelayConfig) (res RelayResult, err error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return res, fmt.Errorf("e2e: %w", err)
	}
	var (
		server *proc
		out    string
		send   func(context.Context) error
	)
	switch cfg.Target {
	case TargetLogd:
		l, err := startLogd(ctx, cfg.Bins, cfg.Dir, cfg.Profile)
		if err != nil {
			return res, err
		}
		server, out = l.proc, filepath.Join(l.captureDir, "bench.log")
		send = func(ctx context.Context) error { return sendWriter(ctx, l.writerEndpoint, cfg.Events) }
	case TargetRsyslog:
		r, err := startRsyslog(ctx, cfg.Dir)
		if err != nil {
			return res, err
		}
		server, out = r.proc, r.out
		send = func(ctx context.Context) error { return sendTCP(ctx, r.addr, cfg.Events) }
	case TargetRawTCP:
		out = filepath.Join(cfg.Dir, "raw.log")
		s, err := startRawSink(out)
		if err != nil {
			return res, err
		}
		defer func() {
			if cerr := s.close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		addr := s.l.Addr().String()
		send = func(ctx context.Context) error { return sendTCP(ctx, addr, cfg.Events) }
	default:
		return res, fmt.Errorf("e2e: unknown target %q", cfg.Target)
	}
	if server != nil {
		defer func() {
			if serr := server.stop(30 * time.Second); serr != nil && err == nil {
				err = serr
			}
		}()
	}
	return measure(ctx, cfg, server, out, send)
}

func measure(ctx context.Context, cfg RelayConfig, server *proc, out string, send func(context.Context) error) (RelayResult, error) {
	res := RelayResult{Target: cfg.Target, Events: cfg.Events}
	var cpu0 float64
	if server != nil {
		var err error
		if cpu0, err = cpuSeconds(server.pid()); err != nil {
			return res, err
		}
	}
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		sendErr error
	)
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := send(sctx)
		mu.Lock()
		sendErr = err
		mu.Unlock()
	}()
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		if sendErr != nil {
			return sendErr
		}
		if server != nil {
			if gone, err := server.exited(); gone {
				return err
			}
		}
		return nil
	}
	got, err := waitLines(ctx, out, cfg.Events, failed)
	elapsed := time.Since(start)
	if err == nil && server != nil {
		if res.CPUSeconds, err = cpuSeconds(server.pid()); err == nil {
			res.CPUSeconds -= cpu0
			res.PeakRSSMiB, err = peakRSSMiB(server.pid())
		}
	}
	scancel()
	wg.Wait()
	// The sender is cancelled once every line is in: that is not a failure.
	if err == nil && sendErr != nil && !errors.Is(sendErr, context.Canceled) {
		err = sendErr
	}
	if err != nil {
		return res, fmt.Errorf("e2e: relay %s (%d of %d lines): %w", cfg.Target, got, cfg.Events, err)
	}
	if got != cfg.Events {
		return res, fmt.Errorf("e2e: relay %s: %d lines in %s, sent %d", cfg.Target, got, out, cfg.Events)
	}
	res.Seconds = elapsed.Seconds()
	res.EventsPerSec = float64(cfg.Events) / res.Seconds
	res.CPUPerMillion = res.CPUSeconds / float64(cfg.Events) * 1e6
	return res, nil
}
