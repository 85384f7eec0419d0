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
	"time"

	"github.com/logmesh/logmesh/logpub"
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
	if f, ok := stdout.(*os.File); ok && !o.json && !o.noColor && !term.IsTerminal(int(f.Fd())) {
		o.noColor = true
	}
	t := &tailer{o: o, stderr: stderr, out: newPrinter(o, stdout)}
	return t.run(ctx, d)
}

// tailer merges the streams of every logd found.
type tailer struct {
	o      *options
	stderr io.Writer
	out    *printer

	errMu  sync.Mutex
	failed bool
}

type item struct {
	ev   logpub.Event
	peer *logdPeer
}

func (t *tailer) warnf(format string, a ...any) {
	t.errMu.Lock()
	defer t.errMu.Unlock()
	fmt.Fprintf(t.stderr, "logtail: "+format+"\n", a...)
}

func (t *tailer) run(ctx context.Context, d discovery) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes, err := d.Watch(ctx)
	if err != nil {
		t.warnf("%v", err)
		return exitError
	}
	events := make(chan item, 4096)
	var wg sync.WaitGroup
	streams := map[string]context.CancelFunc{}
	var window <-chan time.Time
	if !t.o.follow && len(t.o.connect) == 0 {
		// On the mesh, logds answer over some time: query those found
		// within the wait window.
		tm := time.NewTimer(t.o.wait)
		defer tm.Stop()
		window = tm.C
	}
	started := 0
	printed := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for it := range events {
			if !t.out.print(&it.ev, it.peer) {
				continue
			}
			printed++
			if len(events) == 0 {
				t.out.flush()
			}
			if t.o.count > 0 && printed >= t.o.count {
				cancel()
				for range events {
				}
				return
			}
		}
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
	filter := logpub.Filter{MinLevel: t.o.minLevel, Services: t.o.services, Nodes: t.o.nodes}
	streamsLeft := 0
	streamEnded := make(chan string, 64)
	for {
		select {
		case <-ctx.Done():
			return finish()
		case <-window:
			window = nil
			if streamsLeft == 0 {
				if started == 0 {
					t.warnf("no logd found")
					t.failed = true
				}
				return finish()
			}
		case id := <-streamEnded:
			delete(streams, id)
			streamsLeft--
			if !t.o.follow && window == nil && streamsLeft == 0 && (len(t.o.connect) == 0 || started == len(t.o.connect)) {
				return finish()
			}
		case ch, ok := <-changes:
			if !ok {
				return finish()
			}
			if ch.Gone {
				if stop, ok := streams[ch.Peer.ID]; ok {
					t.warnf("node %s left", ch.Peer.Name)
					stop()
				}
				continue
			}
			if _, ok := streams[ch.Peer.ID]; ok {
				continue
			}
			sctx, stop := context.WithCancel(ctx)
			streams[ch.Peer.ID] = stop
			started++
			streamsLeft++
			peer := ch.Peer
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.stream(sctx, &peer, filter, since, events)
				select {
				case streamEnded <- peer.ID:
				case <-ctx.Done():
				}
			}()
		}
	}
}

// stream reads one logd's events into out, reporting sequence gaps.
func (t *tailer) stream(ctx context.Context, peer *logdPeer, f logpub.Filter, since time.Time, out chan<- item) {
	st, err := logpub.Subscribe(ctx, peer.Endpoint, logpub.SubscribeOptions{Filter: f, Since: since, Follow: t.o.follow})
	if err != nil {
		if ctx.Err() == nil {
			t.warnf("node %s: %v", peer.Name, err)
			t.errMu.Lock()
			t.failed = true
			t.errMu.Unlock()
		}
		return
	}
	defer st.Close()
	var gaps logpub.GapDetector
	for {
		e, err := st.Next()
		if err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return
			}
			if t.o.follow {
				t.warnf("node %s left: %v", peer.Name, err)
			} else {
				t.warnf("node %s: %v", peer.Name, err)
				t.errMu.Lock()
				t.failed = true
				t.errMu.Unlock()
			}
			return
		}
		if n := gaps.Check(&e); n > 0 {
			t.warnf("node %s service %s: %d events missed", peer.Name, e.Service, n)
		}
		select {
		case out <- item{ev: e, peer: peer}:
		case <-ctx.Done():
			return
		}
	}
}

// printer formats events: raw JSON lines or zerolog's console style.
type printer struct {
	o       *options
	w       *bufio.Writer
	console zerolog.ConsoleWriter
	buf     bytes.Buffer
}

func newPrinter(o *options, w io.Writer) *printer {
	p := &printer{o: o, w: bufio.NewWriterSize(w, 64<<10)}
	p.console = zerolog.ConsoleWriter{Out: &p.buf, NoColor: o.noColor, TimeFormat: time.RFC3339}
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
	if _, err := p.console.Write(e.Line); err != nil {
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
