package logpub

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fullDisk mounts a 256 KiB tmpfs for the test and fills it with a file
// named "filler", so that any further write fails with ENOSPC. Needs root;
// under CI (root) it must run.
func fullDisk(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root: a full-disk test cannot skip")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, unix.ENOSPC) {
				return dir
			}
			t.Fatalf("fill tmpfs: %v", err)
		}
	}
}

// TestCaptureFailureIsNotAcknowledged: while the capture file cannot be
// written (the disk fills in the middle of a batch), the hub neither
// acknowledges nor publishes the events; once it can, the writer's resent
// batches land in the file, each event once and in order, no line torn.
func TestCaptureFailureIsNotAcknowledged(t *testing.T) {
	dir := fullDisk(t)
	filler := filepath.Join(dir, "filler")
	// Leave one page: the first batch is written in part, then fails.
	if fi, err := os.Stat(filler); err != nil || os.Truncate(filler, fi.Size()-4096) != nil {
		t.Fatalf("free one page: %v", err)
	}
	h := startHub(t, func(c *HubConfig) { c.Capture = CaptureConfig{Dir: dir} })
	a := newApp(t, WriterOptions{Endpoint: h.WriterEndpoint(), Service: "api"})
	for i := 0; i < 200; i++ {
		a.log.Warn().Int("i", i).Msg("disk trouble")
	}
	waitFor(t, "capture errors", func() bool { return h.Stats().CaptureErrors > 0 })
	// What fitted in the free page may be acknowledged; nothing more, and
	// the file holds whole lines only.
	acked := a.w.Stats().Acked
	held, err := os.ReadFile(filepath.Join(dir, "api.log"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := uint64(strings.Count(string(held), "\n")); acked > lines || acked == 200 {
		t.Fatalf("writer got %d acks with %d events in the file of a full disk", acked, lines)
	}
	if len(held) > 0 && held[len(held)-1] != '\n' {
		t.Fatalf("a torn line at the end of the capture file: %q", held[max(0, len(held)-80):])
	}
	big := []byte(`{"level":"info","message":"` + strings.Repeat("x", 8000) + `"}`) // more than the free page
	if err := h.Ingest("api", big); !errors.Is(err, ErrCapture) {
		t.Fatalf("Ingest while capture fails = %v, want ErrCapture", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for a.w.Stats().Acked != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("writer stats after the disk recovered: %+v, hub %+v", a.w.Stats(), h.Stats())
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	got, err := os.ReadFile(filepath.Join(dir, "api.log"))
	if err != nil {
		t.Fatal(err)
	}
	want := ""
	for _, l := range a.lines() {
		want += l
	}
	if string(got) != want {
		t.Fatalf("capture file after recovery:\n%s\nwant:\n%s", got, want)
	}
}

// TestCaptureFailureAfterRotationIsCapturedOnce: a batch that spans a size
// rotation on a full disk is captured in part (the events before the
// rotation land in the old file) and then fails. Those events are settled,
// the rest are not acknowledged; the writer's resend then captures only
// the rest, so every event is in the files exactly once.
func TestCaptureFailureAfterRotationIsCapturedOnce(t *testing.T) {
	dir := fullDisk(t)
	filler := filepath.Join(dir, "filler")
	// Two free pages, for the first file and its index: the old file's
	// part of the batch fits, the new file after the rotation gets nothing.
	if fi, err := os.Stat(filler); err != nil || os.Truncate(filler, fi.Size()-8192) != nil {
		t.Fatalf("free two pages: %v", err)
	}
	h := startHub(t, func(c *HubConfig) {
		c.Capture = CaptureConfig{Dir: dir, MaxSize: 2000, NoCompress: true}
	})
	c, err := net.Dial("tcp", strings.TrimPrefix(h.WriterEndpoint(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(appendHello(nil, hello{Source: 7, Service: "api"}))
	var lines []string
	for i := range 30 { // about 3 KB: more than MaxSize
		lines = append(lines, fmt.Sprintf(`{"level":"info","i":%d,"message":"%s"}`+"\n", i, strings.Repeat("y", 60)))
	}
	if _, err := c.Write(encodeBatch(1, lines...)); err != nil {
		t.Fatal(err)
	}
	// The hub closes the connection without an ack.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if typ, _, _, err := readFrame(c, nil); err == nil {
		t.Fatalf("frame %d acknowledged a batch the disk could not take", typ)
	}
	st := h.Stats()
	if st.CaptureErrors == 0 || st.Captured == 0 || st.Captured >= 30 {
		t.Fatalf("hub after the failed rotation: %+v (want some, not all, captured)", st)
	}

	// Room again; the writer resends the whole batch on a new connection.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c2, err := net.Dial("tcp", strings.TrimPrefix(h.WriterEndpoint(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write(appendHello(nil, hello{Source: 7, Service: "api"}))
	if _, err := c2.Write(encodeBatch(1, lines...)); err != nil {
		t.Fatal(err)
	}
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, body, _, err := readFrame(c2, nil)
	if err != nil || typ != frameAck {
		t.Fatalf("resent batch: no ack: %v", err)
	}
	if seq, _ := decodeAck(body); seq != 30 {
		t.Fatalf("resent batch acked to %d, want 30", seq)
	}
	// Every event once, in order, across the rotated file and the current.
	files, err := filepath.Glob(filepath.Join(dir, "api*.log"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files) // api-<time>.log sorts before api.log
	var got string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got += string(b)
	}
	if want := strings.Join(lines, ""); got != want {
		t.Fatalf("capture files (%v) hold %d lines, want the 30 once:\n%s", files, strings.Count(got, "\n"), got)
	}
	if st := h.Stats(); st.Captured != 30 || st.Duplicates == 0 {
		t.Fatalf("hub: %+v, want 30 captured and the settled prefix counted as duplicates", st)
	}
}
