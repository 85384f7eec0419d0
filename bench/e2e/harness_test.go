package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEventFormat(t *testing.T) {
	for _, n := range []int{-1, 0, 7, 123456789} {
		line := event(n, 1_700_000_000_123_456_789)
		if len(line) != EventSize || line[len(line)-1] != '\n' {
			t.Fatalf("event(%d) is %d bytes: %q", n, len(line), line)
		}
		ts, got, ok := parseEvent(line)
		if !ok || got != n || ts != 1_700_000_000_123_456_789 {
			t.Fatalf("parseEvent(event(%d)) = %d, %d, %v", n, ts, got, ok)
		}
	}
}

func TestParseEventRejects(t *testing.T) {
	for _, line := range []string{
		"",
		"not json at all",
		`{"level":"info","message":"no stamp"}`,
		`{"t":12`,
		`{"t":abc,"n":1}`,
		`{"t":12,"n":}`,
		`{"t":12,"n":x,"pad":""}`,
		`{"t":99999999999999999999999,"n":1,}`,
		`logtail: stream ended`,
	} {
		if _, _, ok := parseEvent([]byte(line)); ok {
			t.Errorf("parseEvent(%q) accepted", line)
		}
	}
}

func TestLineCounterFollowsGrowth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.log")
	c := &lineCounter{path: path}
	defer c.close()
	if err := c.poll(); err != nil || c.lines != 0 {
		t.Fatalf("missing file: %d lines, %v", c.lines, err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("a\nb\nc") // the third line is not complete yet
	if err := c.poll(); err != nil || c.lines != 2 {
		t.Fatalf("%d lines, %v; want 2", c.lines, err)
	}
	f.WriteString("\nd\n")
	if err := c.poll(); err != nil || c.lines != 4 || c.bytes != 8 {
		t.Fatalf("%d lines %d bytes, %v; want 4, 8", c.lines, c.bytes, err)
	}
}

func TestCPUAndRSSOfSelf(t *testing.T) {
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	cpu, err := cpuSeconds(os.Getpid())
	if err != nil || cpu <= 0 {
		t.Fatalf("cpuSeconds(self) = %v, %v (spun %d)", cpu, err, x)
	}
	rss, err := peakRSSMiB(os.Getpid())
	if err != nil || rss <= 1 {
		t.Fatalf("peakRSSMiB(self) = %v, %v", rss, err)
	}
	if _, err := cpuSeconds(1 << 30); err == nil {
		t.Fatal("cpuSeconds of a missing pid: no error")
	}
}

// TestStopKillsWhatIgnoresSIGTERM: the harness never leaves a stubborn
// child behind.
func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	p, err := startProcOut("python3", []string{"-c",
		"import signal,time,sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"}, nil, pw)
	if err != nil {
		t.Skip(err)
	}
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		p.stop(0)
		t.Fatalf("child said %q, %v", line, err)
	}
	start := time.Now()
	if err := p.stop(300 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("stop = %v, want killed", err)
	}
	if gone, _ := p.exited(); !gone {
		t.Fatal("child still running after stop")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("stop took %v", d)
	}
	if err := p.stop(time.Second); err != nil {
		t.Fatalf("second stop = %v, want nil", err)
	}
}
