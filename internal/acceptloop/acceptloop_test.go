package acceptloop

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestPacerBacksOffAndLogsRuns(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	var p Pacer
	errEMFILE := errors.New("accept tcp: too many open files")
	done := make(chan struct{})
	start := time.Now()
	for i := 0; i < 5; i++ {
		if !p.Failed(done, &log, "test", errEMFILE) {
			t.Fatal("Failed returned false with done open")
		}
	}
	// 5 + 10 + 20 + 40 + 80 ms.
	if took := time.Since(start); took < 155*time.Millisecond {
		t.Fatalf("five failures waited %v in all, want ≥ 155ms", took)
	}
	if p.wait != 80*time.Millisecond {
		t.Fatalf("wait after five failures %v, want 80ms", p.wait)
	}
	if n := strings.Count(buf.String(), "accept failed"); n != 1 {
		t.Fatalf("%d warnings for one run of failures, want 1:\n%s", n, buf.String())
	}
	p.Accepted(&log, "test")
	if !strings.Contains(buf.String(), `"failures":5`) || p.wait != 0 {
		t.Fatalf("end of the run not logged or not reset (wait %v):\n%s", p.wait, buf.String())
	}
	p.Accepted(&log, "test")
	if n := strings.Count(buf.String(), "accepting again"); n != 1 {
		t.Fatalf("%d lines about accepting again, want 1", n)
	}
	// A new run starts from the shortest wait and is logged again.
	p.Failed(done, &log, "test", errEMFILE)
	if p.wait != MinWait || strings.Count(buf.String(), "accept failed") != 2 {
		t.Fatalf("a new run: wait %v, log:\n%s", p.wait, buf.String())
	}
}

func TestPacerWaitIsBounded(t *testing.T) {
	log := zerolog.Nop()
	p := Pacer{wait: MaxWait}
	done := make(chan struct{})
	close(done)
	start := time.Now()
	if p.Failed(done, &log, "test", errors.New("x")) {
		t.Fatal("Failed returned true after done was closed")
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("Failed took %v to see done", took)
	}
	if p.wait != MaxWait {
		t.Fatalf("wait grew to %v, past %v", p.wait, MaxWait)
	}
}
