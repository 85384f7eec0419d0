package mesh

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/uuid"
)

func sampleGossip() []*gossipMsg {
	return []*gossipMsg{
		{ID: gossipHello},
		{ID: gossipPublish, Key: gossipKey(uuid.New()), Value: "tcp://10.1.2.3:49152", TTL: 30000},
		{ID: gossipPublish, Key: "k", Value: "tcp://h:1|Z85PUBKEY", TTL: 0},
		{ID: gossipPing},
		{ID: gossipPong},
		{ID: gossipInvalid},
	}
}

func TestGossipCodecRoundTrip(t *testing.T) {
	for _, m := range sampleGossip() {
		b, err := m.encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeGossip(b)
		if err != nil {
			t.Fatal(err)
		}
		if *got != *m {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
	}
	b, _ := (&gossipMsg{ID: gossipPublish, Key: "ab", Value: "c", TTL: 258}).encode()
	want := []byte{0xAA, 0xA0, 2, 1, 2, 'a', 'b', 0, 0, 0, 1, 'c', 0, 0, 1, 2}
	if !bytes.Equal(b, want) {
		t.Fatalf("PUBLISH wire = % x, want % x", b, want)
	}
	for name, bad := range map[string][]byte{
		"empty":     {},
		"signature": {0xAA, 0xA1, 1, 1},
		"version":   {0xAA, 0xA0, 1, 2},
		"id":        {0xAA, 0xA0, 9, 1},
		"truncated": want[:len(want)-2],
		"huge str":  {0xAA, 0xA0, 2, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF},
	} {
		if _, err := decodeGossip(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecodeGossip(f *testing.F) {
	for _, m := range sampleGossip() {
		b, _ := m.encode()
		f.Add(b)
	}
	f.Add([]byte{0xAA, 0xA0, 2, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0xAA})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeGossip(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		b, err := m.encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.HasPrefix(data, b) { // trailing bytes are ignored, as zproto does
			t.Fatalf("re-encode of % x gives % x", data, b)
		}
	})
}
