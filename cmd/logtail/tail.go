package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logmesh/logmesh/logpub"
	"github.com/logmesh/logmesh/mesh"
	"github.com/rs/zerolog"
	"golang.org/x/term"
)

// newDiscovery is how logtail finds logds when --connect is not given; the
// mesh discovery sets it (nil: the mesh is not available in this build).
var newDiscovery func(o *options, stderr io.Writer) (discovery, error)

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	o, err := parseFlags(args, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	var d discovery
	switch {
	case len(o.connect) > 0:
		d = staticDiscovery{endpoints: o.connect}
	case newDiscovery != nil:
		if d, err = newDiscovery(o, stderr); err != nil {
			fmt.Fprintf(stderr, "logtail: %v\n", err)
			return exitError
		}
	default:
		fmt.Fprintln(stderr, "logtail: no mesh in this build: give --connect ENDPOINT")
		return exitUsage
	}
	defer d.Close()
	keys, err := loadKeys(o)
	if err != nil {
		fmt.Fprintf(stderr, "logtail: %v\n", err)
		return exitError
	}
	if f, ok := stdout.(*os.File); ok && !o.json && !o.noColor && !term.IsTerminal(int(f.Fd())) {
		o.noColor = true
	}
	t := &tailer{o: o, stderr: stderr, out: newPrinter(o, stdout), keys: keys}
	return t.run(ctx, d)
}

// tailer merges the streams of every logd found.
type tailer struct {
	o      *options
	stderr io.Writer
	out    *printer
	keys   *mesh.Curve     // --keys, nil on an open mesh
	done   <-chan struct{} // closed when logtail stops

	errMu  sync.Mutex
	failed bool
}

func (t *tailer) warnf(format string, a ...any) {
	t.errMu.Lock()
	defer t.errMu.Unlock()
	fmt.Fprintf(t.stderr, "logtail: "+format+"\n", a...)
}

func (t *tailer) run(ctx context.Context, d discovery) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t.done = ctx.Done()
	changes, err := d.Watch(ctx)
	if err != nil {
		t.warnf("%v", err)
		return exitError
	}
	events := make(chan item, 4096)
	var wg sync.WaitGroup
	streams := map[string]*streamHandle{}
	var window <-chan time.Time
	if !t.o.follow && len(t.o.connect) == 0 {
		// On the mesh, logds answer over some time: query those found
		// within the wait window.
		tm := time.NewTimer(t.o.wait)
		defer tm.Stop()
		window = tm.C
	}
	// On a closed mesh that does not admit this logtail, no logd ever
	// appears: say so after the wait rather than waiting forever.
	var closedCheck <-chan time.Time
	if _, ok := d.(refusals); ok && t.o.follow {
		tm := time.NewTimer(t.o.wait)
		defer tm.Stop()
		closedCheck = tm.C
	}
	// History is merged across the logds: printing waits until every logd
	// to merge is known (all of --connect, or those the mesh shows within
	// --wait).
	held := t.o.since > 0
	var release <-chan time.Time
	if held && len(t.o.connect) == 0 {
		tm := time.NewTimer(t.o.wait)
		defer tm.Stop()
		release = tm.C
	}
	m := newMerger(t.out, t.o.count, t.o.historyWait, held, t.warnf)
	started, seen := 0, 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.run(events, cancel)
	}()
	finish := func() int {
		cancel()
		wg.Wait()
		close(events)
		<-done
		t.out.flush()
		if t.failed {
			return exitError
		}
		return exitOK
	}
	since := time.Time{}
	if t.o.since > 0 {
		since = time.Now().Add(-t.o.since)
	}
	filter := t.o.filter
	streamsLeft := 0
	streamEnded := make(chan *streamHandle, 64)
	stream := func(sctx context.Context, h *streamHandle, peer *logdPeer) {
		started++
		streamsLeft++
		fd := newFeed(peer)
		fd.histSent = since.IsZero()
		sendControl(ctx.Done(), events, item{kind: itemOpen, hist: !since.IsZero(), feed: fd})
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.stream(sctx, h, fd, filter, since, events)
			sendControl(t.done, events, item{kind: itemClose, feed: fd})
			select {
			case streamEnded <- h:
			case <-ctx.Done():
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return finish()
		case <-closedCheck:
			closedCheck = nil
			// Without keys, a refused CURVE peer means a closed mesh: no
			// logd will ever be readable. With keys, an admitted logd may
			// still come: only warn.
			if started == 0 && t.refusedPeers(d) && t.keys == nil {
				t.failed = true
				return finish()
			}
		case <-release:
			release = nil
			sendControl(ctx.Done(), events, item{kind: itemRelease})
		case <-window:
			window = nil
			if streamsLeft == 0 {
				if started == 0 && !t.refusedPeers(d) {
					t.warnf("no logd found")
				}
				if started == 0 {
					t.failed = true
				}
				return finish()
			}
		case h := <-streamEnded:
			if streams[h.id] == h {
				delete(streams, h.id)
			}
			streamsLeft--
			if !t.o.follow && window == nil && streamsLeft == 0 && (len(t.o.connect) == 0 || started == len(t.o.connect)) {
				return finish()
			}
			if t.o.follow && streamsLeft == 0 && t.hasFailed() {
				return finish() // every logd refused this logtail
			}
		case ch, ok := <-changes:
			if !ok {
				return finish()
			}
			t.change(ctx, ch, streams, stream)
			if seen++; held && len(t.o.connect) > 0 && seen == len(t.o.connect) {
				sendControl(ctx.Done(), events, item{kind: itemRelease})
			}
		}
	}
}

// change starts the stream of a new logd (start), or stops that of a logd
// that left.
func (t *tailer) change(ctx context.Context, ch peerChange, streams map[string]*streamHandle, start func(context.Context, *streamHandle, *logdPeer)) {
	if ch.Gone {
		if h, ok := streams[ch.Peer.ID]; ok {
			if !h.left.Swap(true) { // not already told by its stream
				t.warnf("node %s left", h.name)
			}
			h.stop()
			delete(streams, ch.Peer.ID) // it may come back
		}
		return
	}
	if _, ok := streams[ch.Peer.ID]; ok {
		return
	}
	sctx, stop := context.WithCancel(ctx)
	h := &streamHandle{id: ch.Peer.ID, name: ch.Peer.Name, stop: stop}
	streams[ch.Peer.ID] = h
	peer := ch.Peer
	start(sctx, h, &peer)
}

// streamHandle is one running stream, told apart from a later stream of
// the same logd.
type streamHandle struct {
	id   string
	name string
	stop context.CancelFunc
	left atomic.Bool // its departure was reported (by the stream or the mesh)
}

// stream reads one logd's events into out (through its feed fd), reporting
// sequence gaps and drops. The history of its first subscription is merged
// with the other logds'; after a reconnection, the history since the last
// event received comes as it arrives. With
// --follow it reconnects after a failure until ctx ends (the logd left the
// mesh, or logtail stops), asking for the history since the last event
// received, so a logd restart loses nothing it captured.
func (t *tailer) stream(ctx context.Context, h *streamHandle, fd *feed, f logpub.Filter, since time.Time, out chan<- item) {
	peer := fd.peer
	defer t.histEnd(fd, out) // the merge waits for no stream that failed
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		last, connected, err := t.streamOnce(ctx, h, fd, f, since, out, attempt > 0)
		t.histEnd(fd, out)
		if !last.IsZero() {
			since, backoff = last.Add(time.Nanosecond), 100*time.Millisecond
		}
		if err == nil || ctx.Err() != nil {
			return
		}
		if !t.o.follow || refusedByHub(err) {
			t.warnf("node %s: %v", peer.Name, err)
			t.errMu.Lock()
			t.failed = true
			t.errMu.Unlock()
			return
		}
		switch {
		case connected:
			if !h.left.Swap(true) {
				t.warnf("node %s left: %v", peer.Name, err)
			}
		case attempt == 0:
			t.warnf("node %s unreachable, retrying: %v", peer.Name, err)
		}
		if since.IsZero() {
			since = time.Now()
		}
		tm := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			tm.Stop()
			return
		case <-tm.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// streamOnce runs one subscription until it ends (nil error: end of
// history without --follow) or fails; it returns the receive time of the
// last event it passed on and whether it got connected at all.
func (t *tailer) streamOnce(ctx context.Context, h *streamHandle, fd *feed, f logpub.Filter, since time.Time, out chan<- item, retry bool) (last time.Time, connected bool, err error) {
	peer := fd.peer
	st, err := t.subscribe(ctx, peer, logpub.SubscribeOptions{Filter: f, Since: since, Follow: t.o.follow, MarkHistoryEnd: t.o.follow})
	if err != nil {
		return last, false, err
	}
	defer st.Close()
	if retry {
		h.left.Store(false)
		t.warnf("node %s back", peer.Name)
	}
	if st.HistoryDone() {
		t.histEnd(fd, out) // live only
	}
	var gaps logpub.GapDetector
	var missed uint64 // reported as gaps
	defer func() {
		// The logd's count of what it dropped for this subscription covers
		// drops after which its source sent nothing more: no gap shows
		// them. Those already reported as gaps are not reported again (the
		// count stops at the end of the history: drops after it that a gap
		// showed make this an underestimate, never a repeat).
		if d := st.Dropped(); d > missed {
			t.warnf("node %s: %d events missed (dropped by the logd for this subscriber)", peer.Name, d-missed)
		}
	}()
	for {
		e, err := st.Next()
		if err == io.EOF {
			return last, true, nil
		}
		if errors.Is(err, logpub.ErrHistoryEnd) {
			t.histEnd(fd, out)
			continue
		}
		if err != nil {
			return last, true, err
		}
		if n := gaps.Check(&e); n > 0 {
			missed += n
			t.warnf("node %s service %s: %d events missed", peer.Name, e.Service, n)
		}
		if !e.History || !e.Received.IsZero() {
			last = e.Received
		}
		if !fd.send(ctx, out, e) {
			return last, true, nil
		}
	}
}

// histEnd tells the merger that fd's merged history is complete, once.
func (t *tailer) histEnd(fd *feed, out chan<- item) {
	if !fd.histSent {
		fd.histSent = true
		sendControl(t.done, out, item{kind: itemHistEnd, feed: fd})
	}
}

// printer formats events: raw JSON lines or zerolog's console style.
type printer struct {
	o       *options
	w       *bufio.Writer
	console zerolog.ConsoleWriter
	// untimed formats events logged without zerolog's Timestamp(): it
	// shows when logd received them (received) rather than "<nil>".
	untimed  zerolog.ConsoleWriter
	received time.Time
	buf      bytes.Buffer
}

// timeKey is zerolog's timestamp field as it appears in a JSON line.
var timeKey = []byte(`"` + zerolog.TimestampFieldName + `":`)

func newPrinter(o *options, w io.Writer) *printer {
	p := &printer{o: o, w: bufio.NewWriterSize(w, 64<<10)}
	p.console = zerolog.ConsoleWriter{Out: &p.buf, NoColor: o.noColor, TimeFormat: time.RFC3339}
	p.untimed = p.console
	p.untimed.FormatTimestamp = func(any) string { return p.received.Local().Format(time.RFC3339) }
	return p
}

// print writes one event if it passes --grep/--exclude; it reports whether
// it did.
func (p *printer) print(e *logpub.Event, peer *logdPeer) bool {
	if p.o.grepRE != nil && !p.o.grepRE.Match(e.Line) {
		return false
	}
	if p.o.excludeRE != nil && p.o.excludeRE.Match(e.Line) {
		return false
	}
	if p.o.json {
		p.w.Write(e.Line)
		return true
	}
	p.buf.Reset()
	cw := &p.console
	if !bytes.Contains(e.Line, timeKey) {
		p.received, cw = e.Received, &p.untimed
	}
	if _, err := cw.Write(e.Line); err != nil {
		p.buf.Reset()
		p.buf.Write(e.Line)
	}
	node := e.Node.String()[:8]
	if peer.Name != "" && peer.Name != peer.Endpoint {
		node = peer.Name
	}
	if p.o.noColor {
		fmt.Fprintf(p.w, "%s/%s ", node, e.Service)
	} else {
		fmt.Fprintf(p.w, "\x1b[36m%s/%s\x1b[0m ", node, e.Service)
	}
	p.w.Write(p.buf.Bytes())
	if b := p.buf.Bytes(); len(b) == 0 || b[len(b)-1] != '\n' {
		p.w.WriteByte('\n')
	}
	return true
}

func (p *printer) flush() { p.w.Flush() }
