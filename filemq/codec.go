package filemq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Command is the id of a FILEMQ command (RFC 35), the byte after the signature.
type Command uint8

// The FILEMQ commands, with the ids of the reference codec (fmq_msg).
const (
	CmdOHAI        Command = 1
	CmdOHAIOK      Command = 4
	CmdICANHAZ     Command = 5
	CmdICANHAZOK   Command = 6
	CmdNOM         Command = 7
	CmdCHEEZBURGER Command = 8
	CmdHUGZ        Command = 9
	CmdHUGZOK      Command = 10
	CmdKTHXBAI     Command = 11
	CmdSRSLY       Command = 128
	CmdRTFM        Command = 129
)

var commandNames = map[Command]string{
	CmdOHAI: "OHAI", CmdOHAIOK: "OHAI-OK", CmdICANHAZ: "ICANHAZ", CmdICANHAZOK: "ICANHAZ-OK",
	CmdNOM: "NOM", CmdCHEEZBURGER: "CHEEZBURGER", CmdHUGZ: "HUGZ", CmdHUGZOK: "HUGZ-OK",
	CmdKTHXBAI: "KTHXBAI", CmdSRSLY: "SRSLY", CmdRTFM: "RTFM",
}

// String returns the RFC name of the command.
func (c Command) String() string {
	if s, ok := commandNames[c]; ok {
		return s
	}
	return fmt.Sprintf("Command(%d)", uint8(c))
}

// File operations carried by CHEEZBURGER.
const (
	OpCreate uint8 = 1
	OpDelete uint8 = 2
)

const (
	// signature is zproto's 0xAAA0 | 3, the first two bytes of every command.
	signature = 0xAAA3
	// protocolName and protocolVersion are the OHAI fields the reference
	// codec insists on.
	protocolName    = "FILEMQ"
	protocolVersion = 2
)

// Errors returned by Decode; they are wrapped with the detail.
var (
	ErrMalformed = errors.New("filemq: malformed command")
	ErrProtocol  = errors.New("filemq: wrong protocol or version")
)

// Msg is one FILEMQ command. Only the fields of its Cmd are used.
type Msg struct {
	Cmd Command

	Path    string            // ICANHAZ: subscription path, starts with "/"
	Options map[string]string // ICANHAZ: e.g. RESYNC=1
	Cache   map[string]string // ICANHAZ: files the client holds

	Credit   uint64 // NOM: bytes granted
	Sequence uint64 // NOM, CHEEZBURGER

	Operation uint8             // CHEEZBURGER: OpCreate or OpDelete
	Filename  string            // CHEEZBURGER: virtual path, starts with "/"
	Offset    uint64            // CHEEZBURGER: offset of Chunk in the file
	EOF       bool              // CHEEZBURGER: last chunk of the file
	Headers   map[string]string // CHEEZBURGER: e.g. X-SHA256, X-SIZE
	Chunk     []byte            // CHEEZBURGER: file data (aliases the frame after Decode)

	Reason string // SRSLY, RTFM
}

// Encode appends the wire form of m to buf and returns it.
func (m *Msg) Encode(buf []byte) ([]byte, error) {
	buf = binary.BigEndian.AppendUint16(buf, signature)
	buf = append(buf, byte(m.Cmd))
	var err error
	switch m.Cmd {
	case CmdOHAI:
		buf, _ = appendString(buf, protocolName)
		buf = binary.BigEndian.AppendUint16(buf, protocolVersion)
	case CmdICANHAZ:
		buf = appendLongstr(buf, m.Path)
		if buf, err = appendHash(buf, m.Options); err != nil {
			return nil, fmt.Errorf("filemq: encode ICANHAZ options: %w", err)
		}
		if buf, err = appendHash(buf, m.Cache); err != nil {
			return nil, fmt.Errorf("filemq: encode ICANHAZ cache: %w", err)
		}
	case CmdNOM:
		buf = binary.BigEndian.AppendUint64(buf, m.Credit)
		buf = binary.BigEndian.AppendUint64(buf, m.Sequence)
	case CmdCHEEZBURGER:
		buf = binary.BigEndian.AppendUint64(buf, m.Sequence)
		buf = append(buf, m.Operation)
		buf = appendLongstr(buf, m.Filename)
		buf = binary.BigEndian.AppendUint64(buf, m.Offset)
		buf = append(buf, boolByte(m.EOF))
		if buf, err = appendHash(buf, m.Headers); err != nil {
			return nil, fmt.Errorf("filemq: encode CHEEZBURGER headers: %w", err)
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(m.Chunk)))
		buf = append(buf, m.Chunk...)
	case CmdSRSLY, CmdRTFM:
		if buf, err = appendString(buf, m.Reason); err != nil {
			return nil, fmt.Errorf("filemq: encode %v reason: %w", m.Cmd, err)
		}
	case CmdOHAIOK, CmdICANHAZOK, CmdHUGZ, CmdHUGZOK, CmdKTHXBAI:
	default:
		return nil, fmt.Errorf("filemq: encode: unknown command %d", m.Cmd)
	}
	return buf, nil
}

// Decode parses one frame. Chunk aliases frame; every length is checked
// against the bytes left before anything is allocated.
func Decode(frame []byte) (Msg, error) {
	d := decoder{buf: frame}
	var m Msg
	if sig := d.uint16(); d.err != nil || sig != signature {
		return m, fmt.Errorf("%w: bad signature", ErrMalformed)
	}
	m.Cmd = Command(d.uint8())
	switch m.Cmd {
	case CmdOHAI:
		proto := d.string()
		version := d.uint16()
		if d.err == nil && (proto != protocolName || version != protocolVersion) {
			return m, fmt.Errorf("%w: %q version %d", ErrProtocol, proto, version)
		}
	case CmdICANHAZ:
		m.Path = d.longstr()
		m.Options = d.hash()
		m.Cache = d.hash()
	case CmdNOM:
		m.Credit = d.uint64()
		m.Sequence = d.uint64()
	case CmdCHEEZBURGER:
		m.Sequence = d.uint64()
		m.Operation = d.uint8()
		m.Filename = d.longstr()
		m.Offset = d.uint64()
		m.EOF = d.uint8() != 0
		m.Headers = d.hash()
		m.Chunk = d.bytes(int(d.uint32()))
	case CmdSRSLY, CmdRTFM:
		m.Reason = d.string()
	case CmdOHAIOK, CmdICANHAZOK, CmdHUGZ, CmdHUGZOK, CmdKTHXBAI:
	default:
		return m, fmt.Errorf("%w: unknown command id %d", ErrMalformed, uint8(m.Cmd))
	}
	if d.err != nil {
		return m, fmt.Errorf("%w: %v: %v", ErrMalformed, m.Cmd, d.err)
	}
	return m, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func appendString(buf []byte, s string) ([]byte, error) {
	if len(s) > 255 {
		return buf, fmt.Errorf("string of %d bytes exceeds 255", len(s))
	}
	buf = append(buf, byte(len(s)))
	return append(buf, s...), nil
}

func appendLongstr(buf []byte, s string) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
	return append(buf, s...)
}

// appendHash writes a zproto dictionary in key order, so that encoding is
// deterministic.
func appendHash(buf []byte, h map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(keys)))
	var err error
	for _, k := range keys {
		if buf, err = appendString(buf, k); err != nil {
			return buf, fmt.Errorf("key %.40q...: %w", k, err)
		}
		buf = appendLongstr(buf, h[k])
	}
	return buf, nil
}

// decoder reads fields and remembers the first error, so that callers check once.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.buf) {
		d.err = fmt.Errorf("field of %d bytes, %d left", n, len(d.buf))
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) uint8() uint8 {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) uint16() uint16 {
	if b := d.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) uint32() uint32 {
	if b := d.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) uint64() uint64 {
	if b := d.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) bytes(n int) []byte { return d.take(n) }

func (d *decoder) string() string { return string(d.take(int(d.uint8()))) }

func (d *decoder) longstr() string {
	n := d.uint32()
	if uint64(n) > uint64(len(d.buf)) {
		d.take(len(d.buf) + 1) // records the error
		return ""
	}
	return string(d.take(int(n)))
}

// hash reads a dictionary. The count is checked against the bytes left
// (each entry takes at least 5) before the map is sized. On a duplicate
// key the first value wins, as zhash_insert does in the reference codec.
func (d *decoder) hash() map[string]string {
	n := d.uint32()
	if d.err != nil {
		return nil
	}
	if uint64(n)*5 > uint64(len(d.buf)) {
		d.err = fmt.Errorf("dictionary of %d entries in %d bytes", n, len(d.buf))
		return nil
	}
	h := make(map[string]string, n)
	for i := uint32(0); i < n && d.err == nil; i++ {
		k := d.string()
		v := d.longstr()
		if _, dup := h[k]; !dup && d.err == nil {
			h[k] = v
		}
	}
	return h
}
