package curve

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/logmesh/logmesh/internal/zmtp"
)

// Wire layout of the CurveZMQ commands (RFC 26, carried as ZMTP commands per
// RFC 25/37). Sizes are those of the whole command, name included.
const (
	boxOverhead  = 16 // Poly1305 tag of a NaCl box
	shortNonceSz = 8
	longNonceSz  = 16

	helloSize    = 6 + 2 + 72 + KeySize + shortNonceSz + 64 + boxOverhead // 200
	welcomeSize  = 8 + longNonceSz + KeySize + cookieSize + boxOverhead   // 168
	cookieSize   = longNonceSz + 2*KeySize + boxOverhead                  // 96
	vouchSize    = longNonceSz + 2*KeySize + boxOverhead                  // 96
	initiateMin  = 9 + cookieSize + shortNonceSz + KeySize + vouchSize + boxOverhead
	readyMin     = 6 + shortNonceSz + boxOverhead
	messageMin   = 8 + shortNonceSz + 1 + boxOverhead
	errorMaxSize = 6 + 1 + 255

	// maxMetadata bounds the metadata a peer may send in INITIATE or READY.
	maxMetadata = 64 << 10
)

// ZMTP frame flags (RFC 23/37).
const (
	flagMore    = zmtp.FlagMore
	flagLong    = zmtp.FlagLong
	flagCommand = zmtp.FlagCommand
)

// Flags inside a MESSAGE box (RFC 26 / libzmq).
const (
	msgFlagMore    = 0x01
	msgFlagCommand = 0x02
)

var (
	cmdHello    = []byte("\x05HELLO")
	cmdWelcome  = []byte("\x07WELCOME")
	cmdInitiate = []byte("\x08INITIATE")
	cmdReady    = []byte("\x05READY")
	cmdMessage  = []byte("\x07MESSAGE")
	cmdError    = []byte("\x05ERROR")
)

// ErrMalformed reports a command or frame that does not follow the protocol.
var ErrMalformed = errors.New("curve: malformed command")

type hello struct {
	clientShort PublicKey // C'
	nonce       uint64
	signature   []byte // Box[64 zeros](C'->S), 80 bytes
}

func encodeHello(h hello) []byte {
	b := make([]byte, 0, helloSize)
	b = append(b, cmdHello...)
	b = append(b, 1, 0)
	b = append(b, make([]byte, 72)...)
	b = append(b, h.clientShort[:]...)
	b = binary.BigEndian.AppendUint64(b, h.nonce)
	return append(b, h.signature...)
}

func decodeHello(cmd []byte) (hello, error) {
	var h hello
	if err := expectCommand(cmd, cmdHello, helloSize, helloSize); err != nil {
		return h, err
	}
	p := cmd[len(cmdHello):]
	if p[0] != 1 || p[1] != 0 {
		return h, fmt.Errorf("%w: HELLO version %d.%d, want 1.0", ErrMalformed, p[0], p[1])
	}
	p = p[2+72:]
	copy(h.clientShort[:], p)
	h.nonce = binary.BigEndian.Uint64(p[KeySize:])
	h.signature = p[KeySize+shortNonceSz:]
	return h, nil
}

type welcome struct {
	nonce [longNonceSz]byte
	box   []byte // Box[S' + cookie](S->C'), 144 bytes
}

func encodeWelcome(w welcome) []byte {
	b := make([]byte, 0, welcomeSize)
	b = append(b, cmdWelcome...)
	b = append(b, w.nonce[:]...)
	return append(b, w.box...)
}

func decodeWelcome(cmd []byte) (welcome, error) {
	var w welcome
	if err := expectCommand(cmd, cmdWelcome, welcomeSize, welcomeSize); err != nil {
		return w, err
	}
	p := cmd[len(cmdWelcome):]
	copy(w.nonce[:], p)
	w.box = p[longNonceSz:]
	return w, nil
}

type initiate struct {
	cookie []byte // 96 bytes, opaque to the client
	nonce  uint64
	box    []byte // Box[C + vouch + metadata](C'->S')
}

func encodeInitiate(in initiate) []byte {
	b := make([]byte, 0, len(cmdInitiate)+len(in.cookie)+shortNonceSz+len(in.box))
	b = append(b, cmdInitiate...)
	b = append(b, in.cookie...)
	b = binary.BigEndian.AppendUint64(b, in.nonce)
	return append(b, in.box...)
}

func decodeInitiate(cmd []byte) (initiate, error) {
	var in initiate
	if err := expectCommand(cmd, cmdInitiate, initiateMin, initiateMin+maxMetadata); err != nil {
		return in, err
	}
	p := cmd[len(cmdInitiate):]
	in.cookie = p[:cookieSize]
	in.nonce = binary.BigEndian.Uint64(p[cookieSize:])
	in.box = p[cookieSize+shortNonceSz:]
	return in, nil
}

// nonceBox is the layout shared by READY and MESSAGE: short nonce, then box.
type nonceBox struct {
	nonce uint64
	box   []byte
}

func encodeNonceBox(name []byte, nb nonceBox) []byte {
	b := make([]byte, 0, len(name)+shortNonceSz+len(nb.box))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint64(b, nb.nonce)
	return append(b, nb.box...)
}

func decodeReady(cmd []byte) (nonceBox, error) {
	return decodeNonceBox(cmd, cmdReady, readyMin, readyMin+maxMetadata)
}

func decodeMessage(cmd []byte) (nonceBox, error) {
	return decodeNonceBox(cmd, cmdMessage, messageMin, -1)
}

func decodeNonceBox(cmd, name []byte, minSize, maxSize int) (nonceBox, error) {
	var nb nonceBox
	if err := expectCommand(cmd, name, minSize, maxSize); err != nil {
		return nb, err
	}
	p := cmd[len(name):]
	nb.nonce = binary.BigEndian.Uint64(p)
	nb.box = p[shortNonceSz:]
	return nb, nil
}

func encodeError(reason string) []byte {
	if len(reason) > 255 {
		reason = reason[:255]
	}
	b := append([]byte{}, cmdError...)
	b = append(b, byte(len(reason)))
	return append(b, reason...)
}

func decodeError(cmd []byte) (string, error) {
	if err := expectCommand(cmd, cmdError, len(cmdError)+1, errorMaxSize); err != nil {
		return "", err
	}
	p := cmd[len(cmdError):]
	if int(p[0]) != len(p)-1 {
		return "", fmt.Errorf("%w: ERROR reason length %d, have %d bytes", ErrMalformed, p[0], len(p)-1)
	}
	return string(p[1:]), nil
}

// commandName returns the name of a ZMTP command body, for error messages.
func commandName(cmd []byte) string {
	if len(cmd) == 0 || int(cmd[0]) > len(cmd)-1 {
		return "?"
	}
	return string(cmd[1 : 1+int(cmd[0])])
}

func hasName(cmd, name []byte) bool {
	return len(cmd) >= len(name) && string(cmd[:len(name)]) == string(name)
}

func expectCommand(cmd, name []byte, minSize, maxSize int) error {
	if !hasName(cmd, name) {
		return fmt.Errorf("%w: got %q, want %s", ErrMalformed, commandName(cmd), name[1:])
	}
	if len(cmd) < minSize || (maxSize >= 0 && len(cmd) > maxSize) {
		return fmt.Errorf("%w: %s of %d bytes, want %d..%d", ErrMalformed, name[1:], len(cmd), minSize, maxSize)
	}
	return nil
}

// parseMetadata checks ZMTP metadata (RFC 23: name-size, name, value-size,
// value, repeated) and returns its properties. zmq4's own parser does not
// check every bound, so nothing reaches it before passing here.
func parseMetadata(b []byte) (map[string]string, error) {
	props := make(map[string]string)
	for len(b) > 0 {
		n := int(b[0])
		if n == 0 || 1+n+4 > len(b) {
			return nil, fmt.Errorf("%w: metadata property name of %d bytes in %d", ErrMalformed, n, len(b))
		}
		name := b[1 : 1+n]
		for _, c := range name {
			if !isNameChar(c) {
				return nil, fmt.Errorf("%w: metadata property name %q", ErrMalformed, name)
			}
		}
		v := binary.BigEndian.Uint32(b[1+n:])
		rest := b[1+n+4:]
		if uint64(v) > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: metadata value of %d bytes in %d", ErrMalformed, v, len(rest))
		}
		props[string(name)] = string(rest[:v])
		b = rest[v:]
	}
	return props, nil
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '+'
}

// readFrame reads one ZMTP frame whose body is at most limit bytes, into buf
// (grown when needed), and returns its flags and body.
func readFrame(r io.Reader, buf []byte, limit int64) (byte, []byte, error) {
	flags, size, err := zmtp.ReadHeader(r, uint64(limit))
	switch {
	case errors.Is(err, zmtp.ErrTooLarge):
		return 0, nil, fmt.Errorf("%w: %w", ErrTooLarge, err)
	case errors.Is(err, zmtp.ErrFrame):
		return 0, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	case err != nil:
		return 0, nil, err
	}
	if uint64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return flags, buf, nil
}

// appendFrameHeader appends a ZMTP frame header for a body of size bytes.
func appendFrameHeader(dst []byte, flags byte, size int) []byte {
	return zmtp.AppendHeader(dst, flags, size)
}

// ErrTooLarge reports a frame over the configured size limit.
var ErrTooLarge = errors.New("curve: frame too large")
