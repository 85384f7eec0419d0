package logpub

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/natefinch/lumberjack.v2"
)

// ErrClosed is returned by operations on a closed Writer, Hub or Stream.
var ErrClosed = errors.New("logpub: closed")

// ErrCapture is returned (wrapped) when events could not be written to the
// capture file; they were neither acknowledged nor published.
var ErrCapture = errors.New("logpub: capture write failed")

// WriterOptions configures a Writer. Zero fields take the documented default.
type WriterOptions struct {
	// Endpoint of the local logd. Default: $LOGPUB_ENDPOINT, else
	// DefaultWriterEndpoint.
	Endpoint string
	// Service names the app in captures and filters. Default:
	// $LOGPUB_SERVICE, else the program's base name.
	Service string
	// MaxEvents bounds the events held (queued or awaiting the hub's ack).
	// Beyond it events are dropped and counted. Default 65536.
	MaxEvents int
	// MaxBytes bounds the bytes held likewise. Default 16 MiB.
	MaxBytes int
	// BatchBytes is the largest batch sent in one frame. Default 256 KiB.
	BatchBytes int
	// Fallback, if set, receives the held events while logd has been
	// unreachable for FallbackAfter, instead of dropping them later.
	Fallback *lumberjack.Logger
	// FallbackAfter is how long logd must be unreachable before events go
	// to Fallback. Default 1 s.
	FallbackAfter time.Duration
	// CloseTimeout bounds how long Close waits for logd to acknowledge the
	// held events. Default 5 s.
	CloseTimeout time.Duration
	// WriteTimeout bounds one network write; a hub that stops reading for
	// that long is treated as gone. Default 10 s.
	WriteTimeout time.Duration
	// Curve, when set, closes the connection with CURVE when the endpoint
	// is not loopback (a keyed hub takes local writers in plaintext).
	Curve *CurveClient
}

func (o *WriterOptions) fill() {
	if o.Endpoint == "" {
		o.Endpoint = os.Getenv("LOGPUB_ENDPOINT")
	}
	if o.Endpoint == "" {
		o.Endpoint = DefaultWriterEndpoint
	}
	if o.Service == "" {
		o.Service = os.Getenv("LOGPUB_SERVICE")
	}
	if o.Service == "" {
		o.Service = serviceName(filepath.Base(os.Args[0]))
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = 65536
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 16 << 20
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 256 << 10
	}
	if o.BatchBytes > MaxFrame/2 {
		o.BatchBytes = MaxFrame / 2
	}
	if o.FallbackAfter <= 0 {
		o.FallbackAfter = time.Second
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
}

// serviceName maps any string onto the characters a service name allows.
func serviceName(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok || (i == 0 && c == '.') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "app"
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// batchHeader is the room kept at the start of a batch buffer for the frame
// header: length[4] type[1] firstSeq[8] count[4].
const batchHeader = 17

// wbatch is a batch of events in wire form, reused once acknowledged.
type wbatch struct {
	buf   []byte
	first uint64
	count int
	inUse bool // being written by the sender: not released until it is done
}

func (b *wbatch) last() uint64 { return b.first + uint64(b.count) - 1 }

// seal writes the frame header in front of the events.
func (b *wbatch) seal() {
	binary.BigEndian.PutUint32(b.buf[0:], uint32(len(b.buf)-4))
	b.buf[4] = frameBatch
	binary.BigEndian.PutUint64(b.buf[5:], b.first)
	binary.BigEndian.PutUint32(b.buf[13:], uint32(b.count))
}

// WriterStats are a Writer's counters.
type WriterStats struct {
	Accepted   uint64 // events taken into the queue
	Acked      uint64 // events logd acknowledged as captured
	Dropped    uint64 // events dropped: queue full, too large, or unacknowledged at Close
	Fallback   uint64 // events written to the fallback file
	Reconnects uint64 // connections made to logd after the first
	Queued     int    // events held now
}

// Writer is a zerolog writer that sends events to the local logd without
// ever blocking the caller. It implements io.Writer, zerolog.LevelWriter and
// io.Closer. Events are queued within bounds and sent in batches by a
// background goroutine, which reconnects by itself; logd acknowledges each
// batch once captured, and unacknowledged batches are resent after a
// reconnect. When the queue is full events are dropped and counted, and one
// "dropped N events" event follows once room returns.
type Writer struct {
	opts   WriterOptions
	source uint64
	hello  []byte

	mu        sync.Mutex
	cur       *wbatch
	ready     []*wbatch // sealed, not yet sent
	inflight  []*wbatch // sent, not yet acknowledged
	free      []*wbatch
	nextSeq   uint64
	queuedEv  int
	queuedB   int
	closing   bool
	drained   chan struct{}
	stats     WriterStats
	unsentDrp uint64 // dropped events not yet reported in a "dropped" event
	ackedSeq  uint64 // highest sequence logd acknowledged
	idle      bool   // the sender waits for a wake-up: only then is one sent

	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// NewWriter returns a Writer and starts its sender; it works before logd
// is up and across logd restarts.
func NewWriter(opts WriterOptions) *Writer {
	opts.fill()
	var src [8]byte
	_, _ = rand.Read(src[:])
	w := &Writer{
		opts:    opts,
		source:  binary.BigEndian.Uint64(src[:]) | 1,
		nextSeq: 1,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	w.hello = appendHello(nil, hello{Source: w.source, Service: serviceName(opts.Service)})
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go w.run()
	return w
}

// Write queues one event; the level is read from the line.
func (w *Writer) Write(p []byte) (int, error) {
	return w.WriteLevel(levelOf(p), p)
}

// WriteLevel queues one event of a known level (zerolog.LevelWriter). It
// never blocks on the network; p is copied.
func (w *Writer) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	w.mu.Lock()
	if w.closing {
		w.stats.Dropped++
		w.mu.Unlock()
		return 0, ErrClosed
	}
	if w.unsentDrp > 0 {
		w.reportDroppedLocked(len(p))
	}
	if !w.appendLocked(level, p) {
		w.stats.Dropped++
		w.unsentDrp++
	}
	// Waking a parked goroutine costs more than queuing the event: only do
	// it when the sender sleeps; a busy sender picks the event up anyway.
	wake := w.idle
	w.idle = false
	w.mu.Unlock()
	if wake {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// appendLocked adds one event if the bounds allow it.
func (w *Writer) appendLocked(level zerolog.Level, p []byte) bool {
	if len(p) == 0 || len(p) > MaxLine || w.queuedEv+1 > w.opts.MaxEvents || w.queuedB+len(p) > w.opts.MaxBytes {
		return false
	}
	b := w.cur
	if b != nil && len(b.buf)+5+len(p) > w.opts.BatchBytes && b.count > 0 {
		w.ready = append(w.ready, b)
		b = nil
	}
	if b == nil {
		b = w.newBatchLocked()
		w.cur = b
	}
	b.buf = appendBatchEvent(b.buf, int8(level), p)
	b.count++
	w.nextSeq++
	w.queuedEv++
	w.queuedB += len(p)
	w.stats.Accepted++
	return true
}

func (w *Writer) newBatchLocked() *wbatch {
	var b *wbatch
	if n := len(w.free); n > 0 {
		b = w.free[n-1]
		w.free = w.free[:n-1]
		b.buf = b.buf[:batchHeader]
	} else {
		// Full size at once: growing by appends would reallocate each time.
		b = &wbatch{buf: make([]byte, batchHeader, w.opts.BatchBytes+batchHeader)}
	}
	b.first = w.nextSeq
	b.count = 0
	return b
}

// reportDroppedLocked queues the "dropped N events" event if it and an
// event of size next both fit.
func (w *Writer) reportDroppedLocked(next int) bool {
	if w.queuedEv+2 > w.opts.MaxEvents || w.queuedB+next+256 > w.opts.MaxBytes {
		return false
	}
	var buf bytes.Buffer
	l := zerolog.New(&buf).With().Timestamp().Logger()
	l.Warn().Uint64("dropped", w.unsentDrp).Msgf("logpub: dropped %d events", w.unsentDrp)
	if w.appendLocked(zerolog.WarnLevel, buf.Bytes()) {
		w.unsentDrp = 0
		return true
	}
	return false
}

// Stats returns the Writer's counters.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Queued = w.queuedEv
	return s
}

// Close flushes with the CloseTimeout deadline and stops the Writer.
func (w *Writer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.CloseTimeout)
	defer cancel()
	return w.Shutdown(ctx)
}

// Shutdown stops taking events, waits until logd acknowledged every held
// event or ctx ends, then stops the Writer. Events still held then go to
// the fallback file if there is one, else are counted as dropped.
func (w *Writer) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closing = true
	w.drained = make(chan struct{})
	if w.queuedEv == 0 {
		close(w.drained)
	}
	drained := w.drained
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = fmt.Errorf("logpub: close writer: %w", ctx.Err())
	}
	w.cancel()
	<-w.done
	w.mu.Lock()
	left := w.takeAllLocked()
	w.mu.Unlock()
	w.toFallback(left)
	return err
}

// takeAllLocked removes every held batch (inflight first, in order).
func (w *Writer) takeAllLocked() []*wbatch {
	var all []*wbatch
	all = append(all, w.inflight...)
	all = append(all, w.ready...)
	if w.cur != nil && w.cur.count > 0 {
		all = append(all, w.cur)
	}
	w.inflight, w.ready, w.cur = w.inflight[:0], w.ready[:0], nil
	w.queuedEv, w.queuedB = 0, 0
	return all
}

// toFallback writes batches to the fallback file, or counts them dropped.
func (w *Writer) toFallback(bs []*wbatch) {
	var fell, lost uint64
	for _, b := range bs {
		b.seal()
		_, _, err := decodeBatch(b.buf[5:], func(_ uint64, ev batchEvent) {
			if w.opts.Fallback != nil {
				if _, err := w.opts.Fallback.Write(ev.Line); err == nil {
					fell++
					return
				}
			}
			lost++
		})
		if err != nil {
			lost += uint64(b.count)
		}
	}
	w.mu.Lock()
	w.stats.Fallback += fell
	w.stats.Dropped += lost
	w.mu.Unlock()
}

// ack records logd's acknowledgement of everything up to seq.
func (w *Writer) ack(seq uint64) {
	w.mu.Lock()
	w.ackedSeq = max(w.ackedSeq, seq)
	w.releaseLocked()
	w.mu.Unlock()
}

// releaseLocked frees the acknowledged inflight batches, in order, stopping
// at one the sender is still writing (its acknowledgement may overtake the
// end of the write; the sender releases it when done).
func (w *Writer) releaseLocked() {
	seq := w.ackedSeq
	k := 0
	for k < len(w.inflight) && w.inflight[k].last() <= seq && !w.inflight[k].inUse {
		b := w.inflight[k]
		w.queuedEv -= b.count
		w.queuedB -= len(b.buf) - batchHeader - 5*b.count
		w.stats.Acked += uint64(b.count)
		w.free = append(w.free, b)
		k++
	}
	if k > 0 {
		n := copy(w.inflight, w.inflight[k:])
		clear(w.inflight[n:])
		w.inflight = w.inflight[:n]
		// Keep up to 8 MiB of buffers for reuse; the rest goes to the GC.
		if keep := (8 << 20) / w.opts.BatchBytes; len(w.free) > keep {
			clear(w.free[keep:])
			w.free = w.free[:keep]
		}
		if w.unsentDrp > 0 && !w.closing && w.reportDroppedLocked(0) {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	if w.queuedEv == 0 && w.drained != nil {
		select {
		case <-w.drained:
		default:
			close(w.drained)
		}
	}
}

// run owns the connection: dial, send, resend after reconnect.
func (w *Writer) run() {
	defer close(w.done)
	backoff := 20 * time.Millisecond
	downSince := time.Now()
	connected := false
	for w.ctx.Err() == nil {
		conn, err := w.connect()
		if err != nil {
			if time.Since(downSince) >= w.opts.FallbackAfter && w.opts.Fallback != nil {
				w.mu.Lock()
				left := w.takeAllLocked()
				w.mu.Unlock()
				w.toFallback(left)
			}
			t := time.NewTimer(backoff)
			select {
			case <-w.ctx.Done():
			case <-t.C:
			}
			t.Stop()
			backoff = min(backoff*2, time.Second)
			continue
		}
		if connected {
			w.mu.Lock()
			w.stats.Reconnects++
			w.mu.Unlock()
		}
		connected = true
		backoff = 20 * time.Millisecond
		w.serve(conn)
		downSince = time.Now()
	}
}

func (w *Writer) connect() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(w.ctx, time.Second)
	defer cancel()
	conn, err := dialHub(ctx, w.opts.Endpoint, w.opts.Curve, false)
	if err != nil {
		return nil, err
	}
	conn.SetWriteDeadline(time.Now().Add(w.opts.WriteTimeout))
	if _, err := conn.Write(w.hello); err != nil {
		conn.Close()
		return nil, fmt.Errorf("logpub: send hello to %s: %w", w.opts.Endpoint, err)
	}
	return conn, nil
}

// serve sends batches on one connection until it fails or the Writer stops.
func (w *Writer) serve(conn net.Conn) {
	dead := make(chan struct{})
	readerDone := make(chan struct{})
	go w.readAcks(conn, dead, readerDone)
	defer func() {
		conn.Close()
		<-readerDone
	}()
	// Everything sent on an earlier connection and not acknowledged is
	// resent; the hub drops what it already captured by sequence number.
	w.mu.Lock()
	resend := append([]*wbatch(nil), w.inflight...)
	w.mu.Unlock()
	if !w.send(conn, resend) {
		return
	}
	var batch []*wbatch
	for {
		w.mu.Lock()
		if w.cur != nil && w.cur.count > 0 {
			w.ready = append(w.ready, w.cur)
			w.cur = nil
		}
		batch = append(batch[:0], w.ready...)
		clear(w.ready)
		w.ready = w.ready[:0]
		w.inflight = append(w.inflight, batch...)
		w.idle = len(batch) == 0
		w.mu.Unlock()
		if len(batch) > 0 {
			if !w.send(conn, batch) {
				return
			}
			clear(batch)
			continue
		}
		select {
		case <-w.wake:
		case <-dead:
			return
		case <-w.ctx.Done():
			return
		}
	}
}

func (w *Writer) send(conn net.Conn, bs []*wbatch) bool {
	if len(bs) == 0 {
		return true
	}
	w.mu.Lock()
	for _, b := range bs {
		b.inUse = true
		b.seal()
	}
	w.mu.Unlock()
	ok := true
	for _, b := range bs {
		conn.SetWriteDeadline(time.Now().Add(w.opts.WriteTimeout))
		if _, err := conn.Write(b.buf); err != nil {
			ok = false
			break
		}
	}
	w.mu.Lock()
	for _, b := range bs {
		b.inUse = false
	}
	w.releaseLocked()
	w.mu.Unlock()
	return ok
}

func (w *Writer) readAcks(conn net.Conn, dead, done chan struct{}) {
	defer close(done)
	defer close(dead)
	var buf []byte
	for {
		typ, body, nb, err := readFrame(conn, buf)
		buf = nb
		if err != nil {
			return
		}
		if typ != frameAck {
			return
		}
		seq, err := decodeAck(body)
		if err != nil {
			return
		}
		w.ack(seq)
	}
}

var _ zerolog.LevelWriter = (*Writer)(nil)
var _ io.WriteCloser = (*Writer)(nil)
