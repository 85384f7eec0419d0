package filemq

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sampleMsgs() []Msg {
	return []Msg{
		{Cmd: CmdOHAI},
		{Cmd: CmdOHAIOK},
		{Cmd: CmdICANHAZ, Path: "/logs", Options: map[string]string{"RESYNC": "1"},
			Cache: map[string]string{"a/b.gz": "sha256:00ff", "c.gz": "partial:42:00ff"}},
		{Cmd: CmdICANHAZOK},
		{Cmd: CmdNOM, Credit: 5_000_000, Sequence: 7},
		{Cmd: CmdCHEEZBURGER, Sequence: 9, Operation: OpCreate, Filename: "/logs/a/b.gz",
			Offset: 1 << 33, EOF: true, Headers: map[string]string{"X-SHA256": "ab", "X-SIZE": "3"},
			Chunk: []byte("abc")},
		{Cmd: CmdCHEEZBURGER, Operation: OpDelete, Filename: "/x"},
		{Cmd: CmdHUGZ},
		{Cmd: CmdHUGZOK},
		{Cmd: CmdKTHXBAI},
		{Cmd: CmdSRSLY, Reason: "no"},
		{Cmd: CmdRTFM, Reason: "bad command"},
	}
}

// normalize makes nil and empty maps and slices compare equal.
func normalize(m Msg) Msg {
	for _, h := range []*map[string]string{&m.Options, &m.Cache, &m.Headers} {
		if len(*h) == 0 {
			*h = nil
		}
	}
	if len(m.Chunk) == 0 {
		m.Chunk = nil
	}
	return m
}

func TestCodecRoundTrip(t *testing.T) {
	for _, m := range sampleMsgs() {
		t.Run(m.Cmd.String(), func(t *testing.T) {
			b, err := m.Encode(nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("decode %x: %v", b, err)
			}
			if !reflect.DeepEqual(normalize(got), normalize(m)) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
			}
			again, _ := got.Encode(nil)
			if !bytes.Equal(again, b) {
				t.Fatalf("re-encode differs:\n%x\n%x", again, b)
			}
		})
	}
}

// TestCodecWireBytes pins the exact layout of the reference codec (fmq_msg.c):
// signature AA A3, longstr path and filename, dictionaries as count + string
// key + longstr value.
func TestCodecWireBytes(t *testing.T) {
	cases := []struct {
		m    Msg
		want string
	}{
		{Msg{Cmd: CmdOHAI}, "aaa301" + "0646494c454d51" + "0002"},
		{Msg{Cmd: CmdHUGZ}, "aaa309"},
		{Msg{Cmd: CmdICANHAZ, Path: "/"}, "aaa305" + "000000012f" + "00000000" + "00000000"},
		{Msg{Cmd: CmdNOM, Credit: 0x0102, Sequence: 3}, "aaa307" + "0000000000000102" + "0000000000000003"},
		{Msg{Cmd: CmdCHEEZBURGER, Sequence: 1, Operation: OpCreate, Filename: "/a", Offset: 2, EOF: true,
			Headers: map[string]string{"K": "v"}, Chunk: []byte{0xee}},
			"aaa308" + "0000000000000001" + "01" + "000000022f61" + "0000000000000002" + "01" +
				"00000001" + "014b" + "0000000176" + "00000001ee"},
		{Msg{Cmd: CmdRTFM, Reason: "x"}, "aaa381" + "0178"},
	}
	for _, c := range cases {
		b, err := c.m.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b); got != c.want {
			t.Errorf("%v: got %s want %s", c.m.Cmd, got, c.want)
		}
	}
}

func TestCodecRejects(t *testing.T) {
	valid, _ := (&Msg{Cmd: CmdCHEEZBURGER, Filename: "/a", Chunk: []byte("hello")}).Encode(nil)
	cases := map[string][]byte{
		"empty":           {},
		"bad signature":   {0xaa, 0xa2, 0x09},
		"unknown id":      {0xaa, 0xa3, 0x02},
		"truncated nom":   {0xaa, 0xa3, 0x07, 0, 0, 0},
		"truncated chunk": valid[:len(valid)-1],
		"huge longstr":    {0xaa, 0xa3, 0x05, 0xff, 0xff, 0xff, 0xff},
		"huge hash":       {0xaa, 0xa3, 0x05, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff},
		"wrong protocol":  append([]byte{0xaa, 0xa3, 0x01, 6}, "FILEMX\x00\x02"...),
		"wrong version":   append([]byte{0xaa, 0xa3, 0x01, 6}, "FILEMQ\x00\x01"...),
	}
	for name, b := range cases {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: error %v is neither ErrMalformed nor ErrProtocol", name, err)
		}
	}
}

func TestCodecEncodeRejectsLongKeys(t *testing.T) {
	m := Msg{Cmd: CmdICANHAZ, Path: "/", Cache: map[string]string{strings.Repeat("k", 256): "v"}}
	if _, err := m.Encode(nil); err == nil {
		t.Fatal("a 256-byte dictionary key was encoded")
	}
	m = Msg{Cmd: CmdRTFM, Reason: strings.Repeat("r", 300)}
	if _, err := m.Encode(nil); err == nil {
		t.Fatal("a 300-byte reason was encoded")
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range sampleMsgs() {
		b, _ := m.Encode(nil)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{0xaa, 0xa3, 0x05, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xaa, 0xa3, 0x08})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := m.Encode(nil)
		if err != nil {
			// Decoded keys and reasons are at most 255 bytes, so they encode.
			t.Fatalf("decoded %x but cannot encode it: %v", b, err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decode of %x: %v", enc, err)
		}
		if !reflect.DeepEqual(normalize(m), normalize(m2)) {
			t.Fatalf("unstable round trip: %+v vs %+v", m, m2)
		}
	})
}
