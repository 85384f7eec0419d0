package zmtp

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

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
		flags, size, err := ReadHeader(bytes.NewReader(h), 1<<20)
		if err != nil || size != uint64(tc.size) || flags&^FlagLong != tc.flags {
			t.Errorf("size %d flags %#x: got %#x %d %v", tc.size, tc.flags, flags, size, err)
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
		if _, _, err := ReadHeader(bytes.NewReader(tc.in), 1000); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", name, err, tc.want)
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
