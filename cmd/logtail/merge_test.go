package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/logpub"
	"github.com/rs/zerolog"
)

// inProcessHub starts a hub in the test process, capturing to a temporary
// directory, with mod applied to its configuration.
func inProcessHub(t *testing.T, mod func(*logpub.HubConfig)) *logpub.Hub {
	t.Helper()
	dir := t.TempDir()
	cfg := logpub.DefaultHubConfig()
	cfg.WriterEndpoint = "ipc://" + filepath.Join(dir, "w.sock")
	cfg.Capture.Dir = filepath.Join(dir, "cap")
	if mod != nil {
		mod(&cfg)
	}
	h, err := logpub.NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// ingest adds one event with counter i (and optional padding) to h.
func ingest(t *testing.T, h *logpub.Hub, service string, i int, pad string) {
	t.Helper()
	line := fmt.Sprintf(`{"level":"info","i":%d,"pad":%q,"message":"m"}`, i, pad)
	if err := h.Ingest(service, []byte(line)); err != nil {
		t.Fatal(err)
	}
}

// runLogtail runs logtail in this process with stdout to out; the exit code
// comes on the returned channel.
func runLogtail(ctx context.Context, out io.Writer, stderr io.Writer, args ...string) <-chan int {
	code := make(chan int, 1)
	go func() { code <- run(ctx, args, out, stderr, func(string) string { return "" }) }()
	return code
}

var counterRE = regexp.MustCompile(`"i":(\d+)`)

// counters returns the "i" of every line of out.
func counters(t *testing.T, out string) []int {
	t.Helper()
	var is []int
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		m := counterRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unexpected line %q", l)
		}
		n, _ := strconv.Atoi(m[1])
		is = append(is, n)
	}
	return is
}

func upTo(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHistoryMergedByReceiveTime: three logds receive events in turn (event
// i goes to logd i%3, so receive times follow i), each from three services
// in turn (one capture file each); logtail must print the history in i
// order, from the ring and from several capture files per logd alike, stop
// at exactly --count, and with --follow print live events after the
// history.
func TestHistoryMergedByReceiveTime(t *testing.T) {
	const n = 900
	var hubs []*logpub.Hub
	var pubs []string
	for k := 0; k < 3; k++ {
		h := inProcessHub(t, func(c *logpub.HubConfig) {
			if k == 1 {
				c.RingEvents = 50        // most of its history comes from capture files
				c.Capture.MaxSize = 4096 // rotated and compressed ones among them
			}
		})
		hubs, pubs = append(hubs, h), append(pubs, h.PubEndpoint())
	}
	for i := 0; i < n; i++ {
		ingest(t, hubs[i%3], []string{"api", "db", "web"}[(i/3)%3], i, "")
	}
	waitFor(t, "rotated capture files", 10*time.Second, func() bool { return hubs[1].Stats().Archives >= 2 })
	connect := strings.Join(pubs, ",")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	var out, errOut lockedLines
	if code := <-runLogtail(ctx, &out, &errOut, "--since", "1h", "--json", "--connect", connect); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if got := counters(t, out.String()); !slices.Equal(got, upTo(n)) {
		t.Fatalf("history not merged by receive time: got %v", got)
	}
	if errOut.String() != "" {
		t.Fatalf("stderr: %s", errOut.String())
	}

	out, errOut = lockedLines{}, lockedLines{}
	if code := <-runLogtail(ctx, &out, &errOut, "--since", "1h", "--json", "--count", "100", "--connect", connect); code != 0 {
		t.Fatalf("--count: exit %d: %s", code, errOut.String())
	}
	if got := counters(t, out.String()); !slices.Equal(got, upTo(100)) {
		t.Fatalf("--count 100: got %v", got)
	}

	// --follow: the merged history, then live events.
	const live = 30
	out, errOut = lockedLines{}, lockedLines{}
	code := runLogtail(ctx, &out, &errOut, "-f", "--since", "1h", "--json", "--count", strconv.Itoa(n+live), "--connect", connect)
	waitFor(t, "the history", 30*time.Second, func() bool { return strings.Count(out.String(), "\n") >= n })
	for i := n; i < n+live; i++ {
		ingest(t, hubs[i%3], "api", i, "")
	}
	if c := <-code; c != 0 {
		t.Fatalf("-f: exit %d: %s", c, errOut.String())
	}
	got := counters(t, out.String())
	if len(got) != n+live || !slices.Equal(got[:n], upTo(n)) {
		t.Fatalf("-f: got %v", got)
	}
	perNode := map[int][]int{}
	for _, i := range got[n:] {
		perNode[i%3] = append(perNode[i%3], i)
	}
	for k, is := range perNode {
		if !slices.IsSorted(is) || len(is) != live/3 || is[0] < n {
			t.Fatalf("-f: live events of node %d: %v", k, is)
		}
	}
}

// TestHistoryMergeSkipsSlowNode: one logd is frozen (SIGSTOP) when logtail
// asks for history; after --history-wait logtail says so and prints the
// other logds' history merged; when the logd wakes, its history follows
// and nothing is lost.
func TestHistoryMergeSkipsSlowNode(t *testing.T) {
	dir := t.TempDir()
	writerEP, slowPub := startHub(t, dir)
	w := logpub.NewWriter(logpub.WriterOptions{Endpoint: writerEP, Service: "api"})
	defer w.Close()
	log := zerolog.New(w)
	const slowN = 20
	for i := 0; i < slowN; i++ {
		log.Info().Int("i", 1000+i).Msg("m")
	}
	waitAcks(t, w)
	var hubs []*logpub.Hub
	for k := 0; k < 2; k++ {
		hubs = append(hubs, inProcessHub(t, nil))
	}
	for i := 0; i < 200; i++ {
		ingest(t, hubs[i%2], "api", i, "")
	}
	proc := hubProcessOf(t, slowPub)
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer proc.Signal(syscall.SIGCONT)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var out, errOut lockedLines
	code := runLogtail(ctx, &out, &errOut, "--since", "1h", "--json", "--history-wait", "300ms",
		"--connect", strings.Join([]string{hubs[0].PubEndpoint(), slowPub, hubs[1].PubEndpoint()}, ","))
	waitFor(t, "the other nodes' history", 30*time.Second, func() bool { return strings.Count(out.String(), "\n") >= 200 })
	if !strings.Contains(errOut.String(), "node "+slowPub+": no history for 300ms") {
		t.Fatalf("slow node not reported: %q", errOut.String())
	}
	if err := proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if c := <-code; c != 0 {
		t.Fatalf("exit %d: %s", c, errOut.String())
	}
	got := counters(t, out.String())
	want := upTo(200)
	for i := 0; i < slowN; i++ {
		want = append(want, 1000+i)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v", got)
	}
}

// hubProcessOf returns the hub process started by startHub that publishes
// on pub.
func hubProcessOf(t *testing.T, pub string) *os.Process {
	t.Helper()
	p, ok := hubProcs.Load(pub)
	if !ok {
		t.Fatalf("no hub process for %s", pub)
	}
	return p.(*os.Process)
}

// blockingWriter blocks every Write until release is closed; blocked is
// closed at the first Write.
type blockingWriter struct {
	lockedLines
	blocked, release chan struct{}
	once             chan struct{}
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	select {
	case <-b.once:
	default:
		close(b.once)
		close(b.blocked)
	}
	<-b.release
	return b.lockedLines.Write(p)
}

var droppedRE = regexp.MustCompile(`(?m)^logtail: node \S+(?: service (\S+))?: (\d+) events missed`)

// TestDropsAtEndOfStreamReported: logtail is stuck (its stdout blocks)
// while the logd still sends it history; live events meanwhile overflow
// the logd's queue for it. Of "db" a later event shows the gap; of "api"
// none comes, so only the logd's drop count tells. Every drop must be
// reported exactly once.
func TestDropsAtEndOfStreamReported(t *testing.T) {
	h := inProcessHub(t, func(c *logpub.HubConfig) { c.SubQueueEvents = 10 })
	// History well beyond what the connection and logtail buffer, so that
	// the logd is still sending it when the live events come.
	const hist = 1500
	pad := strings.Repeat("x", 16<<10)
	for i := 0; i < hist; i++ {
		ingest(t, h, "old", i, pad)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out := &blockingWriter{blocked: make(chan struct{}), release: make(chan struct{}), once: make(chan struct{})}
	var errOut lockedLines
	code := runLogtail(ctx, out, &errOut, "-f", "--since", "1h", "--json", "--count", strconv.Itoa(hist+11), "--connect", h.PubEndpoint())
	select {
	case <-out.blocked:
	case <-ctx.Done():
		t.Fatal("logtail printed nothing")
	}
	const api, db = 60, 60
	for i := 0; i < api; i++ {
		ingest(t, h, "api", 10000+i, "")
	}
	for i := 0; i < db; i++ {
		ingest(t, h, "db", 20000+i, "")
	}
	// The queue takes the first 10 api events, the rest is dropped.
	const drops = api + db - 10
	waitFor(t, "the logd's drops", 20*time.Second, func() bool { return h.Stats().SubscriberDrops == drops })
	close(out.release)
	waitFor(t, "history and queued events", 30*time.Second, func() bool { return strings.Count(out.String(), "\n") == hist+10 })
	ingest(t, h, "db", 20000+db, "") // shows the db gap
	if c := <-code; c != 0 {
		t.Fatalf("exit %d: %s", c, errOut.String())
	}
	if d := h.Stats().SubscriberDrops; d != drops {
		t.Fatalf("logd dropped %d, want %d", d, drops)
	}
	total, dbGap, endReport := 0, 0, 0
	for _, m := range droppedRE.FindAllStringSubmatch(errOut.String(), -1) {
		k, _ := strconv.Atoi(m[2])
		total += k
		switch m[1] {
		case "db":
			dbGap += k
		case "":
			endReport += k
		}
	}
	if total != drops || dbGap != db || endReport != api-10 {
		t.Fatalf("reported %d missed (db gap %d, end of stream %d), want %d (%d, %d); stderr:\n%s", total, dbGap, endReport, drops, db, api-10, errOut.String())
	}
}

// TestMergerOrder drives the merger directly: history by receive time (an
// event without one keeps its place after its predecessor), live events
// held until every history is printed, then in arrival order; a feed that
// keeps the merge waiting is reported once and no longer waited for.
func TestMergerOrder(t *testing.T) {
	var out bytes.Buffer
	var warnings []string
	m := newMerger(newPrinter(&options{json: true}, &out), 0, time.Second, true, func(f string, a ...any) {
		warnings = append(warnings, fmt.Sprintf(f, a...))
	})
	a, b, c := newFeed(&logdPeer{Name: "a"}), newFeed(&logdPeer{Name: "b"}), newFeed(&logdPeer{Name: "c"})
	t0 := time.Unix(1000, 0)
	ev := func(f *feed, i int, recv time.Time) {
		f.tokens <- struct{}{}
		m.add(item{kind: itemEvent, feed: f, ev: logpub.Event{Received: recv, Line: []byte(fmt.Sprintf(`{"i":%d}`+"\n", i))}}, t0)
	}
	printed := func(want ...int) {
		t.Helper()
		if m.emit() {
			t.Fatal("count reached without --count")
		}
		m.out.flush()
		got := counters(t, out.String())
		if len(got) != len(want) || (len(want) > 0 && !slices.Equal(got, want)) {
			t.Fatalf("printed %v, want %v", got, want)
		}
	}
	for _, f := range []*feed{a, b, c} {
		m.add(item{kind: itemOpen, hist: true, feed: f}, t0)
	}
	ev(a, 1, t0.Add(1))
	ev(b, 2, t0.Add(2))
	ev(c, 4, t0.Add(4))
	printed() // held until every feed is known
	m.add(item{kind: itemRelease}, t0)
	printed(1) // a's next may be older than 2
	ev(a, 6, t0.Add(6))
	printed(1, 2)
	ev(b, 3, time.Time{}) // no receive time: right after b's 2
	printed(1, 2, 3)
	m.add(item{kind: itemHistEnd, feed: b}, t0)
	printed(1, 2, 3, 4)
	ev(b, 100, t0.Add(100)) // live: waits for the history of a and c
	printed(1, 2, 3, 4)
	if _, ok := m.deadline(); !ok {
		t.Fatal("no deadline while waiting for c")
	}
	m.expire(time.Now().Add(2 * time.Second))
	m.expire(time.Now().Add(4 * time.Second))
	if len(warnings) != 1 || !strings.Contains(warnings[0], "node c: no history for 1s") {
		t.Fatalf("warnings %q", warnings)
	}
	printed(1, 2, 3, 4, 6) // c no longer waited for; a still is
	m.add(item{kind: itemClose, feed: a}, t0)
	printed(1, 2, 3, 4, 6, 100)
	ev(c, 7, t0.Add(7)) // late history of the slow feed
	ev(c, 8, t0.Add(8))
	m.add(item{kind: itemHistEnd, feed: c}, t0)
	ev(c, 101, t0.Add(101))
	ev(b, 102, t0.Add(102))
	printed(1, 2, 3, 4, 6, 100, 7, 8, 101, 102)
	if len(m.feeds) != 2 {
		t.Fatalf("%d feeds after a closed, want 2", len(m.feeds))
	}
}

// TestHistoryMergedOnMesh: the logds found on the mesh within --wait have
// their history merged, with and without --follow.
func TestHistoryMergedOnMesh(t *testing.T) {
	nodes := []*meshLogd{startMeshLogd(t, "alpha"), startMeshLogd(t, "beta")}
	const n = 200
	for i := 0; i < n; i++ {
		ingest(t, nodes[i%2].hub, "api", i, "")
	}
	mcfg := meshtest.Config(t)
	args := []string{"--since", "1h", "--json", "--wait", "1500ms", "--beacon-port", strconv.Itoa(mcfg.BeaconPort),
		"--interface", "lo", "--broadcast", "127.255.255.255", "--bind", "127.0.0.1"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, follow := range []bool{false, true} {
		a := args
		if follow {
			a = append(a, "-f", "--count", strconv.Itoa(n))
		}
		var out, errOut lockedLines
		if code := <-runLogtail(ctx, &out, &errOut, a...); code != 0 {
			t.Fatalf("follow %v: exit %d: %s", follow, code, errOut.String())
		}
		if got := counters(t, out.String()); !slices.Equal(got, upTo(n)) {
			t.Fatalf("follow %v: history not merged: %v", follow, got)
		}
	}
}
