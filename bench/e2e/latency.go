package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

// LatencyConfig configures a latency run.
type LatencyConfig struct {
	Bins     Bins
	Dir      string        // scratch directory, created if missing
	Rate     int           // events per second
	Duration time.Duration // how long events are sent
	Profile  string        // logd profile prefix, as in RelayConfig
}

// ReaderLatency is the receive delay seen by one reader: from the moment
// the app wrote the event (its "t" field) to the moment the reader's
// output line reached this process.
type ReaderLatency struct {
	Name          string
	Sent, Got     int
	P50, P99, Max time.Duration
}

func (r ReaderLatency) String() string {
	return fmt.Sprintf("%s: %d of %d events, p50 %v, p99 %v, max %v", r.Name, r.Got, r.Sent,
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
}

// The latency readers.
const (
	ReaderTailFile    = "tail-F-app-file" // the app also writes each event to a local file; `tail -F` on it
	ReaderLogtail     = "logtail"         // logpub.Writer → logd → `logtail --follow --json`
	ReaderTailCapture = "tail-F-capture"  // logpub.Writer → logd's capture file → `tail -F`
)

// reader is one child process whose stdout lines are timed.
type reader struct {
	name  string
	p     *proc
	mu    sync.Mutex
	warm  int
	delay []time.Duration
	done  chan struct{}
}

func startReader(name, bin string, args ...string) (*reader, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("e2e: pipe: %w", err)
	}
	p, err := startProcOut(bin, args, nil, pw)
	if err != nil {
		pr.Close()
		return nil, err
	}
	r := &reader{name: name, p: p, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			now := time.Now().UnixNano()
			t, n, ok := parseEvent(sc.Bytes())
			if !ok {
				continue
			}
			r.mu.Lock()
			if n < 0 {
				r.warm++
			} else {
				r.delay = append(r.delay, time.Duration(now-t))
			}
			r.mu.Unlock()
		}
	}()
	return r, nil
}

func (r *reader) counts() (warm, got int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.warm, len(r.delay)
}

func (r *reader) stop() error {
	err := r.p.stop(10 * time.Second)
	<-r.done
	return err
}

func (r *reader) result(sent int) ReaderLatency {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := ReaderLatency{Name: r.name, Sent: sent, Got: len(r.delay)}
	if len(r.delay) == 0 {
		return res
	}
	d := slices.Clone(r.delay)
	slices.Sort(d)
	res.P50, res.P99, res.Max = d[len(d)/2], d[len(d)*99/100], d[len(d)-1]
	return res
}

// parseEvent returns fields "t" and "n" of a line made by event.
func parseEvent(line []byte) (t int64, n int, ok bool) {
	t, ok = eventTime(line)
	if !ok {
		return 0, 0, false
	}
	i := bytes.Index(line, []byte(`"n":`))
	if i < 0 {
		return 0, 0, false
	}
	rest := line[i+4:]
	j := bytes.IndexByte(rest, ',')
	if j < 0 {
		return 0, 0, false
	}
	n, err := strconv.Atoi(string(rest[:j]))
	return t, n, err == nil
}

// Latency sends timestamped events at cfg.Rate for cfg.Duration, each both
// to a local file (as an app logging to a file does) and to logd through a
// logpub.Writer, and measures the delay until `tail -F` of the file, logtail
// of logd's stream and `tail -F` of logd's capture file print it.
func Latency(ctx context.Context, cfg LatencyConfig) (res []ReaderLatency, err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+2*time.Minute)
	defer cancel()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("e2e: %w", err)
	}
	l, err := startLogd(ctx, cfg.Bins, filepath.Join(cfg.Dir, "logd"), cfg.Profile)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := l.stop(30 * time.Second); serr != nil && err == nil {
			err = serr
		}
	}()
	app, err := os.OpenFile(filepath.Join(cfg.Dir, "app.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("e2e: app file: %w", err)
	}
	defer app.Close()
	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: l.writerEndpoint, Service: "bench"})
	defer w.Close()
	emit := func(n int) {
		line := event(n, time.Now().UnixNano())
		app.Write(line)
		w.WriteLevel(zerolog.InfoLevel, line)
	}
	// The capture file exists once logd has captured one event.
	capture := filepath.Join(l.captureDir, "bench.log")
	if err := poll(ctx, 10*time.Millisecond, func() bool {
		emit(-1)
		_, err := os.Stat(capture)
		return err == nil
	}); err != nil {
		return nil, fmt.Errorf("e2e: no capture file %s: %w", capture, err)
	}
	var readers []*reader
	defer func() {
		for _, r := range readers {
			if serr := r.stop(); serr != nil && err == nil {
				err = serr
			}
		}
	}()
	for _, spec := range [][]string{
		{ReaderTailFile, "tail", "-F", "-n", "0", app.Name()},
		{ReaderLogtail, cfg.Bins.Logtail, "--connect", l.pubEndpoint, "--follow", "--json"},
		{ReaderTailCapture, "tail", "-F", "-n", "0", capture},
	} {
		r, err := startReader(spec[0], spec[1], spec[2:]...)
		if err != nil {
			return nil, err
		}
		readers = append(readers, r)
	}
	// Every reader is live once it has printed a warm-up event.
	if err := poll(ctx, 20*time.Millisecond, func() bool {
		emit(-1)
		for _, r := range readers {
			if warm, _ := r.counts(); warm == 0 {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, fmt.Errorf("e2e: readers not live: %w", err)
	}
	sent := send(ctx, cfg.Rate, cfg.Duration, emit)
	// Wait for the stragglers, 10 s at most: a reader that lost events
	// reports fewer than sent.
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	_ = poll(wctx, 10*time.Millisecond, func() bool {
		for _, r := range readers {
			if _, got := r.counts(); got < sent {
				return false
			}
		}
		return true
	})
	for _, r := range readers {
		res = append(res, r.result(sent))
	}
	return res, nil
}

// send calls emit(n) for n = 0, 1, ... at rate per second for d, paced on
// a 1 ms ticker so the rate holds without bursts, and returns how many.
func send(ctx context.Context, rate int, d time.Duration, emit func(int)) int {
	total := int(float64(rate) * d.Seconds())
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	n := 0
	for n < total {
		due := min(total, int(float64(rate)*time.Since(start).Seconds())+1)
		for ; n < due; n++ {
			emit(n)
		}
		select {
		case <-ctx.Done():
			return n
		case <-tick.C:
		}
	}
	return n
}

// poll calls cond every interval until it returns true or ctx ends.
func poll(ctx context.Context, interval time.Duration, cond func() bool) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
