package mesh

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// ZRE v2 message ids (RFC 36).
const (
	msgHello   = 1
	msgWhisper = 2
	msgShout   = 3
	msgJoin    = 4
	msgLeave   = 5
	msgPing    = 6
	msgPingOK  = 7
	// Zyre's draft messages (zre_msg.xml): ELECT and LEADER carry a
	// leadership contest we do not take part in; GOODBYE says the peer
	// leaves. They are decoded for their sequence number only.
	msgElect   = 8
	msgLeader  = 9
	msgGoodbye = 10
)

const (
	zreSignature = 0xAAA1 // 0xAAA0 | 1, as zre_msg.c checks
	zreVersion   = 2
	// maxListLen bounds the element counts of strings and hash fields, so a
	// forged count cannot make the decoder allocate much before it fails.
	maxListLen = 1 << 16
)

// ErrMalformed is wrapped by every decoding error of a ZRE message, beacon
// or gossip message.
var ErrMalformed = errors.New("malformed message")

var msgNames = [...]string{"", "HELLO", "WHISPER", "SHOUT", "JOIN", "LEAVE", "PING", "PING-OK", "ELECT", "LEADER", "GOODBYE"}

func msgName(id byte) string {
	if int(id) < len(msgNames) && id > 0 {
		return msgNames[id]
	}
	return fmt.Sprintf("id %d", id)
}

// zreMsg is one ZRE message: the header frame's fields plus, for WHISPER and
// SHOUT, the content frames.
type zreMsg struct {
	ID       byte
	Sequence uint16
	Endpoint string            // HELLO
	Groups   []string          // HELLO
	Status   byte              // HELLO, JOIN, LEAVE
	Name     string            // HELLO
	Headers  map[string]string // HELLO
	Group    string            // SHOUT, JOIN, LEAVE
	Content  [][]byte          // WHISPER, SHOUT
}

// encode returns the message as ZMQ frames: the header frame, then the
// content frames (which are not copied).
func (m *zreMsg) encode() ([][]byte, error) {
	b := make([]byte, 6, 64)
	binary.BigEndian.PutUint16(b, zreSignature)
	b[2], b[3] = m.ID, zreVersion
	binary.BigEndian.PutUint16(b[4:], m.Sequence)
	var err error
	switch m.ID {
	case msgHello:
		if b, err = putString(b, m.Endpoint); err != nil {
			return nil, fmt.Errorf("HELLO endpoint: %w", err)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.Groups)))
		for _, g := range m.Groups {
			b = putLongString(b, g)
		}
		b = append(b, m.Status)
		if b, err = putString(b, m.Name); err != nil {
			return nil, fmt.Errorf("HELLO name: %w", err)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.Headers)))
		for _, k := range sortedKeys(m.Headers) {
			if b, err = putString(b, k); err != nil {
				return nil, fmt.Errorf("HELLO header: %w", err)
			}
			b = putLongString(b, m.Headers[k])
		}
	case msgWhisper, msgPing, msgPingOK, msgGoodbye:
	case msgShout:
		if b, err = putString(b, m.Group); err != nil {
			return nil, fmt.Errorf("SHOUT group: %w", err)
		}
	case msgJoin, msgLeave:
		if b, err = putString(b, m.Group); err != nil {
			return nil, fmt.Errorf("%s group: %w", msgName(m.ID), err)
		}
		b = append(b, m.Status)
	default:
		return nil, fmt.Errorf("encode: unknown message id %d", m.ID)
	}
	frames := make([][]byte, 0, 1+len(m.Content))
	frames = append(frames, b)
	if m.ID == msgWhisper || m.ID == msgShout {
		frames = append(frames, m.Content...)
	}
	return frames, nil
}

// decodeZRE parses a ZRE message from its frames (identity frame already
// removed). Content frames are referenced, not copied.
func decodeZRE(frames [][]byte) (*zreMsg, error) {
	if len(frames) == 0 {
		return nil, fmt.Errorf("%w: no frames", ErrMalformed)
	}
	r := reader{b: frames[0]}
	sig, id, ver, seq := r.u16(), r.u8(), r.u8(), r.u16()
	if r.err != nil {
		return nil, fmt.Errorf("%w: short header (%d bytes)", ErrMalformed, len(frames[0]))
	}
	if sig != zreSignature {
		return nil, fmt.Errorf("%w: bad signature %#04x", ErrMalformed, sig)
	}
	if ver != zreVersion {
		return nil, fmt.Errorf("%w: %s: unsupported version %d", ErrMalformed, msgName(id), ver)
	}
	m := &zreMsg{ID: id, Sequence: seq}
	switch id {
	case msgHello:
		m.Endpoint = r.str()
		n := r.count()
		for i := 0; i < n && r.err == nil; i++ {
			m.Groups = append(m.Groups, r.longStr())
		}
		m.Status = r.u8()
		m.Name = r.str()
		n = r.count()
		if n > 0 && r.err == nil {
			m.Headers = make(map[string]string, min(n, 64))
		}
		for i := 0; i < n && r.err == nil; i++ {
			k := r.str()
			m.Headers[k] = r.longStr()
		}
	case msgWhisper, msgPing, msgPingOK:
	case msgShout:
		m.Group = r.str()
	case msgJoin, msgLeave:
		m.Group = r.str()
		m.Status = r.u8()
	case msgElect, msgLeader, msgGoodbye:
		return m, nil // fields ignored
	default:
		return nil, fmt.Errorf("%w: unknown message id %d", ErrMalformed, id)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, msgName(id), r.err)
	}
	if m.ID == msgWhisper || m.ID == msgShout {
		m.Content = frames[1:]
	}
	return m, nil
}

// reader decodes big-endian zproto fields; the first error sticks.
type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated field")

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = errShort
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) str() string { return string(r.take(int(r.u8()))) }

func (r *reader) longStr() string {
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(len(r.b)) {
		r.err = fmt.Errorf("long string of %d bytes with %d left", n, len(r.b))
		return ""
	}
	return string(r.take(int(n)))
}

// count reads a 4-byte element count and checks it against what is left:
// every element takes at least 1 byte, so a bigger count is a lie.
func (r *reader) count() int {
	n := r.u32()
	if r.err == nil && (n > maxListLen || int(n) > len(r.b)) {
		r.err = fmt.Errorf("list of %d elements with %d bytes left", n, len(r.b))
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

func putString(b []byte, s string) ([]byte, error) {
	if len(s) > 255 {
		return b, fmt.Errorf("string of %d bytes is longer than 255", len(s))
	}
	return append(append(b, byte(len(s))), s...), nil
}

func putLongString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}
