package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

// TestLogpubSharedCaptureSinceByService: with every service captured into
// one file (--capture-shared), `logtail --since 10m --service api` prints
// exactly api's events, byte-identical and in order, from compressed
// rotated files, the current file and the ring.
func TestLogpubSharedCaptureSinceByService(t *testing.T) {
	bin := buildLogd(t)
	logtailBin := filepath.Join(t.TempDir(), "logtail")
	if out, err := exec.Command("go", "build", "-o", logtailBin, "../logtail").CombinedOutput(); err != nil {
		t.Fatalf("go build logtail: %v\n%s", err, out)
	}
	port := meshtest.Config(t).BeaconPort
	dataDir := t.TempDir()
	writerEP := "ipc://" + filepath.Join(dataDir, "w.sock")
	p := runLogd(t, bin, dataDir, "logd-sh", port, "--writer-endpoint", writerEP, "--capture-shared", "all",
		"--rotate-size", "2KiB", "--rotate-every", "0", "--ring-events", "20")

	var want bytes.Buffer // zerolog's own output for api
	writers := map[string]*logpub.Writer{}
	logs := map[string]*zerolog.Logger{}
	for _, svc := range []string{"api", "db"} {
		writers[svc] = logpub.NewWriter(logpub.WriterOptions{Endpoint: writerEP, Service: svc})
		out := zerolog.LevelWriter(writers[svc])
		if svc == "api" {
			out = zerolog.MultiLevelWriter(writers[svc], &want)
		}
		l := zerolog.New(out).With().Timestamp().Str("svc", svc).Logger()
		logs[svc] = &l
	}
	for i := 0; i < 40; i++ {
		for _, svc := range []string{"api", "db"} {
			logs[svc].Info().Int("i", i).Str("pad", strings.Repeat("p", 40)).Msg("shared")
			// One event at a time, so the services interleave in the file.
			pollUntil(t, 20*time.Second, "ack", func() bool { return writers[svc].Stats().Acked == uint64(i+1) },
				func() string { return p.stderr.String() })
		}
	}
	for _, w := range writers {
		w.Close()
	}
	capture := filepath.Join(dataDir, "capture")
	pollUntil(t, 20*time.Second, "compressed archives", func() bool {
		m, _ := filepath.Glob(filepath.Join(capture, "all-*.log.gz"))
		plain, _ := filepath.Glob(filepath.Join(capture, "all-*.log"))
		return len(m) >= 2 && len(plain) == 0
	}, func() string { ents, _ := os.ReadDir(capture); return strconv.Itoa(len(ents)) + " files" })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tail := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, logtailBin, append([]string{"--since", "10m", "--service", "api",
			"--beacon-port", strconv.Itoa(port), "--interface", "lo", "--broadcast", "127.255.255.255",
			"--bind", "127.0.0.1", "--wait", "3s"}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("logtail %v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	if got := tail("--json"); got != want.String() {
		t.Fatalf("logtail --since 10m --service api --json: %d lines, want exactly api's %d:\n%s",
			strings.Count(got, "\n"), strings.Count(want.String(), "\n"), got)
	}
	pretty := strings.Split(strings.TrimSpace(tail("--no-color")), "\n")
	if len(pretty) != 40 {
		t.Fatalf("pretty: %d lines, want 40", len(pretty))
	}
	for _, l := range pretty {
		if !strings.HasPrefix(l, "logd-sh/api ") || !strings.Contains(l, "svc=api") {
			t.Fatalf("pretty line %q", l)
		}
	}
}
