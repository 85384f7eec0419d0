package mesh

import (
	"encoding/binary"
	"fmt"
)

// ZGP (ZeroMQ gossip protocol, czmq zgossip_msg) message ids.
const (
	gossipHello   = 1
	gossipPublish = 2
	gossipPing    = 3
	gossipPong    = 4
	gossipInvalid = 5
)

const (
	gossipSignature = 0xAAA0 // 0xAAA0 | 0
	gossipVersion   = 1
)

// gossipMsg is one ZGP message. Key, Value and TTL are set for PUBLISH only.
type gossipMsg struct {
	ID    byte
	Key   string
	Value string
	TTL   uint32 // milliseconds
}

func (m *gossipMsg) encode() ([]byte, error) {
	b := make([]byte, 4, 64)
	binary.BigEndian.PutUint16(b, gossipSignature)
	b[2], b[3] = m.ID, gossipVersion
	switch m.ID {
	case gossipPublish:
		var err error
		if b, err = putString(b, m.Key); err != nil {
			return nil, fmt.Errorf("gossip PUBLISH key: %w", err)
		}
		b = putLongString(b, m.Value)
		b = binary.BigEndian.AppendUint32(b, m.TTL)
	case gossipHello, gossipPing, gossipPong, gossipInvalid:
	default:
		return nil, fmt.Errorf("gossip: encode unknown message id %d", m.ID)
	}
	return b, nil
}

// decodeGossip parses one ZGP message (a single frame).
func decodeGossip(p []byte) (*gossipMsg, error) {
	r := reader{b: p}
	sig, id, ver := r.u16(), r.u8(), r.u8()
	if r.err != nil {
		return nil, fmt.Errorf("%w: gossip: short header (%d bytes)", ErrMalformed, len(p))
	}
	if sig != gossipSignature {
		return nil, fmt.Errorf("%w: gossip: bad signature %#04x", ErrMalformed, sig)
	}
	if ver != gossipVersion {
		return nil, fmt.Errorf("%w: gossip: unsupported version %d", ErrMalformed, ver)
	}
	m := &gossipMsg{ID: id}
	switch id {
	case gossipPublish:
		m.Key = r.str()
		m.Value = r.longStr()
		m.TTL = r.u32()
	case gossipHello, gossipPing, gossipPong, gossipInvalid:
	default:
		return nil, fmt.Errorf("%w: gossip: unknown message id %d", ErrMalformed, id)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: gossip: %v", ErrMalformed, r.err)
	}
	return m, nil
}
