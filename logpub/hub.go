package logpub

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/internal/admission"
	"github.com/rs/zerolog"
)

// HubConfig configures a Hub. Start from DefaultHubConfig.
type HubConfig struct {
	// Node is the UUID stamped on every event (logd's mesh UUID).
	Node uuid.UUID
	// NodeName is the node's name; filters may use it instead of the UUID.
	NodeName string
	// WriterEndpoint is where local Writers connect. Default
	// DefaultWriterEndpoint; "" after DefaultHubConfig disables it.
	WriterEndpoint string
	// PubEndpoint is where subscribers (logtail) connect, advertised in the
	// mesh header X-LOGD-PUB; it also answers --since queries.
	PubEndpoint string
	// Capture configures the capture files; an empty Dir disables capture.
	Capture CaptureConfig
	// RingEvents and RingBytes bound the in-memory history.
	RingEvents int
	RingBytes  int
	// SubQueueEvents and SubQueueBytes bound what is queued for one
	// subscriber; beyond that its events are dropped (a sequence gap).
	SubQueueEvents int
	SubQueueBytes  int
	// MaxSubscribers bounds the concurrent subscriptions (each may hold
	// SubQueueBytes); more are refused and counted. Default 256.
	MaxSubscribers int
	// MaxPendingPerSource bounds the connections one source address
	// (IPv4, or IPv6 /64) may hold open before sending its HELLO or
	// SUBSCRIBE; more are closed at once and counted in HubStats.Shed.
	// Default DefaultMaxPendingPerSource.
	MaxPendingPerSource int
	// HandshakesPerSource bounds the CURVE handshakes one source address
	// may start per second (bursts of twice that); more connections are
	// closed at once and counted in HubStats.ShedHandshakes. Default
	// DefaultHandshakesPerSource.
	HandshakesPerSource float64
	// WriteTimeout disconnects a peer whose socket accepted nothing for
	// this long.
	WriteTimeout time.Duration
	// NoJSONCheck skips the full JSON validation of each event (the UTF-8
	// and shape checks remain).
	NoJSONCheck bool
	// Curve, when set, closes the TCP endpoints with CURVE: every
	// subscriber and query, and writers not on loopback (see curve.go).
	// Default nil: plaintext.
	Curve *CurveServer
	// Log receives the Hub's own messages (bad input is rate-limited).
	Log zerolog.Logger
}

// DefaultHubConfig returns a working configuration: writers on
// DefaultWriterEndpoint, subscribers on an ephemeral loopback port, a ring
// of 50k events / 16 MiB (logd stays under 64 MiB RSS at 100k events/s),
// no capture.
func DefaultHubConfig() HubConfig {
	return HubConfig{
		Node:           uuid.New(),
		WriterEndpoint: DefaultWriterEndpoint,
		PubEndpoint:    "tcp://127.0.0.1:0",
		RingEvents:     50_000,
		RingBytes:      16 << 20,
		SubQueueEvents: 65536,
		SubQueueBytes:  16 << 20,
		MaxSubscribers: 256,
		WriteTimeout:   30 * time.Second,
		Log:            zerolog.Nop(),
	}
}

// HubStats are a Hub's counters, for the dashboard and /metrics.
type HubStats struct {
	Received        uint64            // events accepted (after validation and de-duplication)
	Captured        uint64            // events written to capture files
	CaptureErrors   uint64            // failed capture writes
	Duplicates      uint64            // resent events already received
	Rejected        uint64            // malformed events (not JSON, bad UTF-8, too large)
	BadFrames       uint64            // malformed frames; the connection was closed
	Delivered       uint64            // events handed to subscribers
	SubscriberDrops uint64            // events a slow subscriber lost
	Refused         uint64            // subscriptions refused over MaxSubscribers
	Shed            uint64            // connections closed at once: their source had MaxPendingPerSource waiting
	ShedHandshakes  uint64            // connections closed at once: their source was over HandshakesPerSource
	Archives        uint64            // completed archives
	Writers         int               // connected writers
	Subscribers     int               // current subscriptions
	RingEvents      int               // events in the ring
	ByLevel         map[string]uint64 // received events per level name
}

// Hub is logd's side of logpub: it collects events from Writers (and
// Ingest), stamps them, captures them to files before publishing, keeps a
// ring for --since, and streams them to subscribers, each through its own
// bounded queue so that a slow one only loses its own events.
type Hub struct {
	cfg     HubConfig
	log     zerolog.Logger // rate-limited for bad input
	nodeStr string

	mu      sync.Mutex
	closed  bool
	ring    *ring
	capt    *capture
	subs    map[*hubSub]struct{}
	active  int // subscriptions running, live or history-only
	sources map[uint64]*source
	byLevel [9]uint64
	stamp   int64 // the last receive time given (stampLocked)

	received, captured, captureErrors, duplicates, rejected, badFrames atomic.Uint64
	delivered, subDrops, archives, refused, shed, shedHandshakes       atomic.Uint64
	adm                                                                *admission.Table

	writerL, pubL   net.Listener
	writerEP, pubEP string
	connMu          sync.Mutex
	conns           map[net.Conn]struct{}
	writers         int
	ctx             context.Context
	cancel          context.CancelFunc
	wg              sync.WaitGroup

	curve hubCurve
}

// source is the de-duplication state of one writer (or Ingest service).
type source struct {
	id      uint64
	service string
	lastSeq uint64
	conns   int
}

// NewHub validates cfg and prepares a Hub; Start binds and serves.
func NewHub(cfg HubConfig) (*Hub, error) {
	if cfg.RingEvents < 0 || cfg.RingBytes < 0 {
		return nil, errors.New("logpub: negative ring size")
	}
	if cfg.SubQueueEvents <= 0 {
		cfg.SubQueueEvents = 65536
	}
	if cfg.SubQueueBytes <= 0 {
		cfg.SubQueueBytes = 16 << 20
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.MaxSubscribers <= 0 {
		cfg.MaxSubscribers = 256
	}
	if cfg.MaxPendingPerSource <= 0 {
		cfg.MaxPendingPerSource = DefaultMaxPendingPerSource
	}
	if cfg.HandshakesPerSource <= 0 {
		cfg.HandshakesPerSource = DefaultHandshakesPerSource
	}
	h := &Hub{
		cfg:     cfg,
		log:     cfg.Log.Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Second}),
		nodeStr: cfg.Node.String(),
		ring:    newRing(cfg.RingEvents, cfg.RingBytes),
		subs:    map[*hubSub]struct{}{},
		sources: map[uint64]*source{},
		conns:   map[net.Conn]struct{}{},
		adm:     admission.New(cfg.MaxPendingPerSource, cfg.HandshakesPerSource),
	}
	if err := h.initCurve(); err != nil {
		return nil, err
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// Start opens the capture files and binds the endpoints.
func (h *Hub) Start(ctx context.Context) error {
	if h.cfg.Capture.Dir != "" {
		cc := h.cfg.Capture
		user := cc.OnArchive
		cc.OnArchive = func(path, service string) {
			h.archives.Add(1)
			if user != nil {
				user(path, service)
			}
		}
		c, err := newCapture(cc, h.cfg.Log)
		if err != nil {
			return err
		}
		h.capt = c
		h.stamp = c.lastRecv() // receive times keep increasing across restarts
	}
	if h.cfg.WriterEndpoint != "" {
		l, ep, err := listen(h.cfg.WriterEndpoint)
		if err != nil {
			h.Close()
			return err
		}
		h.writerL, h.writerEP = l, ep
		h.wg.Add(1)
		go h.acceptLoop(l, h.serveWriter)
	}
	if h.cfg.PubEndpoint != "" {
		l, ep, err := listen(h.cfg.PubEndpoint)
		if err != nil {
			h.Close()
			return err
		}
		h.pubL, h.pubEP = l, ep
		h.wg.Add(1)
		go h.acceptLoop(l, h.serveSubscriber)
	}
	if h.capt != nil && h.cfg.Capture.RotateEvery > 0 {
		h.wg.Add(1)
		go h.timeRotation(h.cfg.Capture.RotateEvery)
	}
	return ctx.Err()
}

// WriterEndpoint returns the bound endpoint for Writers ("" if disabled).
func (h *Hub) WriterEndpoint() string { return h.writerEP }

// PubEndpoint returns the bound endpoint for subscribers and queries.
func (h *Hub) PubEndpoint() string { return h.pubEP }

// Close stops listening, disconnects everyone, stops every goroutine and
// closes the capture files.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	if h.writerL != nil {
		h.writerL.Close()
	}
	if h.pubL != nil {
		h.pubL.Close()
	}
	h.connMu.Lock()
	for c := range h.conns {
		c.Close()
	}
	h.connMu.Unlock()
	h.mu.Lock()
	for s := range h.subs {
		s.stopLocked()
	}
	h.mu.Unlock()
	h.wg.Wait()
	if h.capt != nil {
		return h.capt.close()
	}
	return nil
}

// Stats returns the Hub's counters.
func (h *Hub) Stats() HubStats {
	s := HubStats{
		Received:        h.received.Load(),
		Captured:        h.captured.Load(),
		CaptureErrors:   h.captureErrors.Load(),
		Duplicates:      h.duplicates.Load(),
		Rejected:        h.rejected.Load(),
		BadFrames:       h.badFrames.Load(),
		Delivered:       h.delivered.Load(),
		SubscriberDrops: h.subDrops.Load(),
		Refused:         h.refused.Load(),
		Shed:            h.shed.Load(),
		ShedHandshakes:  h.shedHandshakes.Load(),
		Archives:        h.archives.Load(),
		ByLevel:         map[string]uint64{},
	}
	h.connMu.Lock()
	s.Writers = h.writers
	h.connMu.Unlock()
	h.mu.Lock()
	s.Subscribers = len(h.subs)
	s.RingEvents = h.ring.n
	for i, n := range h.byLevel {
		if n > 0 {
			s.ByLevel[levelName(zerolog.Level(i-1))] = n
		}
	}
	h.mu.Unlock()
	return s
}

func levelName(l zerolog.Level) string {
	if l == zerolog.NoLevel {
		return "none"
	}
	return l.String()
}

func levelIndex(l zerolog.Level) int {
	if l < zerolog.TraceLevel || l > zerolog.Disabled {
		return int(zerolog.NoLevel) + 1
	}
	return int(l) + 1
}

// checkLine validates one event line (without its trailing newline).
func (h *Hub) checkLine(line []byte) error {
	switch {
	case len(line) == 0:
		return errors.New("empty event")
	case len(line) > MaxLine:
		return fmt.Errorf("event of %d bytes exceeds %d", len(line), MaxLine)
	case line[0] != '{' || line[len(line)-1] != '}':
		return errors.New("event is not a JSON object")
	case !h.cfg.NoJSONCheck && validEvent(line):
		return nil // the usual case: one pass says all is well
	case bytes.IndexByte(line, '\n') >= 0:
		return errors.New("event spans several lines")
	case !utf8.Valid(line):
		return errors.New("event is not valid UTF-8")
	case !h.cfg.NoJSONCheck:
		return errors.New("event is not valid JSON")
	}
	return nil
}

// reject counts a malformed event and logs it, rate-limited.
func (h *Hub) reject(service string, err error) {
	h.rejected.Add(1)
	h.log.Warn().Str("service", service).Err(err).Msg("rejected malformed event")
}

// Ingest accepts one event line from another source (the HTTP bridge): it
// is validated, stamped with a per-service sequence, captured and
// published like a Writer's event.
func (h *Hub) Ingest(service string, line []byte) error {
	if err := checkService(service); err != nil {
		h.reject(service, err)
		return err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	if err := h.checkLine(line); err != nil {
		h.reject(service, err)
		return fmt.Errorf("logpub: ingest %s: %w", service, err)
	}
	buf := make([]byte, len(line)+1)
	copy(buf, line)
	buf[len(line)] = '\n'
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	src := h.sourceLocked(ingestSourceID(service), service)
	ev := []Event{{Level: levelOf(buf), Line: buf, Seq: src.lastSeq + 1}}
	if _, err := h.acceptLocked(src, ev, buf); err != nil {
		return fmt.Errorf("logpub: ingest %s: %w", service, err)
	}
	src.lastSeq++
	return nil
}

// ingestSourceID derives a stable source id for Ingest events of a service.
func ingestSourceID(service string) uint64 {
	var x uint64 = 14695981039346656037
	for i := 0; i < len(service); i++ {
		x ^= uint64(service[i])
		x *= 1099511628211
	}
	return x &^ 1 // writers' ids are odd, ingest ids even
}

func (h *Hub) sourceLocked(id uint64, service string) *source {
	s := h.sources[id]
	if s == nil || s.service != service {
		if len(h.sources) >= 65536 {
			for k, v := range h.sources {
				if v.conns == 0 {
					delete(h.sources, k)
					break
				}
			}
		}
		s = &source{id: id, service: service}
		h.sources[id] = s
	}
	return s
}

// acceptLocked stamps, captures, remembers and publishes events of one
// source, in that order. Events have Seq, Level and Line set; run is their
// lines back to back (what goes to the capture file). It returns how many
// of evs it accepted: all, or, when the capture write fails (a full disk),
// only those the capture file already holds (written before a rotation),
// with an error that wraps ErrCapture. The caller does not acknowledge
// the rest, so the writer keeps them and sends them again; the accepted
// prefix then counts as a duplicate, captured once.
func (h *Hub) acceptLocked(src *source, evs []Event, run []byte) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	recv := h.stampLocked(len(evs))
	for i := range evs {
		e := &evs[i]
		e.Node, e.Service, e.Source, e.Received = h.cfg.Node, src.service, src.id, time.Unix(0, recv+int64(i))
	}
	var failed error
	if h.capt != nil {
		if done, err := h.capt.write(src.service, run, recv); err != nil {
			h.captureErrors.Add(1)
			h.log.Error().Err(err).Int("events", len(evs)-done).Int("captured_before_failure", done).
				Msg("capture write failed; events not acknowledged")
			failed = fmt.Errorf("%w: %w", ErrCapture, err)
			evs = evs[:done]
		}
		h.captured.Add(uint64(len(evs)))
		h.capt.seqs.add(h.capt.keyFor(src.service), src.service, src.id, evs) // resume_index.go
	}
	h.received.Add(uint64(len(evs)))
	for i := range evs {
		h.byLevel[levelIndex(evs[i].Level)]++
		h.ring.add(&evs[i])
	}
	if len(evs) > 0 {
		for s := range h.subs {
			s.offer(evs)
		}
	}
	return len(evs), failed
}

// handleBatch processes one BATCH frame of a writer and returns the
// sequence to acknowledge. The Hub takes body over: its events are
// remembered and published without a copy. kept reports that it did (some
// event was accepted), so the caller must read the next frame into a new
// buffer.
func (h *Hub) handleBatch(src *source, body []byte) (ack uint64, kept bool, err error) {
	// The whole frame is checked before anything of it is taken.
	first, n, err := checkBatch(body)
	if err != nil {
		return 0, false, err
	}
	// One pass over the events: check each line and move the good ones,
	// each with its '\n', to the front of the body, one after the other.
	// The accepted events are then one contiguous run, written to the
	// capture file as is. The move never overtakes the read: each event
	// header it drops is 5 bytes, a missing '\n' adds 1.
	evs := make([]Event, 0, n)
	w, p := batchFixed, batchFixed
	for i := 0; i < n; i++ {
		lvl := zerolog.Level(int8(body[p]))
		ln := int(binary.BigEndian.Uint32(body[p+1:]))
		p += 5
		line := body[p : p+ln]
		p += ln
		if ln > 0 && line[ln-1] == '\n' {
			line = line[:ln-1]
		}
		if err := h.checkLine(line); err != nil {
			h.reject(src.service, err)
			continue
		}
		start := w
		w += copy(body[w:], line)
		body[w] = '\n'
		w++
		evs = append(evs, Event{Seq: first + uint64(i), Level: lvl, Line: body[start:w:w]})
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, false, ErrClosed
	}
	// Sequences rise within a batch, so duplicates (a batch resent after
	// a reconnect) are a prefix and the fresh events the tail of the run.
	settled := src.lastSeq
	k := 0
	for k < len(evs) && evs[k].Seq <= src.lastSeq {
		k++
	}
	h.duplicates.Add(uint64(k))
	fresh := evs[k:]
	run := 0
	for i := range fresh {
		run += len(fresh[i].Line)
	}
	if len(fresh) > 0 {
		src.lastSeq = fresh[len(fresh)-1].Seq
	}
	if done, err := h.acceptLocked(src, fresh, body[w-run:w]); err != nil {
		// What was not captured comes again with the resent batch; what
		// was (before a rotation) is settled and will be a duplicate.
		src.lastSeq = settled
		if done > 0 {
			src.lastSeq = fresh[done-1].Seq
		}
		return 0, done > 0, err
	}
	if n > 0 && first+uint64(n)-1 > src.lastSeq {
		src.lastSeq = first + uint64(n) - 1 // rejected events are settled too
	}
	return src.lastSeq, len(fresh) > 0, nil
}

func (h *Hub) timeRotation(every time.Duration) {
	defer h.wg.Done()
	for {
		now := time.Now()
		next := now.Truncate(every).Add(every)
		t := time.NewTimer(next.Sub(now))
		select {
		case <-h.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		h.mu.Lock()
		if !h.closed {
			h.capt.rotateAll()
		}
		h.mu.Unlock()
	}
}
