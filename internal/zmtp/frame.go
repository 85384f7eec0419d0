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

// ErrTooLarge is wrapped, with ErrFrame, by the error for a frame over the
// caller's limit, for callers that tell a peer that is too big from one
// that is broken.
var ErrTooLarge = errors.New("zmtp: frame over the size limit")

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
// size. A size above limit (also ErrTooLarge), or a flags byte with
// reserved bits, is an error wrapping ErrFrame, returned before the caller
// allocates anything. A header cut short returns io.ErrUnexpectedEOF
// (io.EOF if nothing was read). A reader that is an io.ByteReader (a
// bufio.Reader) is read a byte at a time, with no allocation per frame.
func ReadHeader(r io.Reader, limit uint64) (flags byte, size uint64, err error) {
	if br, ok := r.(io.ByteReader); ok {
		flags, size, err = readHeaderBytes(br)
	} else {
		flags, size, err = readHeaderFull(r)
	}
	if err != nil {
		return 0, 0, err
	}
	if size > limit {
		return 0, 0, fmt.Errorf("%w (%w): frame of %d bytes, limit %d", ErrFrame, ErrTooLarge, size, limit)
	}
	return flags, size, nil
}

func checkFlags(flags byte) error {
	if flags&^(FlagMore|FlagLong|FlagCommand) != 0 {
		return fmt.Errorf("%w: flags %#x", ErrFrame, flags)
	}
	return nil
}

// readHeaderFull reads a header with two io.ReadFull calls (the array it
// reads into escapes to the heap, through the interface).
func readHeaderFull(r io.Reader) (flags byte, size uint64, err error) {
	var hdr [MaxHeader]byte
	if _, err := io.ReadFull(r, hdr[:2]); err != nil {
		return 0, 0, err
	}
	flags = hdr[0]
	if err := checkFlags(flags); err != nil {
		return 0, 0, err
	}
	size = uint64(hdr[1])
	if flags&FlagLong != 0 {
		if _, err := io.ReadFull(r, hdr[2:]); err != nil {
			return 0, 0, unexpected(err)
		}
		size = binary.BigEndian.Uint64(hdr[1:])
	}
	return flags, size, nil
}

// readHeaderBytes reads a header a byte at a time.
func readHeaderBytes(r io.ByteReader) (flags byte, size uint64, err error) {
	if flags, err = r.ReadByte(); err != nil {
		return 0, 0, err
	}
	// The size's first byte comes before the flags are judged, as with
	// readHeaderFull, so both report a short header the same way.
	b, err := r.ReadByte()
	if err != nil {
		return 0, 0, unexpected(err)
	}
	if err := checkFlags(flags); err != nil {
		return 0, 0, err
	}
	size = uint64(b)
	if flags&FlagLong != 0 {
		for range 7 {
			if b, err = r.ReadByte(); err != nil {
				return 0, 0, unexpected(err)
			}
			size = size<<8 | uint64(b)
		}
	}
	return flags, size, nil
}

// unexpected turns the end of input inside a header into
// io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
