package zmtp

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// readers gives the two ways ReadHeader reads: a byte at a time (an
// io.ByteReader, like bufio.Reader) and with io.ReadFull (a plain Reader).
func readers(b []byte) map[string]io.Reader {
	return map[string]io.Reader{
		"byte reader":  bytes.NewReader(b),
		"plain reader": struct{ io.Reader }{bytes.NewReader(b)},
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		flags byte
		size  int
		len   int
	}{
		{0, 0, 2}, {FlagMore, 1, 2}, {FlagCommand, 255, 2}, {0, 256, 9}, {FlagMore, 1 << 20, 9},
	} {
		h := AppendHeader(nil, tc.flags, tc.size)
		if len(h) != tc.len {
			t.Errorf("size %d: header of %d bytes, want %d", tc.size, len(h), tc.len)
		}
		for how, r := range readers(h) {
			flags, size, err := ReadHeader(r, 1<<20)
			if err != nil || size != uint64(tc.size) || flags&^FlagLong != tc.flags {
				t.Errorf("%s: size %d flags %#x: got %#x %d %v", how, tc.size, tc.flags, flags, size, err)
			}
		}
	}
}

func TestReadHeaderRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []byte
		want error
	}{
		"empty":          {nil, io.EOF},
		"one byte":       {[]byte{0}, io.ErrUnexpectedEOF},
		"reserved flags": {[]byte{0x08, 1}, ErrFrame},
		"long cut":       {[]byte{FlagLong, 0, 0, 0}, io.ErrUnexpectedEOF},
		"over limit":     {AppendHeader(nil, 0, 1001), ErrFrame},
		"huge":           {[]byte{FlagLong, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, ErrFrame},
	} {
		for how, r := range readers(tc.in) {
			_, _, err := ReadHeader(r, 1000)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s, %s: err %v, want %v", name, how, err, tc.want)
			}
			// Only a size over the limit says ErrTooLarge.
			if big := name == "over limit" || name == "huge"; errors.Is(err, ErrTooLarge) != big {
				t.Errorf("%s, %s: errors.Is(err, ErrTooLarge) = %v, want %v", name, how, !big, big)
			}
		}
	}
}

func FuzzReadHeader(f *testing.F) {
	f.Add(AppendHeader(nil, 0, 10))
	f.Add(AppendHeader(nil, FlagMore|FlagCommand, 300))
	f.Add([]byte{0x08, 1})
	f.Add([]byte{FlagLong, 0xFF})
	f.Fuzz(func(t *testing.T, in []byte) {
		flags, size, err := ReadHeader(bytes.NewReader(in), 4096)
		// Both ways of reading agree, errors included.
		f2, s2, err2 := ReadHeader(struct{ io.Reader }{bytes.NewReader(in)}, 4096)
		if f2 != flags || s2 != size || (err == nil) != (err2 == nil) ||
			(err != nil && (errors.Is(err, ErrTooLarge) != errors.Is(err2, ErrTooLarge) || errors.Is(err, io.ErrUnexpectedEOF) != errors.Is(err2, io.ErrUnexpectedEOF))) {
			t.Fatalf("byte reader %#x %d %v, plain reader %#x %d %v", flags, size, err, f2, s2, err2)
		}
		if err != nil {
			return
		}
		if size > 4096 || flags&^(FlagMore|FlagLong|FlagCommand) != 0 {
			t.Fatalf("accepted flags %#x size %d", flags, size)
		}
		// A header that decodes re-encodes to the same size class.
		if h := AppendHeader(nil, flags&^FlagLong, int(size)); size <= 255 && flags&FlagLong == 0 && !bytes.Equal(h, in[:2]) {
			t.Fatalf("re-encoded %x, read %x", h, in[:2])
		}
	})
}
