package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var (
	binsOnce sync.Once
	binsDir  string
	bins     Bins
	binsErr  error
)

// testBins builds logd and logtail once for the package's tests.
func testBins(t *testing.T) Bins {
	t.Helper()
	binsOnce.Do(func() {
		binsDir, binsErr = os.MkdirTemp("", "e2e-bins-")
		if binsErr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			bins, binsErr = Build(ctx, binsDir, false)
		}
	})
	if binsErr != nil {
		t.Fatal(binsErr)
	}
	return bins
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binsDir != "" {
		os.RemoveAll(binsDir)
	}
	// Every harness goroutine (process waiters, readers, sinks) has ended.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// checkRelay runs a tiny relay and checks that every event reached the
// file, byte for byte, and that the server's figures were read.
func checkRelay(t *testing.T, target Target) {
	t.Helper()
	dir := t.TempDir()
	cfg := RelayConfig{Target: target, Events: 3000, Dir: dir, Timeout: time.Minute}
	if target == TargetLogd {
		cfg.Bins = testBins(t)
	}
	res, err := Relay(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Events != 3000 || res.EventsPerSec <= 0 || res.Seconds <= 0 {
		t.Fatalf("bad result %+v", res)
	}
	if target != TargetRawTCP && res.PeakRSSMiB <= 0 {
		t.Fatalf("no server RSS in %+v", res)
	}
	out := map[Target]string{
		TargetLogd:    filepath.Join(dir, "capture", "bench.log"),
		TargetRsyslog: filepath.Join(dir, "out.log"),
		TargetRawTCP:  filepath.Join(dir, "raw.log"),
	}[target]
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 3000*EventSize {
		t.Fatalf("%s holds %d bytes, want %d", out, len(b), 3000*EventSize)
	}
	lines := eventLines()
	for i := 0; i < 3000; i++ {
		if got, want := string(b[i*EventSize:(i+1)*EventSize]), string(lines[i%len(lines)]); got != want {
			t.Fatalf("event %d differs:\n got %q\nwant %q", i, got, want)
		}
	}
}

func TestRelayLogd(t *testing.T)   { checkRelay(t, TargetLogd) }
func TestRelayRawTCP(t *testing.T) { checkRelay(t, TargetRawTCP) }

func TestRelayRsyslog(t *testing.T) {
	if _, err := RsyslogPath(); errors.Is(err, ErrNoRsyslog) {
		t.Skip(err)
	}
	checkRelay(t, TargetRsyslog)
}

// TestLatency runs the three readers for a short while at a low rate and
// checks that each received every event with a plausible delay.
func TestLatency(t *testing.T) {
	res, err := Latency(context.Background(), LatencyConfig{Bins: testBins(t), Dir: t.TempDir(), Rate: 500, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("%d readers, want 3", len(res))
	}
	for _, r := range res {
		t.Log(r)
		if r.Sent != 500 || r.Got != r.Sent {
			t.Errorf("%s: got %d of %d (sent), want all 500", r.Name, r.Got, r.Sent)
		}
		if r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 || r.Max > 30*time.Second {
			t.Errorf("%s: implausible delays %v", r.Name, r)
		}
	}
}

// TestRelayLogdProfiled checks the profiling build (go build -overlay):
// logd runs with the hook and writes non-empty CPU and heap profiles.
func TestRelayLogdProfiled(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := Build(ctx, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(dir, "prof")
	res, err := Relay(ctx, RelayConfig{Target: TargetLogd, Bins: b, Events: 2000, Dir: filepath.Join(dir, "run"), Profile: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	for _, ext := range []string{".cpu", ".mem"} {
		fi, err := os.Stat(prefix + ext)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() == 0 {
			t.Fatalf("profile %s%s is empty", prefix, ext)
		}
	}
}
