package logpub

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

func TestWriterEndpointFromEnvAndSharedCapture(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, func(c *HubConfig) { c.Capture = CaptureConfig{Dir: dir, Shared: "all"} })
	t.Setenv("LOGPUB_ENDPOINT", h.WriterEndpoint())
	t.Setenv("LOGPUB_SERVICE", "from-env")
	a := newApp(t, WriterOptions{})
	b := newApp(t, WriterOptions{Service: "other"})
	a.log.Info().Msg("one")
	a.waitAcked(t)
	b.log.Info().Msg("two")
	b.waitAcked(t)
	got, err := os.ReadFile(filepath.Join(dir, "all.log"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != a.want.String()+b.want.String() {
		t.Fatalf("shared capture:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "from-env.log")); !os.IsNotExist(err) {
		t.Fatalf("per-service file written in shared mode: %v", err)
	}
}

func TestMaxSubscribers(t *testing.T) {
	h := startHub(t, func(c *HubConfig) { c.MaxSubscribers = 1 })
	s1, err := h.Subscribe(Filter{}, time.Time{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(Filter{}, time.Time{}, 1); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("second subscription: %v", err)
	}
	if h.Stats().Refused != 1 {
		t.Fatalf("refused not counted: %+v", h.Stats())
	}
	s1.Close()
	waitFor(t, "slot freed", func() bool {
		s, err := h.Subscribe(Filter{}, time.Time{}, 1)
		if err == nil {
			s.Close()
		}
		return err == nil
	})
}

func TestGapDetector(t *testing.T) {
	var g GapDetector
	n1, n2 := uuid.New(), uuid.New()
	steps := []struct {
		e    Event
		want uint64
	}{
		{Event{Node: n1, Service: "api", Source: 1, StreamSeq: 1}, 0},
		{Event{Node: n1, Service: "api", Source: 1, StreamSeq: 2}, 0},
		{Event{Node: n1, Service: "api", Source: 1, StreamSeq: 15}, 12},
		{Event{Node: n2, Service: "api", Source: 1, StreamSeq: 3}, 2}, // other node: first seen at 3
		{Event{Node: n1, Service: "api", Source: 2, StreamSeq: 1}, 0},
		{Event{Node: n1, Service: "api", History: true}, 0},
		{Event{Node: n1, Service: "api", Source: 1, StreamSeq: 16}, 0},
	}
	for i, s := range steps {
		if got := g.Check(&s.e); got != s.want {
			t.Fatalf("step %d: %d missed, want %d", i, got, s.want)
		}
	}
}

func TestFilterLevels(t *testing.T) {
	all := Filter{}
	warn := Filter{MinLevel: zerolog.WarnLevel}
	for _, l := range []zerolog.Level{zerolog.TraceLevel, zerolog.DebugLevel, zerolog.InfoLevel, zerolog.NoLevel} {
		if !all.matchLevel(l) || warn.matchLevel(l) {
			t.Errorf("level %v: all %v warn %v", l, all.matchLevel(l), warn.matchLevel(l))
		}
	}
	for _, l := range []zerolog.Level{zerolog.WarnLevel, zerolog.ErrorLevel, zerolog.FatalLevel, zerolog.PanicLevel} {
		if !warn.matchLevel(l) {
			t.Errorf("level %v rejected by warn filter", l)
		}
	}
	if !strings.Contains(levelName(zerolog.NoLevel), "none") {
		t.Error("NoLevel name")
	}
}

func TestMaxBackups(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, func(c *HubConfig) { c.Capture = CaptureConfig{Dir: dir, MaxSize: 512, MaxBackups: 2} })
	a := newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: "api"})
	for i := 0; i < 100; i++ {
		a.log.Info().Int("i", i).Str("pad", strings.Repeat("b", 80)).Msg("backups")
	}
	a.waitAcked(t)
	waitFor(t, "at most 2 rotated files", func() bool {
		ents, _ := os.ReadDir(dir)
		gz, plain := 0, 0
		for _, e := range ents {
			switch n := e.Name(); {
			case strings.HasPrefix(n, "api-") && strings.HasSuffix(n, ".log.gz"):
				gz++
			case strings.HasPrefix(n, "api-"):
				plain++
			}
		}
		return gz == 2 && plain == 0
	})
}
