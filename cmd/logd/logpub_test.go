package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

func TestLogdCapturesPublishesAndAdvertises(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	dataDir := t.TempDir()
	writerEP := "ipc://" + filepath.Join(dataDir, "w.sock")
	p := runLogd(t, bin, dataDir, "logd-lp", port, "--writer-endpoint", writerEP, "--rotate-size", "4KiB", "--rotate-every", "0")

	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: writerEP, Service: "api"})
	log := zerolog.New(w).With().Timestamp().Logger()
	for i := 0; i < 200; i++ {
		log.Warn().Int("i", i).Str("pad", strings.Repeat("x", 50)).Msg("through logd")
	}
	if err := w.Close(); err != nil || w.Stats().Acked != 200 {
		t.Fatalf("writer close: %v, stats %+v\n%s", err, w.Stats(), p.stderr)
	}

	// The publish endpoint is advertised in the mesh header.
	var pub string
	deadline := time.Now().Add(20 * time.Second)
	for pub == "" {
		r, err := peersJSON(t, bin, p.dataDir)
		if err == nil {
			pub = r.Self.Headers["X-LOGD-PUB"]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no X-LOGD-PUB header: %+v %v\n%s", r, err, p.stderr)
		}
		if pub == "" {
			time.Sleep(50 * time.Millisecond) // poll interval
		}
	}
	if q := r0(t, bin, p.dataDir).Self.Headers["X-LOGD-QUERY"]; q != pub {
		t.Fatalf("X-LOGD-QUERY %q, want %q", q, pub)
	}
	if !strings.HasPrefix(pub, "tcp://*:") {
		t.Fatalf("X-LOGD-PUB %q: want tcp://*:port for a wildcard bind", pub)
	}
	st, err := logpub.Subscribe(context.Background(), "tcp://127.0.0.1:"+strings.TrimPrefix(pub, "tcp://*:"),
		logpub.SubscribeOptions{Since: time.Now().Add(-time.Hour), Filter: logpub.Filter{Services: []string{"api"}}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		e, err := st.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(e.Line), `"i":`+strconv.Itoa(n)+`,`) {
			t.Fatalf("event %d: %s", n, e.Line)
		}
		n++
	}
	st.Close()
	if n != 200 {
		t.Fatalf("history: %d events, want 200", n)
	}

	var stats logpub.HubStats
	if err := newAdminClient(p.dataDir).do(context.Background(), "GET", "/logpub/stats", nil, &stats); err != nil {
		t.Fatal(err)
	}
	if stats.Received != 200 || stats.Captured != 200 {
		t.Fatalf("stats %+v", stats)
	}
	// Rotated files are compressed in the background: wait for the first.
	var ents []os.DirEntry
	pollUntil(t, 20*time.Second, "a compressed archive", func() bool {
		ents, _ = os.ReadDir(filepath.Join(p.dataDir, "capture"))
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".log.gz") {
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("capture dir: %v\n%s", ents, p.stderr) })
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.done; err != nil {
		t.Fatalf("logd exit: %v\n%s", err, p.stderr)
	}
}

func r0(t *testing.T, bin, dataDir string) peersReply {
	t.Helper()
	r, err := peersJSON(t, bin, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
