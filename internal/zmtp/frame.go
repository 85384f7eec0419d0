package zmtp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame flags.
const (
	FlagMore    byte = 0x01 // more frames of the same message follow
	FlagLong    byte = 0x02 // the size takes eight bytes
	FlagCommand byte = 0x04 // a command frame, not a message frame
)

// MaxHeader is the size of the longest frame header.
const MaxHeader = 9

// ErrFrame is wrapped by every header decoding error.
var ErrFrame = errors.New("zmtp: malformed frame header")

// AppendHeader appends the header of a frame of size body bytes with flags
// (FlagLong is set or cleared as size needs).
func AppendHeader(dst []byte, flags byte, size int) []byte {
	if size > 255 {
		dst = append(dst, flags|FlagLong)
		return binary.BigEndian.AppendUint64(dst, uint64(size))
	}
	return append(dst, flags&^FlagLong, byte(size))
}

// ReadHeader reads one frame header from r and returns its flags and body
// size. A size above limit, or a flags byte with reserved bits, is an error
// wrapping ErrFrame, returned before the caller allocates anything. A
// header cut short returns io.ErrUnexpectedEOF (io.EOF if nothing was read).
func ReadHeader(r io.Reader, limit uint64) (flags byte, size uint64, err error) {
	var hdr [MaxHeader]byte
	if _, err := io.ReadFull(r, hdr[:2]); err != nil {
		return 0, 0, err
	}
	flags = hdr[0]
	if flags&^(FlagMore|FlagLong|FlagCommand) != 0 {
		return 0, 0, fmt.Errorf("%w: flags %#x", ErrFrame, flags)
	}
	size = uint64(hdr[1])
	if flags&FlagLong != 0 {
		if _, err := io.ReadFull(r, hdr[2:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, err
		}
		size = binary.BigEndian.Uint64(hdr[1:])
	}
	if size > limit {
		return 0, 0, fmt.Errorf("%w: frame of %d bytes, limit %d", ErrFrame, size, limit)
	}
	return flags, size, nil
}
