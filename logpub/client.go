package logpub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/google/uuid"
)

// SubscribeOptions says what a Stream receives.
type SubscribeOptions struct {
	Filter Filter
	// Curve, when set, subscribes with CURVE and authenticates the hub by
	// its public key; without it a keyed hub refuses the subscription
	// (ErrCurveRequired). There is no fallback to plaintext (ErrNotCurve).
	Curve *CurveClient
	// Since, if not zero, first replays the history from that time (from
	// the hub's ring, then its capture files for older times).
	Since time.Time
	// Follow keeps streaming live events; without it the stream ends
	// (io.EOF) after the history.
	Follow bool
	// Resume, instead of Since, asks for the hub's ring events after the
	// After cursors (every source without a cursor from its start), then
	// the hub's last sequence of each source (Stream.Sources); Next returns
	// ErrHistoryEnd once in between. See resume.go.
	Resume bool
	After  []SourceSeq
	// MarkHistoryEnd makes Next on a Follow stream return ErrHistoryEnd
	// once, when the hub has sent the history asked for, so that the
	// caller knows it before the first live event. (A live-only stream has
	// no history: HistoryDone is true when Subscribe returns.)
	MarkHistoryEnd bool
}

// Stream receives events from one hub's PubEndpoint.
type Stream struct {
	endpoint string
	conn     net.Conn
	stop     func() bool

	pending     []Event
	next        int // index in pending of the next event to return
	historyDone bool
	hubDropped  uint64
	closeOnce   sync.Once
	follow      bool
	resume      bool
	markEnd     bool
	sources     []SourceSeq
}

// Subscribe connects to a hub's publish endpoint and sends the filter; the
// hub applies it before anything crosses the wire. Cancelling ctx closes
// the Stream.
func Subscribe(ctx context.Context, endpoint string, opts SubscribeOptions) (*Stream, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := dialHub(dctx, endpoint, opts.Curve, true)
	if err != nil {
		return nil, err
	}
	req := subscribeReq{Follow: opts.Follow, Filter: opts.Filter, Resume: opts.Resume, After: opts.After}
	if !opts.Since.IsZero() && !opts.Resume {
		req.Since = opts.Since.UnixNano()
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(appendSubscribe(nil, req)); err != nil {
		c.Close()
		return nil, fmt.Errorf("logpub: subscribe to %s: %w", endpoint, err)
	}
	c.SetWriteDeadline(time.Time{})
	s := &Stream{endpoint: endpoint, conn: c, follow: opts.Follow, resume: opts.Resume, markEnd: opts.MarkHistoryEnd}
	if opts.Follow && opts.Since.IsZero() && !opts.Resume {
		// A live-only stream starts when the hub registers it, which it
		// marks with the END of its (empty) history: wait for it, so that
		// every event accepted after Subscribe returns is in the stream.
		if err := s.awaitEnd(dctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("logpub: subscribe to %s: %w", endpoint, err)
		}
	}
	s.stop = context.AfterFunc(ctx, func() { c.Close() })
	return s, nil
}

// awaitEnd reads the END frame that opens a live-only stream.
func (s *Stream) awaitEnd(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		s.conn.SetReadDeadline(d)
		defer s.conn.SetReadDeadline(time.Time{})
	}
	typ, body, _, err := readFrame(s.conn, nil)
	if err != nil {
		return err
	}
	if typ != frameEnd {
		return frameErr("first frame of a live stream has type %d, want END", typ)
	}
	d, err := decodeEnd(body)
	if err != nil {
		return err
	}
	s.historyDone, s.hubDropped = true, d
	return nil
}

// Endpoint returns the endpoint the Stream is connected to.
func (s *Stream) Endpoint() string { return s.endpoint }

// HistoryDone reports whether the hub has sent all the history asked for.
func (s *Stream) HistoryDone() bool { return s.historyDone }

// Dropped returns how many matching events the hub reported, in the END
// of the history, as dropped for this subscription until then (0 before
// END). Those with a later event of their source also show as a jump in
// its StreamSeq.
func (s *Stream) Dropped() uint64 { return s.hubDropped }

// Next returns the next event. It returns io.EOF at the end of a stream
// without Follow, and an error when the hub goes away or the Stream is
// closed. Event.Line stays valid after later calls.
func (s *Stream) Next() (Event, error) {
	for s.next >= len(s.pending) {
		typ, body, _, err := readFrame(s.conn, nil)
		if err != nil {
			if errors.Is(err, io.EOF) && s.historyDone && !s.follow {
				return Event{}, io.EOF
			}
			return Event{}, fmt.Errorf("logpub: stream from %s: %w", s.endpoint, err)
		}
		switch typ {
		case frameEvents:
			s.pending, err = decodeEvents(body, s.pending[:0])
			s.next = 0
			if err != nil {
				s.pending = s.pending[:0]
				return Event{}, fmt.Errorf("logpub: stream from %s: %w", s.endpoint, err)
			}
		case frameEnd:
			d, err := decodeEnd(body)
			if err != nil {
				return Event{}, fmt.Errorf("logpub: stream from %s: %w", s.endpoint, err)
			}
			s.historyDone, s.hubDropped = true, d
			if !s.follow {
				return Event{}, io.EOF
			}
			if s.resume || s.markEnd {
				return Event{}, ErrHistoryEnd
			}
		case frameSources:
			if !s.resume {
				return Event{}, fmt.Errorf("logpub: stream from %s: %w", s.endpoint, frameErr("SOURCES on a stream without resume"))
			}
			if s.sources, err = decodeSources(body, s.sources); err != nil {
				return Event{}, fmt.Errorf("logpub: stream from %s: %w", s.endpoint, err)
			}
			if len(s.sources) > MaxCursors {
				return Event{}, fmt.Errorf("logpub: stream from %s: %w", s.endpoint, frameErr("more than %d sources", MaxCursors))
			}
		default:
			return Event{}, fmt.Errorf("logpub: stream from %s: %w", s.endpoint, frameErr("unexpected frame type %d", typ))
		}
	}
	// An index, not s.pending[1:]: the slice keeps its capacity for the
	// next frame instead of being reallocated each time.
	e := s.pending[s.next]
	s.pending[s.next] = Event{}
	s.next++
	return e, nil
}

// Close disconnects.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.conn.Close()
	})
	return nil
}

// GapKey identifies one event source as a subscriber sees it.
type GapKey struct {
	Node    uuid.UUID
	Service string
	Source  uint64
}

// GapDetector finds sequence gaps in the live events of one or more
// Streams: a jump in an event's StreamSeq means the hub dropped that many
// matching events for this subscriber.
type GapDetector struct {
	last map[GapKey]uint64
}

// Check records e and returns how many events of its source were missed
// just before it (0 for history events). Stream sequences count from the
// start of the subscription, so a first event with StreamSeq n > 1 means n-1
// were missed.
func (g *GapDetector) Check(e *Event) uint64 {
	if e.History || e.StreamSeq == 0 {
		return 0
	}
	if g.last == nil {
		g.last = map[GapKey]uint64{}
	}
	k := GapKey{e.Node, e.Service, e.Source}
	prev, seen := g.last[k]
	g.last[k] = e.StreamSeq
	if !seen {
		return e.StreamSeq - 1
	}
	if e.StreamSeq > prev+1 {
		return e.StreamSeq - prev - 1
	}
	return 0
}

// ErrHistoryEnd is returned once by Next on a Resume stream when the hub
// has sent the history and its sources report (Sources); the stream goes on
// with live events when it follows. With MarkHistoryEnd, a Follow stream
// returns it once at the end of its history.
var ErrHistoryEnd = errors.New("logpub: end of resumed history")

// Sources returns the hub's last accepted sequence of each source, as
// reported on a Resume stream; complete once Next returned ErrHistoryEnd.
func (s *Stream) Sources() []SourceSeq { return s.sources }

// Buffered returns how many received events Next will return without
// reading from the connection (a batch boundary for callers that batch).
func (s *Stream) Buffered() int { return len(s.pending) }
