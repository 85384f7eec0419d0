package harmony

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func sampleMessages() []*Message {
	b := BatchID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	return []*Message{
		{Type: MsgStart, Batch: b, N: 1234, Spec: "filter level>=warn"},
		{Type: MsgTask, Batch: b, Index: 7, Collector: "tcp://127.0.0.1:5000", Spec: "count-by level",
			Source: "a/b.log.gz", FirstLine: 14001, Data: []byte("{\"level\":\"info\"}\n{}\n")},
		{Type: MsgDone, Batch: b, Index: 9},
		{Type: MsgResult, Batch: b, Index: 3, Source: "x.log", Lines: 100, Bad: 2,
			BadLines: []BadLine{{Source: "x.log", Line: 5, Reason: "not a JSON object"}, {Source: "x.log", Line: 9, Reason: "eof"}},
			Data:     []byte("out\n")},
		{Type: MsgResult, Batch: b, Index: 4, Source: "y.log", Lines: 1},
		{Type: MsgEnd, Batch: b},
		{Type: MsgAck, Batch: b, Committed: 99},
		{Type: MsgResend, Batch: b, From: 40, Missing: []uint32{3, 17, 39}},
		{Type: MsgResend, Batch: b, From: 12},
		{Type: MsgFinished, Batch: b},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		frame, err := Encode(nil, m)
		if err != nil {
			t.Fatalf("encode %v: %v", m.Type, err)
		}
		got, err := Decode(frame)
		if err != nil {
			t.Fatalf("decode %v: %v", m.Type, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%v round trip:\n got %+v\nwant %+v", m.Type, got, m)
		}
		// Every strict prefix is rejected, never accepted or panicking.
		for i := range frame {
			if _, err := Decode(frame[:i]); err == nil {
				t.Fatalf("%v: %d-byte prefix of %d accepted", m.Type, i, len(frame))
			}
		}
		if _, err := Decode(append(frame, 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%v with a trailing byte: %v", m.Type, err)
		}
	}
}

func TestCodecRejects(t *testing.T) {
	good, _ := Encode(nil, &Message{Type: MsgDone, Index: 1})
	bad := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	hugeBlob := func() []byte {
		b := []byte{signature, version, byte(MsgTask)}
		b = append(b, make([]byte, 16+4)...)
		for range 3 {
			b = append(b, 0, 0)
		}
		b = append(b, make([]byte, 8)...)
		return binary.BigEndian.AppendUint32(b, 0xFFFFFFFF)
	}()
	cases := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"empty", nil, ErrMalformed},
		{"signature", bad(func(b []byte) []byte { b[0] = 0; return b }), ErrMalformed},
		{"version", bad(func(b []byte) []byte { b[1] = 9; return b }), ErrVersion},
		{"type", bad(func(b []byte) []byte { b[2] = 99; return b }), ErrMalformed},
		{"huge blob", hugeBlob, ErrTooLarge},
		{"huge batch", func() []byte {
			b, _ := Encode(nil, &Message{Type: MsgStart, N: MaxTasks + 1})
			return b
		}(), ErrTooLarge},
		{"resend count beyond frame", func() []byte {
			b := []byte{signature, version, byte(MsgResend)}
			b = append(b, make([]byte, 16+4)...)
			return binary.BigEndian.AppendUint16(b, 1000)
		}(), ErrMalformed},
	}
	for _, c := range cases {
		if _, err := Decode(c.frame); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := Encode(nil, &Message{Type: MsgResend, Missing: make([]uint32, MaxResendList+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("encode long resend list: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		b, _ := Encode(nil, m)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{signature, version, byte(MsgResult)})
	f.Add([]byte{0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := Decode(frame)
		if err != nil {
			return
		}
		// What decodes must encode back to the same bytes.
		again, err := Encode(nil, m)
		if err != nil {
			t.Fatalf("decoded %v does not encode: %v", m.Type, err)
		}
		if !bytes.Equal(again, frame) {
			t.Fatalf("%v: re-encoding differs", m.Type)
		}
	})
}
