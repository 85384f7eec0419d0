package main

import (
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

// TestStoppedLogtailReportsGaps freezes logtail (SIGSTOP) while the app
// logs far more than the hub queues for it; after SIGCONT logtail must
// report the loss on stderr, and printed + reported missed = written.
func TestStoppedLogtailReportsGaps(t *testing.T) {
	writerEP, pub := startHub(t, t.TempDir(), "LT_SUBQ=200")
	cmd, lines, stderr := startLogtail(t, "-f", "--since", "1h", "--json", "--connect", pub)
	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: writerEP, Service: "api"})
	defer w.Close()
	log := zerolog.New(w)
	// Wait until logtail is subscribed: it prints one of the probes (with
	// --since, every probe reaches it, from history or live).
	probes := 0
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-lines:
			break wait
		case <-tick.C:
			log.Info().Msg("probe")
			probes++
		case <-deadline:
			t.Fatalf("logtail printed nothing; stderr: %s", stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	const flood = 30000
	pad := strings.Repeat("z", 400)
	for i := 0; i < flood; i++ {
		log.Warn().Int("i", i).Str("pad", pad).Msg("flood")
		if i%5000 == 0 {
			waitAcks(t, w)
		}
	}
	waitAcks(t, w)
	if s := w.Stats(); s.Dropped != 0 {
		t.Fatalf("writer dropped %d", s.Dropped)
	}
	cmd.Process.Signal(syscall.SIGCONT)
	// The hub drops for logtail until its queue drains: send markers until
	// one is printed, then read until printed + reported missed adds up.
	missedRE := regexp.MustCompile(`service api: (\d+) events missed`)
	missed := func() int {
		n := 0
		for _, m := range missedRE.FindAllStringSubmatch(stderr.String(), -1) {
			k, _ := strconv.Atoi(m[1])
			n += k
		}
		return n
	}
	printed, finals, seenFinal := 1, 0, false // the probe already read
	deadline = time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("logtail ended; stderr: %s", stderr.String())
			}
			printed++
			seenFinal = seenFinal || strings.Contains(l, `"final"`)
		case <-tick.C:
			if !seenFinal {
				log.Warn().Msg("final")
				finals++
			}
		case <-deadline:
			t.Fatalf("printed %d + reported missed %d != %d written; stderr:\n%s", printed, missed(), probes+flood+finals, stderr.String())
		}
		if seenFinal && printed+missed() == probes+flood+finals {
			break
		}
	}
	if missed() == 0 {
		t.Fatal("no gap reported")
	}
}

func waitAcks(t *testing.T, w *logpub.Writer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for w.Stats().Queued > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("writer not acknowledged: %+v", w.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
