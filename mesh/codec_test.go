package mesh

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/google/uuid"
)

func sampleMessages() []*zreMsg {
	return []*zreMsg{
		{ID: msgHello, Sequence: 1, Endpoint: "tcp://10.0.0.1:49152", Groups: []string{"logs", "timer"},
			Status: 7, Name: "host-a", Headers: map[string]string{"X-LOGD-PUB": "tcp://10.0.0.1:5000", "X-HTTP": ""}},
		{ID: msgHello, Sequence: 1, Endpoint: "tcp://[::1]:1", Name: ""},
		{ID: msgWhisper, Sequence: 2, Content: [][]byte{[]byte("hello"), {}, []byte("world")}},
		{ID: msgWhisper, Sequence: 65535},
		{ID: msgShout, Sequence: 3, Group: "logs", Content: [][]byte{[]byte("line")}},
		{ID: msgJoin, Sequence: 4, Group: "logs", Status: 8},
		{ID: msgLeave, Sequence: 5, Group: "logs", Status: 9},
		{ID: msgPing, Sequence: 6},
		{ID: msgPingOK, Sequence: 7},
		{ID: msgGoodbye, Sequence: 8},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		t.Run(msgName(m.ID), func(t *testing.T) {
			frames, err := m.encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeZRE(frames)
			if err != nil {
				t.Fatal(err)
			}
			norm := func(x *zreMsg) zreMsg {
				c := *x
				if len(c.Headers) == 0 {
					c.Headers = nil
				}
				if len(c.Content) == 0 {
					c.Content = nil
				}
				return c
			}
			if !reflect.DeepEqual(norm(got), norm(m)) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
			}
		})
	}
}

// TestCodecWire pins the exact bytes of a JOIN against RFC 36.
func TestCodecWire(t *testing.T) {
	frames, err := (&zreMsg{ID: msgJoin, Sequence: 0x0102, Group: "ab", Status: 3}).encode()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xAA, 0xA1, 4, 2, 1, 2, 2, 'a', 'b', 3}
	if len(frames) != 1 || !bytes.Equal(frames[0], want) {
		t.Fatalf("JOIN = % x, want % x", frames, want)
	}
}

func TestCodecRejects(t *testing.T) {
	good, _ := sampleMessages()[0].encode()
	cases := map[string][][]byte{
		"no frames":     nil,
		"short header":  {{0xAA, 0xA1, 1}},
		"bad signature": {{0xAA, 0xA3, 6, 2, 0, 1}},
		"version 1":     {{0xAA, 0xA1, 6, 1, 0, 1}},
		"unknown id":    {{0xAA, 0xA1, 42, 2, 0, 1}},
		"truncated":     {good[0][:len(good[0])-3]},
		"huge count":    {{0xAA, 0xA1, 1, 2, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF}},
		"huge longstr":  {{0xAA, 0xA1, 1, 2, 0, 1, 0, 0, 0, 0, 1, 0x7F, 0xFF, 0xFF, 0xFF}},
	}
	for name, frames := range cases {
		if _, err := decodeZRE(frames); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	long := string(make([]byte, 256))
	if _, err := (&zreMsg{ID: msgShout, Group: long}).encode(); err == nil {
		t.Error("encode of a 256-byte group succeeded")
	}
}

func TestBeaconRoundTrip(t *testing.T) {
	b := beacon{ID: uuid.New(), Port: 0xC001}
	p := b.encode()
	if len(p) != 22 || string(p[:4]) != "ZRE\x01" || p[20] != 0xC0 || p[21] != 0x01 {
		t.Fatalf("beacon wire = % x", p)
	}
	got, err := decodeBeacon(p)
	if err != nil || got != b {
		t.Fatalf("decode = %+v, %v; want %+v", got, err, b)
	}
	v3 := beacon{ID: uuid.New(), Port: 7, HasKey: true, Key: [32]byte{1, 2, 3, 31: 9}}
	p3 := v3.encode()
	if got, err := decodeBeacon(p3); len(p3) != 54 || p3[3] != 3 || err != nil || got != v3 {
		t.Fatalf("v3 beacon: % x decodes to %+v, %v", p3, got, err)
	}
	for name, bad := range map[string][]byte{
		"short":       p[:21],
		"long":        append(append([]byte{}, p...), 0),
		"header":      append([]byte("ZRX\x01"), p[4:]...),
		"version 2":   append([]byte("ZRE\x02"), p[4:]...),
		"v3 short":    append([]byte("ZRE\x03"), p[4:]...),
		"v1 with key": append([]byte("ZRE\x01"), p3[4:]...),
		"three bytes": []byte("ZRE"),
	} {
		if _, err := decodeBeacon(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestReadyRoundTrip(t *testing.T) {
	id := append([]byte{1}, make([]byte, 16)...)
	props, err := decodeReady(encodeReady(map[string][]byte{"Socket-Type": []byte("DEALER"), "Identity": id}))
	if err != nil {
		t.Fatal(err)
	}
	if string(props["Socket-Type"]) != "DEALER" || !bytes.Equal(props["Identity"], id) {
		t.Fatalf("props = %q", props)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	msg := [][]byte{[]byte("head"), bytes.Repeat([]byte("x"), 300), {}}
	if err := writeMessage(w, msg); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	got, err := readMessage(bufio.NewReader(bytes.NewReader(buf.Bytes())), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, msg) {
		t.Fatalf("frames = %q", got)
	}
	if _, err := readMessage(bufio.NewReader(bytes.NewReader(buf.Bytes())), 100); !errors.Is(err, errTooBig) {
		t.Fatalf("oversized message: err = %v, want errTooBig", err)
	}
}

func FuzzDecodeZRE(f *testing.F) {
	for _, m := range sampleMessages() {
		frames, _ := m.encode()
		f.Add(frames[0], bytes.Join(frames[1:], nil))
	}
	f.Add([]byte{0xAA, 0xA1, 1, 2, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF}, []byte(nil))
	f.Add([]byte{0xAA, 0xA1, 9, 2, 0, 1}, []byte("x"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, header, content []byte) {
		frames := [][]byte{header}
		if len(content) > 0 {
			frames = append(frames, content)
		}
		m, err := decodeZRE(frames)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if m.ID == msgElect || m.ID == msgLeader {
			return // decoded for their sequence only; we never send them
		}
		// What decodes must encode and decode again.
		again, err := m.encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := decodeZRE(again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func FuzzDecodeBeacon(f *testing.F) {
	f.Add(beacon{ID: uuid.New(), Port: 5670}.encode())
	f.Add(beacon{ID: uuid.New()}.encode())
	f.Add(beacon{ID: uuid.New(), Port: 1, HasKey: true, Key: [32]byte{7}}.encode())
	f.Add([]byte("ZRE\x03"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeBeacon(data)
		if err != nil {
			return
		}
		if !bytes.Equal(b.encode(), data) {
			t.Fatalf("beacon %x re-encodes differently", data)
		}
	})
}

func FuzzReadMessage(f *testing.F) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	writeMessage(w, [][]byte{[]byte("a"), bytes.Repeat([]byte("b"), 300)})
	writeFrame(w, encodeReady(map[string][]byte{"Socket-Type": []byte("ROUTER")}), flagCommand)
	w.Flush()
	f.Add(buf.Bytes())
	f.Add([]byte{0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0x01, 0x00, 0x01, 0x00, 0x00, 0x00})
	f.Add([]byte{0x80, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for range 16 {
			frames, err := readMessage(r, 4096)
			if err != nil {
				return
			}
			total := 0
			for _, fr := range frames {
				total += len(fr)
			}
			if total > 4096 {
				t.Fatalf("message of %d bytes passed a 4096 limit", total)
			}
		}
		_, _ = decodeReady(data)
	})
}
