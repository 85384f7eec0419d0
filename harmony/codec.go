package harmony

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The Harmony wire protocol: every message is one ZeroMQ frame that starts
// with a signature byte, a version byte and a type byte. Integers are big
// endian; strings carry a 2-byte length, blobs a 4-byte length. Every length
// is checked against the bytes left and against a limit before anything is
// allocated.

const (
	signature byte = 0xA5 // first byte of every Harmony frame
	version   byte = 1    // protocol version we speak

	// MaxTaskBytes bounds the data of one task and the payload of one result.
	MaxTaskBytes = 16 << 20
	// MaxTasks bounds the size of one batch.
	MaxTasks = 1 << 26
	// MaxBadDetail bounds how many bad lines one result describes in detail;
	// the rest are only counted.
	MaxBadDetail = 64
	// MaxResendList bounds the task numbers one RESEND names.
	MaxResendList = 4096
)

// MsgType says what a Harmony message is.
type MsgType byte

// The message types. START, END and heartbeats go from ventilator to
// collector; TASK from ventilator to worker; DONE from worker to ventilator;
// RESULT from worker to collector; ACK, RESEND and FINISHED from collector to
// ventilator.
const (
	MsgStart    MsgType = iota + 1 // batch, n, spec
	MsgTask                        // batch, index, collector, spec, source, first line, data
	MsgDone                        // batch, index
	MsgResult                      // batch, index, source, lines, bad count, bad lines, payload
	MsgEnd                         // batch
	MsgAck                         // batch, committed
	MsgResend                      // batch, from, missing
	MsgFinished                    // batch
)

var msgNames = [...]string{"", "START", "TASK", "DONE", "RESULT", "END", "ACK", "RESEND", "FINISHED"}

// String returns the protocol name of the type.
func (t MsgType) String() string {
	if t > 0 && int(t) < len(msgNames) {
		return msgNames[t]
	}
	return fmt.Sprintf("MsgType(%d)", byte(t))
}

// BatchID names a batch; it is a UUID.
type BatchID [16]byte

// String returns the batch id in hex.
func (b BatchID) String() string { return fmt.Sprintf("%x", b[:]) }

// BadLine is one input line that could not be processed.
type BadLine struct {
	Source string `json:"source"`
	Line   uint64 `json:"line"` // 1-based line number in Source
	Reason string `json:"reason"`
}

// Message is one decoded Harmony message. Only the fields of its Type are
// meaningful; the others are zero.
type Message struct {
	Type      MsgType
	Batch     BatchID
	Index     uint32    // TASK, DONE, RESULT: the task number
	N         uint32    // START: the number of tasks
	Spec      string    // START, TASK: the processor spec
	Collector string    // TASK: where the result goes
	Source    string    // TASK, RESULT: the file the lines come from
	FirstLine uint64    // TASK: line number of the first line in Source
	Data      []byte    // TASK: the lines; RESULT: the processor's output
	Lines     uint32    // RESULT: how many lines the task had
	Bad       uint32    // RESULT: how many lines were bad
	BadLines  []BadLine // RESULT: details of the first bad lines (Source is implied)
	Committed uint32    // ACK: tasks 0..Committed-1 are written out
	From      uint32    // RESEND: resend every task from this number on
	Missing   []uint32  // RESEND: and these tasks
}

// Errors of the codec, tested with errors.Is.
var (
	ErrMalformed = errors.New("harmony: malformed message")
	ErrVersion   = errors.New("harmony: unsupported protocol version")
	ErrTooLarge  = errors.New("harmony: field too large")
)

// Encode appends the wire form of m to dst and returns it.
func Encode(dst []byte, m *Message) ([]byte, error) {
	dst = append(dst, signature, version, byte(m.Type))
	dst = append(dst, m.Batch[:]...)
	var err error
	switch m.Type {
	case MsgStart:
		dst = binary.BigEndian.AppendUint32(dst, m.N)
		dst, err = putString(dst, m.Spec)
	case MsgTask:
		dst = binary.BigEndian.AppendUint32(dst, m.Index)
		for _, s := range []string{m.Collector, m.Spec, m.Source} {
			if dst, err = putString(dst, s); err != nil {
				return nil, err
			}
		}
		dst = binary.BigEndian.AppendUint64(dst, m.FirstLine)
		dst, err = putBlob(dst, m.Data)
	case MsgDone:
		dst = binary.BigEndian.AppendUint32(dst, m.Index)
	case MsgResult:
		dst = binary.BigEndian.AppendUint32(dst, m.Index)
		if dst, err = putString(dst, m.Source); err != nil {
			return nil, err
		}
		dst = binary.BigEndian.AppendUint32(dst, m.Lines)
		dst = binary.BigEndian.AppendUint32(dst, m.Bad)
		if len(m.BadLines) > MaxBadDetail {
			return nil, fmt.Errorf("%w: %d bad line details", ErrTooLarge, len(m.BadLines))
		}
		dst = append(dst, byte(len(m.BadLines)))
		for _, b := range m.BadLines {
			dst = binary.BigEndian.AppendUint64(dst, b.Line)
			if dst, err = putString(dst, b.Reason); err != nil {
				return nil, err
			}
		}
		dst, err = putBlob(dst, m.Data)
	case MsgEnd, MsgFinished:
	case MsgAck:
		dst = binary.BigEndian.AppendUint32(dst, m.Committed)
	case MsgResend:
		dst = binary.BigEndian.AppendUint32(dst, m.From)
		if len(m.Missing) > MaxResendList {
			return nil, fmt.Errorf("%w: %d missing tasks", ErrTooLarge, len(m.Missing))
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Missing)))
		for _, i := range m.Missing {
			dst = binary.BigEndian.AppendUint32(dst, i)
		}
	default:
		return nil, fmt.Errorf("%w: unknown type %d", ErrMalformed, m.Type)
	}
	return dst, err
}

// checkTask reports whether a TASK message fits the wire format, so that
// Encode cannot fail on it.
func checkTask(m *Message) error {
	for _, s := range []string{m.Collector, m.Spec, m.Source} {
		if len(s) > 0xFFFF {
			return fmt.Errorf("%w: string of %d bytes", ErrTooLarge, len(s))
		}
	}
	if len(m.Data) > MaxTaskBytes {
		return fmt.Errorf("%w: blob of %d bytes", ErrTooLarge, len(m.Data))
	}
	return nil
}

// maxKeptBuffer bounds the encoding buffer a sender keeps for its next
// frame: one huge task or result must not pin its memory for good.
const maxKeptBuffer = 4 << 20

// reusable returns buf for the next encoding, or nil if it is too large to
// keep.
func reusable(buf []byte) []byte {
	if cap(buf) > maxKeptBuffer {
		return nil
	}
	return buf
}

func putString(dst []byte, s string) ([]byte, error) {
	if len(s) > 0xFFFF {
		return nil, fmt.Errorf("%w: string of %d bytes", ErrTooLarge, len(s))
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...), nil
}

func putBlob(dst []byte, b []byte) ([]byte, error) {
	if len(b) > MaxTaskBytes {
		return nil, fmt.Errorf("%w: blob of %d bytes", ErrTooLarge, len(b))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...), nil
}

// Decode parses one frame. Data aliases frame (tasks are large: no copy),
// so the caller must not reuse frame while the message is in use.
func Decode(frame []byte) (*Message, error) {
	if len(frame) < 3+16 {
		return nil, fmt.Errorf("%w: %d-byte frame", ErrMalformed, len(frame))
	}
	if frame[0] != signature {
		return nil, fmt.Errorf("%w: bad signature 0x%02x", ErrMalformed, frame[0])
	}
	if frame[1] != version {
		return nil, fmt.Errorf("%w: %d", ErrVersion, frame[1])
	}
	m := &Message{Type: MsgType(frame[2])}
	copy(m.Batch[:], frame[3:19])
	r := reader{buf: frame[19:]}
	switch m.Type {
	case MsgStart:
		m.N = r.u32()
		m.Spec = r.str()
		if r.err == nil && m.N > MaxTasks {
			r.err = fmt.Errorf("%w: batch of %d tasks", ErrTooLarge, m.N)
		}
	case MsgTask:
		m.Index = r.u32()
		m.Collector = r.str()
		m.Spec = r.str()
		m.Source = r.str()
		m.FirstLine = r.u64()
		m.Data = r.blob()
	case MsgDone:
		m.Index = r.u32()
	case MsgResult:
		m.Index = r.u32()
		m.Source = r.str()
		m.Lines = r.u32()
		m.Bad = r.u32()
		n := int(r.u8())
		if r.err == nil && n > MaxBadDetail {
			r.err = fmt.Errorf("%w: %d bad line details", ErrTooLarge, n)
		}
		if r.err == nil && n > 0 {
			m.BadLines = make([]BadLine, 0, min(n, len(r.buf)/10))
			for i := 0; i < n && r.err == nil; i++ {
				b := BadLine{Source: m.Source, Line: r.u64(), Reason: r.str()}
				m.BadLines = append(m.BadLines, b)
			}
		}
		m.Data = r.blob()
	case MsgEnd, MsgFinished:
	case MsgAck:
		m.Committed = r.u32()
	case MsgResend:
		m.From = r.u32()
		n := int(r.u16())
		if r.err == nil && n > MaxResendList {
			r.err = fmt.Errorf("%w: %d missing tasks", ErrTooLarge, n)
		}
		if r.err == nil && n*4 > len(r.buf) {
			r.err = fmt.Errorf("%w: %d missing tasks in %d bytes", ErrMalformed, n, len(r.buf))
		}
		if r.err == nil && n > 0 {
			m.Missing = make([]uint32, n)
			for i := range m.Missing {
				m.Missing[i] = r.u32()
			}
		}
	default:
		return nil, fmt.Errorf("%w: unknown type %d", ErrMalformed, frame[2])
	}
	if r.err != nil {
		return nil, fmt.Errorf("harmony: decode %v: %w", m.Type, r.err)
	}
	if len(r.buf) != 0 {
		return nil, fmt.Errorf("harmony: decode %v: %w: %d trailing bytes", m.Type, ErrMalformed, len(r.buf))
	}
	return m, nil
}

// reader consumes fields from a frame; after the first error every read
// returns zero and err keeps that error.
type reader struct {
	buf []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.buf) {
		r.err = fmt.Errorf("%w: need %d bytes, have %d", ErrMalformed, n, len(r.buf))
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

func (r *reader) u8() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *reader) str() string {
	n := int(r.u16())
	return string(r.take(n))
}

func (r *reader) blob() []byte {
	n := r.u32()
	if r.err == nil && n > MaxTaskBytes {
		r.err = fmt.Errorf("%w: blob of %d bytes", ErrTooLarge, n)
		return nil
	}
	b := r.take(int(n))
	if len(b) == 0 {
		return nil
	}
	return b[:len(b):len(b)]
}
