package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

// TestFollowSurvivesLogdRestart: logtail -f --connect keeps tailing a logd
// that restarts on the same endpoint, and gets what was logged meanwhile.
func TestFollowSurvivesLogdRestart(t *testing.T) {
	dir := t.TempDir()
	pubEP := "ipc://" + filepath.Join(dir, "pub.sock")
	writerEP, _, stop := startHubStoppable(t, dir, "LT_PUB="+pubEP)
	_, lines, stderr := startLogtail(t, "-f", "--json", "--connect", pubEP)
	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: writerEP, Service: "api"})
	defer w.Close()
	log := zerolog.New(w)
	// until prints msg, logging it every 100 ms if resend is set.
	until := func(msg string, resend bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("logtail ended; stderr: %s", stderr.String())
				}
				if strings.Contains(l, msg) {
					return
				}
			case <-tick.C:
				if resend {
					log.Warn().Msg(msg)
				}
			case <-deadline:
				t.Fatalf("logtail did not print %q; stderr: %s", msg, stderr.String())
			}
		}
	}
	until("before-restart", true)
	stop()
	log.Warn().Msg("while-down") // held by the writer, resent to the new logd
	startHubStoppable(t, dir, "LT_PUB="+pubEP)
	until("while-down", false)
	// stderr arrives through its own pipe: poll for the report.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "left") || !strings.Contains(stderr.String(), "back") {
		if time.Now().After(deadline) {
			t.Fatalf("restart not reported: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFollowResumesExactlyFromFileHistory: logtail -f --since prints a
// history that comes from the capture files alone (the logd restarted, its
// ring is empty); the logd restarts again and logtail resumes after the
// last event it printed, to the nanosecond: nothing printed twice, the
// next event printed once.
func TestFollowResumesExactlyFromFileHistory(t *testing.T) {
	dir := t.TempDir()
	pubEP := "ipc://" + filepath.Join(dir, "pub.sock")
	writerEP, _, stop := startHubStoppable(t, dir, "LT_PUB="+pubEP)
	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: writerEP, Service: "api"})
	log := zerolog.New(w).With().Timestamp().Logger() // whole seconds
	const n = 50
	for i := 0; i < n; i++ {
		log.Info().Int("i", i).Msg("before")
	}
	if err := w.Close(); err != nil || w.Stats().Acked != n {
		t.Fatalf("writer: %v %+v", err, w.Stats())
	}
	stop()
	_, _, stop = startHubStoppable(t, dir, "LT_PUB="+pubEP) // ring empty: history from the files

	_, lines, stderr := startLogtail(t, "-f", "--since", "1h", "--json", "--connect", pubEP)
	seen := map[string]int{}
	read := func(until string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("logtail ended; stderr: %s", stderr.String())
				}
				seen[l]++
				if strings.Contains(l, until) {
					return
				}
			case <-deadline:
				t.Fatalf("logtail did not print %q; stderr: %s", until, stderr.String())
			}
		}
	}
	read(`"i":49,`)
	stop()
	writerEP, _, _ = startHubStoppable(t, dir, "LT_PUB="+pubEP)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "back") {
		if time.Now().After(deadline) {
			t.Fatalf("reconnection not reported: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	w = logpub.NewWriter(logpub.WriterOptions{Endpoint: writerEP, Service: "api"})
	defer w.Close()
	after := zerolog.New(w)
	after.Warn().Msg("after")
	read(`"after"`)
	if len(seen) != n+1 {
		t.Fatalf("%d distinct lines, want %d", len(seen), n+1)
	}
	for l, c := range seen {
		if c != 1 {
			t.Fatalf("printed %d times: %s", c, l)
		}
	}
}
