package logpub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"
)

// Wire format. Every message on a logpub connection is one frame:
//
//	[4 bytes big-endian length N][1 byte type][N-1 bytes body]
//
// A connection starts with a HELLO (writer → hub) or a SUBSCRIBE
// (subscriber → hub); both carry the magic "LOGP" and the protocol version.
//
//	HELLO      magic[4] version[1] source[8] service[str8]
//	BATCH      firstSeq[8] count[4] count × (level[1] len[4] line[len])
//	ACK        seq[8]                      hub → writer: everything ≤ seq is captured
//	SUBSCRIBE  magic[4] version[1] flags[1] minLevel[1] since[8]
//	           services[list] nodes[list]   list = n[2] n × str8
//	           flags: 1 follow, 2 level filter on (minLevel is 0 without it)
//	EVENTS     count[4] count × envelope    hub → subscriber
//	END        dropped[8]                  hub → subscriber: history done (or query done)
//
// envelope = flags[1] level[1] node[16] service[str8] source[8] seq[8]
// streamSeq[8] recv[8] len[4] line[len]; str8 = len[1] bytes.
const (
	frameHello     byte = 1
	frameBatch     byte = 2
	frameAck       byte = 3
	frameSubscribe byte = 4
	frameEvents    byte = 5
	frameEnd       byte = 6
)

const (
	protoMagic   = "LOGP"
	protoVersion = 1

	// MaxFrame is the largest frame either side accepts; a length above it is
	// rejected before anything is allocated.
	MaxFrame = 8 << 20
	// MaxLine is the largest single event line accepted.
	MaxLine = 1 << 20
	// maxListLen bounds the number of services or nodes in a filter.
	maxListLen = 256
)

// ErrFrame is wrapped by every decoding error: the peer sent something that
// is not a valid logpub frame.
var ErrFrame = errors.New("logpub: malformed frame")

func frameErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrFrame, fmt.Sprintf(format, a...))
}

// readFrame reads one frame into buf (grown as needed, bounded by MaxFrame)
// and returns its type and body, which aliases buf.
func readFrame(r io.Reader, buf []byte) (typ byte, body, newBuf []byte, err error) {
	var hdr [4]byte
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, buf, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > MaxFrame {
		return 0, nil, buf, frameErr("frame length %d out of range 1..%d", n, MaxFrame)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err = io.ReadFull(r, buf); err != nil {
		return 0, nil, buf, fmt.Errorf("logpub: read frame body: %w", err)
	}
	return buf[0], buf[1:], buf, nil
}

// beginFrame appends a frame header with a placeholder length; finishFrame
// fills the length in.
func beginFrame(b []byte, typ byte) ([]byte, int) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, typ)
	return b, start
}

func finishFrame(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// reader is a bounds-checked cursor over a frame body.
type reader struct {
	b   []byte
	err error
}

func (r *reader) need(n int, what string) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.b) < n {
		r.err = frameErr("truncated %s: need %d bytes, have %d", what, n, len(r.b))
		return false
	}
	return true
}

func (r *reader) u8(what string) byte {
	if !r.need(1, what) {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16(what string) uint16 {
	if !r.need(2, what) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32(what string) uint32 {
	if !r.need(4, what) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64(what string) uint64 {
	if !r.need(8, what) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) bytes(n int, what string) []byte {
	if !r.need(n, what) {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) str8(what string) string {
	n := int(r.u8(what + " length"))
	return string(r.bytes(n, what))
}

func (r *reader) done(what string) error {
	if r.err == nil && len(r.b) != 0 {
		r.err = frameErr("%d trailing bytes after %s", len(r.b), what)
	}
	return r.err
}

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func appendStr8(b []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// hello is the first frame of a writer connection.
type hello struct {
	Source  uint64
	Service string
}

func appendHello(b []byte, h hello) []byte {
	b, s := beginFrame(b, frameHello)
	b = append(b, protoMagic...)
	b = append(b, protoVersion)
	b = appendU64(b, h.Source)
	b = appendStr8(b, h.Service)
	return finishFrame(b, s)
}

func checkMagic(r *reader, what string) error {
	m := r.bytes(4, what+" magic")
	v := r.u8(what + " version")
	if r.err != nil {
		return r.err
	}
	if string(m) != protoMagic {
		return frameErr("%s: bad magic %q", what, m)
	}
	if v != protoVersion {
		return frameErr("%s: unsupported version %d (want %d)", what, v, protoVersion)
	}
	return nil
}

func decodeHello(body []byte) (hello, error) {
	r := &reader{b: body}
	if err := checkMagic(r, "hello"); err != nil {
		return hello{}, err
	}
	h := hello{Source: r.u64("source"), Service: r.str8("service")}
	if err := r.done("hello"); err != nil {
		return hello{}, err
	}
	if err := checkService(h.Service); err != nil {
		return hello{}, err
	}
	return h, nil
}

// checkService rejects service names that cannot be used as a file name.
func checkService(s string) error {
	if s == "" {
		return frameErr("empty service name")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok || (i == 0 && c == '.') {
			return frameErr("service name %q: only [A-Za-z0-9._-] allowed, not starting with a dot", s)
		}
	}
	return nil
}

// batchEvent is one event of a BATCH frame; Line aliases the frame.
type batchEvent struct {
	Level int8
	Line  []byte
}

// appendBatchEvent appends one event to the body of a batch under
// construction (used by the Writer, which builds batches incrementally).
func appendBatchEvent(b []byte, level int8, line []byte) []byte {
	b = append(b, byte(level))
	b = appendU32(b, uint32(len(line)))
	return append(b, line...)
}

// batchFixed is the size of a BATCH body's header: firstSeq[8] count[4].
const batchFixed = 12

// checkBatch validates the structure of a BATCH body (every event header
// and length, no trailing bytes) and returns its first sequence and event
// count. It reads the fields by index, with no per-field call: a batch
// holds about a thousand events.
func checkBatch(body []byte) (first uint64, count int, err error) {
	if len(body) < batchFixed {
		return 0, 0, frameErr("truncated batch header: need %d bytes, have %d", batchFixed, len(body))
	}
	first = binary.BigEndian.Uint64(body)
	c := binary.BigEndian.Uint32(body[8:])
	// Each event takes at least 5 bytes: check before trusting count.
	if uint64(c)*5 > uint64(len(body)-batchFixed) {
		return 0, 0, frameErr("batch count %d exceeds body of %d bytes", c, len(body)-batchFixed)
	}
	if c > 0 && first+uint64(c)-1 < first {
		// Sequences rise within a batch; the hub relies on it.
		return 0, 0, frameErr("batch sequences %d+%d overflow", first, c)
	}
	p := batchFixed
	for i := 0; i < int(c); i++ {
		if len(body)-p < 5 {
			return 0, 0, frameErr("truncated event %d header: need 5 bytes, have %d", i, len(body)-p)
		}
		n := binary.BigEndian.Uint32(body[p+1:])
		if n > MaxLine {
			return 0, 0, frameErr("event %d: line of %d bytes exceeds %d", i, n, MaxLine)
		}
		p += 5
		if len(body)-p < int(n) {
			return 0, 0, frameErr("truncated event %d line: need %d bytes, have %d", i, n, len(body)-p)
		}
		p += int(n)
	}
	if p != len(body) {
		return 0, 0, frameErr("%d trailing bytes after batch", len(body)-p)
	}
	return first, int(c), nil
}

// decodeBatch decodes a BATCH body, calling fn for every event in order.
// The frame is validated completely before fn is called for any event, so
// a malformed batch delivers nothing.
func decodeBatch(body []byte, fn func(seq uint64, ev batchEvent)) (first uint64, count uint32, err error) {
	first, n, err := checkBatch(body)
	if err != nil {
		return 0, 0, err
	}
	if fn == nil {
		return first, uint32(n), nil
	}
	p := batchFixed
	for i := 0; i < n; i++ {
		lvl := int8(body[p])
		ln := int(binary.BigEndian.Uint32(body[p+1:]))
		p += 5
		fn(first+uint64(i), batchEvent{Level: lvl, Line: body[p : p+ln : p+ln]})
		p += ln
	}
	return first, uint32(n), nil
}

func appendAck(b []byte, seq uint64) []byte {
	b, s := beginFrame(b, frameAck)
	b = appendU64(b, seq)
	return finishFrame(b, s)
}

func decodeAck(body []byte) (uint64, error) {
	r := &reader{b: body}
	v := r.u64("ack seq")
	return v, r.done("ack")
}

// subscribe flags.
const (
	subFollow byte = 1 << 0 // keep streaming live events after the history
	subLevel  byte = 1 << 1 // the level filter is on (Filter.levelOn)
	subResume byte = 1 << 2 // resume by sequence: cursors follow (codec_resume.go)
)

// subscribeReq is the first frame of a subscriber connection.
type subscribeReq struct {
	Follow bool
	Filter Filter
	Since  int64 // unix nanoseconds; 0 = no history
	// Resume asks for the ring's events after the After cursors, then a
	// SOURCES report, then END (see resume.go).
	Resume bool
	After  []SourceSeq
}

func appendStrList(b []byte, l []string) []byte {
	if len(l) > maxListLen {
		l = l[:maxListLen]
	}
	b = appendU16(b, uint16(len(l)))
	for _, s := range l {
		b = appendStr8(b, s)
	}
	return b
}

func (r *reader) strList(what string) []string {
	n := int(r.u16(what + " count"))
	if r.err != nil {
		return nil
	}
	if n > maxListLen {
		r.err = frameErr("%s: %d entries exceed %d", what, n, maxListLen)
		return nil
	}
	if n > len(r.b) { // each entry takes at least one byte
		r.err = frameErr("%s: %d entries exceed body", what, n)
		return nil
	}
	var l []string
	for i := 0; i < n && r.err == nil; i++ {
		l = append(l, r.str8(what))
	}
	return l
}

func appendSubscribe(b []byte, s subscribeReq) []byte {
	b, st := beginFrame(b, frameSubscribe)
	b = append(b, protoMagic...)
	b = append(b, protoVersion)
	var flags byte
	if s.Follow {
		flags |= subFollow
	}
	if s.Resume {
		flags |= subResume
	}
	var lvl int8
	if s.Filter.levelOn() {
		flags |= subLevel
		lvl = int8(s.Filter.MinLevel)
	}
	b = append(b, flags, byte(lvl))
	b = appendU64(b, uint64(s.Since))
	b = appendStrList(b, s.Filter.Services)
	b = appendStrList(b, s.Filter.Nodes)
	if s.Resume {
		b = appendCursors(b, s.After)
	}
	return finishFrame(b, st)
}

func decodeSubscribe(body []byte) (subscribeReq, error) {
	r := &reader{b: body}
	if err := checkMagic(r, "subscribe"); err != nil {
		return subscribeReq{}, err
	}
	flags := r.u8("flags")
	lvl := int8(r.u8("level"))
	since := int64(r.u64("since"))
	services := r.strList("services")
	nodes := r.strList("nodes")
	var after []SourceSeq
	if flags&subResume != 0 {
		after = r.cursors()
	}
	if err := r.done("subscribe"); err != nil {
		return subscribeReq{}, err
	}
	if flags&^(subFollow|subLevel|subResume) != 0 {
		return subscribeReq{}, frameErr("subscribe: unknown flags %#x", flags)
	}
	levelOn := flags&subLevel != 0
	if !levelOn && lvl != 0 {
		return subscribeReq{}, frameErr("subscribe: level %d without the level flag", lvl)
	}
	return subscribeReq{
		Follow: flags&subFollow != 0,
		Since:  since,
		Filter: Filter{MinLevel: zerolog.Level(lvl), LevelSet: levelOn, Services: services, Nodes: nodes},
		Resume: flags&subResume != 0,
		After:  after,
	}, nil
}

// envelope flags.
const (
	envHistory byte = 1 << 0
)

// envelopeFixed is the size of an envelope without service and line.
const envelopeFixed = 1 + 1 + 16 + 1 + 8 + 8 + 8 + 8 + 4

// appendEnvelope appends one event envelope (part of an EVENTS body).
func appendEnvelope(b []byte, e *Event) []byte {
	var flags byte
	if e.History {
		flags |= envHistory
	}
	b = append(b, flags, byte(int8(e.Level)))
	b = append(b, e.Node[:]...)
	b = appendStr8(b, e.Service)
	b = appendU64(b, e.Source)
	b = appendU64(b, e.Seq)
	b = appendU64(b, e.StreamSeq)
	b = appendU64(b, uint64(unixNanoOrZero(e.Received)))
	b = appendU32(b, uint32(len(e.Line)))
	return append(b, e.Line...)
}

func envelopeSize(e *Event) int { return envelopeFixed + len(e.Service) + len(e.Line) }

// decodeEvents decodes an EVENTS body. Lines alias body. Fields are read
// by index once each envelope's size is checked: a frame holds about a
// thousand envelopes.
func decodeEvents(body []byte, out []Event) ([]Event, error) {
	if len(body) < 4 {
		return out, frameErr("truncated events count: need 4 bytes, have %d", len(body))
	}
	n := binary.BigEndian.Uint32(body)
	b := body[4:]
	if uint64(n)*envelopeFixed > uint64(len(b)) {
		return out, frameErr("events count %d exceeds body of %d bytes", n, len(b))
	}
	// envelope: flags[1] level[1] node[16] svcLen[1] service
	// source[8] seq[8] streamSeq[8] recv[8] len[4] line
	const head, tail = 19, envelopeFixed - 19
	var prevService string
	for i := uint32(0); i < n; i++ {
		if len(b) < envelopeFixed {
			return out, frameErr("truncated envelope %d: need %d bytes, have %d", i, envelopeFixed, len(b))
		}
		flags := b[0]
		if flags&^envHistory != 0 {
			return out, frameErr("envelope %d: unknown flags %#x", i, flags)
		}
		sl := int(b[head-1])
		if len(b) < envelopeFixed+sl {
			return out, frameErr("truncated envelope %d service: need %d bytes, have %d", i, envelopeFixed+sl, len(b))
		}
		// Consecutive events mostly share a service: reuse its string.
		if svc := b[head : head+sl]; string(svc) != prevService {
			prevService = string(svc)
		}
		t := b[head+sl:]
		ln := binary.BigEndian.Uint32(t[tail-4:])
		if ln > MaxLine {
			return out, frameErr("envelope %d: line of %d bytes exceeds %d", i, ln, MaxLine)
		}
		if uint64(len(t)-tail) < uint64(ln) {
			return out, frameErr("truncated envelope %d line: need %d bytes, have %d", i, ln, len(t)-tail)
		}
		e := Event{
			Level:     zerolog.Level(int8(b[1])),
			Service:   prevService,
			Source:    binary.BigEndian.Uint64(t),
			Seq:       binary.BigEndian.Uint64(t[8:]),
			StreamSeq: binary.BigEndian.Uint64(t[16:]),
			Received:  timeOrZero(int64(binary.BigEndian.Uint64(t[24:]))),
			History:   flags&envHistory != 0,
			Line:      t[tail : tail+int(ln) : tail+int(ln)],
		}
		copy(e.Node[:], b[2:18])
		out = append(out, e)
		b = t[tail+int(ln):]
	}
	if len(b) != 0 {
		return out, frameErr("%d trailing bytes after events", len(b))
	}
	return out, nil
}

func appendEnd(b []byte, dropped uint64) []byte {
	b, s := beginFrame(b, frameEnd)
	b = appendU64(b, dropped)
	return finishFrame(b, s)
}

func decodeEnd(body []byte) (uint64, error) {
	r := &reader{b: body}
	v := r.u64("end dropped")
	return v, r.done("end")
}

// unixNanoOrZero encodes a receive time, 0 for none (a history line with
// no known time): time.Time{}.UnixNano() is not 0.
func unixNanoOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// timeOrZero decodes a receive time: 0 is none (the zero time.Time, which
// logtail places after the line before it).
func timeOrZero(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
