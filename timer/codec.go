package timer

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The client protocol: one ZeroMQ frame per message, between a timer.Client
// (DEALER) and the Service (ROUTER). All integers are big-endian.
//
//	version  u8   (wireVersion)
//	type     u8   (msgType)
//	seq      u64  service→client: message sequence; client→service: last seq received (ack)
//	req      u32  request id (SCHEDULE, CANCEL, LIST and their replies)
//	period   i64  tick period in ns
//	n        i64  tick number
//	at       i64  scheduled time, ns since the Unix epoch
//	flags    u8   flagLate, ...
//	name     u8 length + bytes
//	data     u32 length + bytes (at most MaxData)
const (
	wireVersion       = 1
	headerSize        = 1 + 1 + 8 + 4 + 8 + 8 + 8 + 1
	minFrameSize      = headerSize + 1 + 4
	MaxName           = 128     // MaxName is the longest schedule name, in bytes.
	MaxData           = 1 << 20 // MaxData bounds the data field of one message.
	flagLate     byte = 1 << 0
)

type msgType uint8

const (
	msgHeartbeat msgType = iota + 1 // client: I am alive; seq = ack
	msgSub                          // client: send me ticks of period
	msgUnsub                        // client: stop ticks of period
	msgWatch                        // client: send me fires of name ("*" = all)
	msgUnwatch                      // client: stop fires of name
	msgSchedule                     // client: add or replace a schedule (data = Spec JSON)
	msgCancel                       // client: remove schedule name
	msgList                         // client: list schedules
	msgTick                         // service: tick n of period at at
	msgFire                         // service: a schedule fired (data = Fire JSON)
	msgReply                        // service: request req succeeded (data = result JSON)
	msgError                        // service: request req failed (data = message)
	msgPong                         // service: answers HEARTBEAT, so the client knows the link is alive
	msgLast
)

var msgNames = [...]string{"", "HEARTBEAT", "SUB", "UNSUB", "WATCH", "UNWATCH", "SCHEDULE", "CANCEL", "LIST", "TICK", "FIRE", "REPLY", "ERROR", "PONG"}

func (t msgType) String() string {
	if t > 0 && t < msgLast {
		return msgNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// message is one decoded frame of the client protocol.
type message struct {
	Type   msgType
	Seq    uint64
	Req    uint32
	Period int64
	N      int64
	At     int64
	Flags  byte
	Name   string
	Data   []byte
}

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("timer: malformed message")

func (m *message) encode() ([]byte, error) {
	if len(m.Name) > MaxName {
		return nil, fmt.Errorf("timer: encode %s: name of %d bytes (max %d)", m.Type, len(m.Name), MaxName)
	}
	if len(m.Data) > MaxData {
		return nil, fmt.Errorf("timer: encode %s: data of %d bytes (max %d)", m.Type, len(m.Data), MaxData)
	}
	b := make([]byte, 0, minFrameSize+len(m.Name)+len(m.Data))
	b = append(b, wireVersion, byte(m.Type))
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = binary.BigEndian.AppendUint32(b, m.Req)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Period))
	b = binary.BigEndian.AppendUint64(b, uint64(m.N))
	b = binary.BigEndian.AppendUint64(b, uint64(m.At))
	b = append(b, m.Flags, byte(len(m.Name)))
	b = append(b, m.Name...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Data)))
	b = append(b, m.Data...)
	return b, nil
}

// decodeMessage parses one frame. It checks every size before it allocates
// and never panics; errors wrap ErrMalformed.
func decodeMessage(b []byte) (message, error) {
	var m message
	if len(b) < minFrameSize {
		return m, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformed, len(b), minFrameSize)
	}
	if b[0] != wireVersion {
		return m, fmt.Errorf("%w: version %d, want %d", ErrMalformed, b[0], wireVersion)
	}
	m.Type = msgType(b[1])
	if m.Type == 0 || m.Type >= msgLast {
		return m, fmt.Errorf("%w: unknown type %d", ErrMalformed, b[1])
	}
	m.Seq = binary.BigEndian.Uint64(b[2:])
	m.Req = binary.BigEndian.Uint32(b[10:])
	m.Period = int64(binary.BigEndian.Uint64(b[14:]))
	m.N = int64(binary.BigEndian.Uint64(b[22:]))
	m.At = int64(binary.BigEndian.Uint64(b[30:]))
	m.Flags = b[38]
	nl := int(b[39])
	rest := b[40:]
	if nl > MaxName {
		return m, fmt.Errorf("%w: %s: name of %d bytes (max %d)", ErrMalformed, m.Type, nl, MaxName)
	}
	if len(rest) < nl+4 {
		return m, fmt.Errorf("%w: %s: truncated name", ErrMalformed, m.Type)
	}
	m.Name = string(rest[:nl])
	rest = rest[nl:]
	dl := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if dl > MaxData {
		return m, fmt.Errorf("%w: %s: data of %d bytes (max %d)", ErrMalformed, m.Type, dl, MaxData)
	}
	if uint32(len(rest)) != dl {
		return m, fmt.Errorf("%w: %s: data length %d, but %d bytes follow", ErrMalformed, m.Type, dl, len(rest))
	}
	if dl > 0 {
		m.Data = append([]byte(nil), rest...)
	}
	return m, nil
}

// Error codes carried in the N field of ERROR, so that a client's error
// matches the service's sentinel with errors.Is.
const (
	codeOther int64 = iota
	codeBadSpec
	codeUnknownName
	codeBadPeriod
	codeMalformed
)

var codeErrors = map[int64]error{codeBadSpec: ErrBadSpec, codeUnknownName: ErrUnknownName, codeBadPeriod: ErrBadPeriod, codeMalformed: ErrMalformed}

func errCode(err error) int64 {
	for code, e := range codeErrors {
		if errors.Is(err, e) {
			return code
		}
	}
	return codeOther
}

// remoteError is an error reported by the service.
type remoteError struct {
	msg  string
	base error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.base }

func replyError(m message) error {
	return &remoteError{msg: string(m.Data), base: codeErrors[m.N]}
}
