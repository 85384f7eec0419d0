package logpub

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBatchTakenOverInPlace checks what the Hub does with a batch it takes
// over without a copy: rejected events and duplicates of a resent batch
// are left out of the capture file, a line without its newline gets one,
// and the events already published keep their bytes while later frames
// arrive on the same connection.
func TestBatchTakenOverInPlace(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, func(c *HubConfig) { c.Capture.Dir = dir })
	sub, err := h.Subscribe(Filter{}, time.Time{}, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	c, err := net.Dial("tcp", strings.TrimPrefix(h.WriterEndpoint(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(appendHello(nil, hello{Source: 9, Service: "api"}))
	send := func(first uint64, want uint64, lines ...string) {
		t.Helper()
		if _, err := c.Write(encodeBatch(first, lines...)); err != nil {
			t.Fatal(err)
		}
		typ, body, _, err := readFrame(c, nil)
		if err != nil || typ != frameAck {
			t.Fatalf("no ack: %v", err)
		}
		if seq, _ := decodeAck(body); seq != want {
			t.Fatalf("ack %d, want %d", seq, want)
		}
	}
	e := func(s string) string { return `{"level":"info","message":"` + s + `"}` }
	send(1, 3, e("one")+"\n", "not json\n", e("three"))
	// Resent with 1..3, plus 4 and 5: only 4 and 5 are new (1 and 3 are
	// duplicates; 2 is checked, and rejected, again).
	send(1, 5, e("one")+"\n", "not json\n", e("three")+"\n", e("four")+"\n", e("five")+"\n")
	send(6, 7, e("six")+"\n", "{\"bad\":\"\xff\"}\n")
	want := []string{e("one"), e("three"), e("four"), e("five"), e("six")}
	for i, w := range want {
		select {
		case ev := <-sub.Events():
			if string(ev.Line) != w+"\n" || ev.Seq != map[int]uint64{0: 1, 1: 3, 2: 4, 3: 5, 4: 6}[i] {
				t.Fatalf("event %d: seq %d %q, want %q", i, ev.Seq, ev.Line, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d not delivered", i)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "api.log"))
	if string(b) != strings.Join(want, "\n")+"\n" {
		t.Fatalf("capture:\n%s", b)
	}
	if s := h.Stats(); s.Duplicates != 2 || s.Rejected != 3 || s.Received != 5 {
		t.Fatalf("stats %+v", s)
	}
	// The ring still holds the first events intact.
	var ring []string
	h.mu.Lock()
	h.ring.each(func(e *Event) { ring = append(ring, string(e.Line)) })
	h.mu.Unlock()
	if strings.Join(ring, "") != strings.Join(want, "\n")+"\n" {
		t.Fatalf("ring: %q", ring)
	}
}
