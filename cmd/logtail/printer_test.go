package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/logpub"
)

// TestPrinterPretty: the console format shows the event's own time, or
// when logd received it if the app logged no timestamp (never "<nil>").
func TestPrinterPretty(t *testing.T) {
	var out bytes.Buffer
	p := newPrinter(&options{noColor: true}, &out)
	recv := time.Date(2026, 11, 27, 5, 39, 48, 0, time.UTC)
	peer := &logdPeer{Name: "web-1"}
	for _, line := range []string{
		`{"level":"warn","time":"2026-11-27T04:00:00Z","message":"timed"}` + "\n",
		`{"level":"info","message":"untimed"}` + "\n",
	} {
		e := logpub.Event{Node: uuid.New(), Service: "api", Received: recv, Line: []byte(line)}
		if !p.print(&e, peer) {
			t.Fatalf("event not printed: %s", line)
		}
	}
	p.flush()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("output:\n%s", out.String())
	}
	wantTimed := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC).Local().Format(time.RFC3339)
	if !strings.HasPrefix(lines[0], "web-1/api "+wantTimed+" WRN timed") {
		t.Errorf("timed line = %q", lines[0])
	}
	if want := "web-1/api " + recv.Local().Format(time.RFC3339) + " INF untimed"; !strings.HasPrefix(lines[1], want) {
		t.Errorf("untimed line = %q, want prefix %q", lines[1], want)
	}
}
