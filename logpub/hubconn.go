package logpub

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/logmesh/logmesh/internal/acceptloop"
)

// acceptLoop accepts connections until the listener closes; each is served
// by its own goroutine, owned by the Hub. A connection counts as pending
// for its source's limit (admission) until serve calls identified, after
// its first frame, or ends.
func (h *Hub) acceptLoop(l net.Listener, serve func(c net.Conn, identified func())) {
	defer h.wg.Done()
	var pace acceptloop.Pacer
	what := "logpub " + l.Addr().String()
	for {
		c, err := l.Accept()
		if err != nil {
			if h.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if !pace.Failed(h.ctx.Done(), &h.log, what, err) {
				return
			}
			continue
		}
		pace.Accepted(&h.log, what)
		identified, ok := h.adm.Admit(c)
		if !ok {
			h.shed.Add(1)
			h.log.Warn().Str("peer", c.RemoteAddr().String()).Int("limit", h.cfg.MaxPendingPerSource).
				Msg("closing connection: its source already has as many connections waiting to identify themselves as allowed")
			c.Close()
			continue
		}
		if !h.track(c) {
			identified()
			c.Close()
			return
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer h.untrack(c)
			defer identified()
			serve(c, identified)
		}()
	}
}

func (h *Hub) track(c net.Conn) bool {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	if h.ctx.Err() != nil {
		return false
	}
	h.conns[c] = struct{}{}
	return true
}

func (h *Hub) untrack(c net.Conn) {
	c.Close()
	h.connMu.Lock()
	delete(h.conns, c)
	h.connMu.Unlock()
}

// badFrame counts a malformed frame and logs it, rate-limited.
func (h *Hub) badFrame(c net.Conn, err error) {
	h.badFrames.Add(1)
	h.log.Warn().Str("peer", c.RemoteAddr().String()).Err(err).Msg("closing connection after malformed frame")
}

// serveWriter reads a writer's HELLO and batches, acknowledging each batch
// once captured. A non-loopback writer first passes the CURVE handshake
// when the Hub has keys (see admit).
func (h *Hub) serveWriter(c net.Conn, identified func()) {
	c, err := h.admit(c, false)
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, body, buf, err := readFrame(c, nil)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			h.badFrame(c, err)
		}
		return
	}
	if typ != frameHello {
		h.badFrame(c, frameErr("writer: first frame has type %d, want HELLO", typ))
		return
	}
	hl, err := decodeHello(body)
	if err != nil {
		h.badFrame(c, err)
		return
	}
	identified()
	c.SetReadDeadline(time.Time{})
	h.mu.Lock()
	src := h.sourceLocked(hl.Source, hl.Service)
	src.conns++
	h.mu.Unlock()
	h.connMu.Lock()
	h.writers++
	h.connMu.Unlock()
	defer func() {
		h.mu.Lock()
		src.conns--
		h.mu.Unlock()
		h.connMu.Lock()
		h.writers--
		h.connMu.Unlock()
	}()
	var ack []byte
	for {
		typ, body, buf, err = readFrame(c, buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && errors.Is(err, ErrFrame) {
				h.badFrame(c, err)
			}
			return
		}
		if typ != frameBatch {
			h.badFrame(c, frameErr("writer: unexpected frame type %d", typ))
			return
		}
		seq, kept, err := h.handleBatch(src, body)
		if err != nil {
			if errors.Is(err, ErrFrame) {
				h.badFrame(c, err)
			}
			return
		}
		if kept {
			buf = nil // the Hub holds the frame's events: read the next one afresh
		}
		ack = appendAck(ack[:0], seq)
		c.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
		if _, err := c.Write(ack); err != nil {
			return
		}
		if cap(buf) > 1<<20 {
			buf = nil // do not keep a large frame buffer per idle writer
		}
	}
}

// serveSubscriber reads a SUBSCRIBE and streams events until the peer
// leaves or cannot keep up with the write timeout. It first runs the CURVE
// handshake when the Hub has keys (see admit).
func (h *Hub) serveSubscriber(c net.Conn, identified func()) {
	c, err := h.admit(c, true)
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, body, _, err := readFrame(c, nil)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			h.badFrame(c, err)
		}
		return
	}
	if typ != frameSubscribe {
		h.badFrame(c, frameErr("subscriber: first frame has type %d, want SUBSCRIBE", typ))
		return
	}
	req, err := decodeSubscribe(body)
	if err != nil {
		h.badFrame(c, err)
		return
	}
	identified()
	c.SetReadDeadline(time.Time{})
	out := &connOut{c: c, timeout: h.cfg.WriteTimeout}
	s, err := h.subscribe(req, out, nil)
	if err != nil {
		return
	}
	// The subscriber sends nothing more: a read returning means it left.
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var b [1]byte
		c.Read(b[:])
		s.stop()
	}()
	<-s.done
	c.Close()
	<-readerDone
}

// connOut writes a subscription to a network connection.
type connOut struct {
	c       net.Conn
	timeout time.Duration
	buf     []byte
}

const eventsFrameBytes = 256 << 10

func (o *connOut) send(q []qent) error {
	for len(q) > 0 {
		b, st := beginFrame(o.buf[:0], frameEvents)
		cnt := len(b)
		b = appendU32(b, 0)
		n := 0
		for n < len(q) && (n == 0 || len(b)+envelopeSize(q[n].ev) <= eventsFrameBytes) {
			e := *q[n].ev
			e.StreamSeq = q[n].sseq
			e.History = q[n].hist
			b = appendEnvelope(b, &e)
			n++
		}
		putU32(b[cnt:], uint32(n))
		b = finishFrame(b, st)
		o.buf = b
		o.c.SetWriteDeadline(time.Now().Add(o.timeout))
		if _, err := o.c.Write(b); err != nil {
			return err
		}
		q = q[n:]
	}
	if cap(o.buf) > 2*eventsFrameBytes {
		o.buf = nil
	}
	return nil
}

func (o *connOut) end(dropped uint64) error {
	o.buf = appendEnd(o.buf[:0], dropped)
	o.c.SetWriteDeadline(time.Now().Add(o.timeout))
	_, err := o.c.Write(o.buf)
	return err
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
