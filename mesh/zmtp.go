package mesh

// The mesh speaks ZMTP 3.0 with the NULL mechanism (RFC 23/37) on its own
// sockets rather than through zmq4 v0.17.0, whose ROUTER and DEALER cannot
// bound a blocked write, silently drop sends while disconnected and leave
// reader goroutines blocked after Close when their queue is full. A ZRE
// node needs exactly one DEALER per peer (dial, send) and one ROUTER (accept,
// receive with the peer's identity), which is a small part of ZMTP. Wire
// compatibility with libzmq is checked by the interop tests.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/logmesh/logmesh/internal/zmtp"
)

const (
	flagMore    = zmtp.FlagMore
	flagLong    = zmtp.FlagLong
	flagCommand = zmtp.FlagCommand
)

// zmtpGreeting is what we send: signature, version 3.0, NULL, not server.
func zmtpGreeting() []byte {
	g := make([]byte, 64)
	g[0], g[8], g[9] = 0xFF, 0x01, 0x7F
	g[10], g[11] = 3, 0
	copy(g[12:32], "NULL")
	return g
}

// zmtpHandshake exchanges greetings and READY commands on conn. It sends our
// socket type and identity and returns the peer's identity and socket type.
func zmtpHandshake(conn net.Conn, r *bufio.Reader, w *bufio.Writer, sockType string, identity []byte, timeout time.Duration) (peerID []byte, peerType string, err error) {
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, "", err
	}
	defer conn.SetDeadline(time.Time{})
	if _, err := w.Write(zmtpGreeting()); err != nil {
		return nil, "", err
	}
	props := map[string][]byte{"Socket-Type": []byte(sockType), "Identity": identity}
	if err := writeFrame(w, encodeReady(props), flagCommand); err != nil {
		return nil, "", err
	}
	if err := w.Flush(); err != nil {
		return nil, "", err
	}
	var g [64]byte
	if _, err := io.ReadFull(r, g[:]); err != nil {
		return nil, "", fmt.Errorf("read greeting: %w", err)
	}
	if g[0] != 0xFF || g[9]&1 != 1 {
		return nil, "", fmt.Errorf("%w: not a ZMTP 3 greeting", ErrMalformed)
	}
	if g[10] < 3 {
		return nil, "", fmt.Errorf("%w: ZMTP version %d.%d", ErrMalformed, g[10], g[11])
	}
	if mech := string(bytes.TrimRight(g[12:32], "\x00")); mech != "NULL" {
		return nil, "", fmt.Errorf("%w: security mechanism %q, want NULL", ErrMalformed, mech)
	}
	body, flags, err := readFrame(r, 64<<10)
	if err != nil {
		return nil, "", fmt.Errorf("read READY: %w", err)
	}
	if flags&flagCommand == 0 {
		return nil, "", fmt.Errorf("%w: first frame is not a command", ErrMalformed)
	}
	peer, err := decodeReady(body)
	if err != nil {
		return nil, "", err
	}
	return peer["Identity"], string(peer["Socket-Type"]), nil
}

func encodeReady(props map[string][]byte) []byte {
	b := append([]byte{5}, "READY"...)
	for _, k := range sortedKeys(props) {
		b = append(b, byte(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(props[k])))
		b = append(b, props[k]...)
	}
	return b
}

func decodeReady(body []byte) (map[string][]byte, error) {
	r := reader{b: body}
	if name := r.str(); r.err != nil || name != "READY" {
		if name == "ERROR" {
			return nil, fmt.Errorf("peer refused the handshake: %q", r.str())
		}
		return nil, fmt.Errorf("%w: expected READY command, got %q", ErrMalformed, name)
	}
	props := map[string][]byte{}
	for len(r.b) > 0 && r.err == nil {
		k := r.str()
		n := r.u32()
		props[k] = r.take(int(min(n, 1<<20)))
		if n > 1<<20 {
			r.err = errShort
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: READY metadata: %v", ErrMalformed, r.err)
	}
	return props, nil
}

// errTooBig is returned when a peer announces a frame or message larger than
// the configured limit; the connection is then dropped.
var errTooBig = errors.New("message too big")

// readFrame reads one frame of at most max bytes.
func readFrame(r *bufio.Reader, max int) ([]byte, byte, error) {
	flags, size, err := zmtp.ReadHeader(r, uint64(max))
	switch {
	case errors.Is(err, zmtp.ErrTooLarge):
		return nil, 0, fmt.Errorf("%w: %w", errTooBig, err)
	case errors.Is(err, zmtp.ErrFrame):
		return nil, 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	case err != nil:
		return nil, 0, err
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, 0, err
	}
	return body, flags, nil
}

// readMessage reads the frames of one message, skipping commands (such as
// ZMTP 3.1 PING). The frames together may hold at most max bytes.
func readMessage(r *bufio.Reader, max int) ([][]byte, error) {
	var frames [][]byte
	left := max
	for {
		body, flags, err := readFrame(r, left)
		if err != nil {
			return nil, err
		}
		if flags&flagCommand != 0 {
			if len(frames) > 0 {
				return nil, fmt.Errorf("%w: command inside a message", ErrMalformed)
			}
			continue
		}
		// Each frame costs at least its header, so many empty frames
		// cannot grow the slice without bound either.
		left -= len(body) + 2
		if left < 0 {
			return nil, fmt.Errorf("%w: message over %d bytes", errTooBig, max)
		}
		frames = append(frames, body)
		if flags&flagMore == 0 {
			return frames, nil
		}
	}
}

func writeFrame(w *bufio.Writer, body []byte, flags byte) error {
	var h [zmtp.MaxHeader]byte
	w.Write(zmtp.AppendHeader(h[:0], flags, len(body)))
	_, err := w.Write(body)
	return err
}

// writeMessage writes frames as one multipart message (not flushed).
func writeMessage(w *bufio.Writer, frames [][]byte) error {
	for i, f := range frames {
		var flags byte
		if i < len(frames)-1 {
			flags = flagMore
		}
		if err := writeFrame(w, f, flags); err != nil {
			return err
		}
	}
	return nil
}
