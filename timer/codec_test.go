package timer

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCodecRoundTrip(t *testing.T) {
	msgs := []message{
		{Type: msgHeartbeat, Seq: 42},
		{Type: msgPong, Seq: 43},
		{Type: msgSub, Period: int64(10 * time.Millisecond)},
		{Type: msgTick, Seq: 1<<63 + 5, Period: int64(time.Second), N: 1764200000, At: 1764200000 * int64(time.Second)},
		{Type: msgFire, Seq: 9, Name: "backup.daily", At: -5, Flags: flagLate, Data: []byte(`{"name":"backup.daily"}`)},
		{Type: msgError, Req: 7, N: codeUnknownName, Data: []byte("timer: unknown schedule")},
		{Type: msgSchedule, Req: 1<<32 - 1, Name: strings.Repeat("n", MaxName), Data: bytes.Repeat([]byte{0}, 1000)},
	}
	for _, m := range msgs {
		b, err := m.encode()
		if err != nil {
			t.Fatalf("encode %v: %v", m.Type, err)
		}
		got, err := decodeMessage(b)
		if err != nil {
			t.Fatalf("decode %v: %v", m.Type, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip %v:\n got %+v\nwant %+v", m.Type, got, m)
		}
	}
	if _, err := (&message{Type: msgWatch, Name: strings.Repeat("x", MaxName+1)}).encode(); err == nil {
		t.Error("encode accepted a name that is too long")
	}
}

func validFrame(t testing.TB) []byte {
	b, err := (&message{Type: msgFire, Seq: 3, Name: "job", Data: []byte("{}")}).encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCodecRejects(t *testing.T) {
	good := validFrame(t)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string][]byte{
		"empty":         nil,
		"short":         good[:10],
		"version":       mut(func(b []byte) []byte { b[0] = 2; return b }),
		"type zero":     mut(func(b []byte) []byte { b[1] = 0; return b }),
		"type unknown":  mut(func(b []byte) []byte { b[1] = 200; return b }),
		"name too long": mut(func(b []byte) []byte { b[39] = MaxName + 1; return b }),
		"name past end": mut(func(b []byte) []byte { b[39] = 100; return b }),
		"data huge":     mut(func(b []byte) []byte { copy(b[43:], []byte{0xff, 0xff, 0xff, 0xff}); return b }),
		"data short":    good[:len(good)-1],
		"trailing":      append(append([]byte(nil), good...), 'x'),
	}
	for name, b := range cases {
		if _, err := decodeMessage(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(validFrame(f))
	for _, m := range []message{{Type: msgTick, Seq: 1, N: 2, At: 3, Period: 4}, {Type: msgList, Req: 1}, {Type: msgPong, Seq: 7}} {
		b, _ := m.encode()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 9, 0, 0})
	f.Add(bytes.Repeat([]byte{0xff}, 60))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		again, err := m.encode()
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b)
		}
	})
}

func FuzzDecodePeerMsg(f *testing.F) {
	for _, m := range []*peerMsg{
		{Type: "upsert", Records: []*record{{Spec: Spec{Name: "a", Every: Duration(time.Second)}, Version: 5, Origin: "x"}}},
		{Type: "sync", Records: []*record{{Spec: Spec{Name: "b"}, Deleted: true}}},
		{Type: "fired", Name: "a", At: time.Unix(100, 0)},
		{Type: "clock-rep", T1: 1, T2: 2},
	} {
		frames, err := encodePeerMsg(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frames[1])
	}
	f.Add([]byte(`{"v":1,"t":"upsert","recs":[null]}`))
	f.Add([]byte(`{"v":1,"t":"upsert","recs":[{"spec":{"name":"x","cron":"TZ="}}]}`))
	f.Add([]byte(`{"v":2,"t":"sync"}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodePeerMsg([][]byte{peerTag, b})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		for _, r := range m.Records {
			if !r.Deleted {
				if _, err := r.Spec.schedule(); err != nil {
					t.Fatalf("accepted an invalid spec: %v", err)
				}
			}
		}
	})
}

func TestDecodePeerMsgRejects(t *testing.T) {
	tagged := func(body string) [][]byte { return [][]byte{peerTag, []byte(body)} }
	cases := map[string][][]byte{
		"one frame":    {[]byte(`{"v":1,"t":"clock-req"}`)},
		"three frames": {peerTag, []byte("{}"), []byte("{}")},
		"wrong tag":    {[]byte("logmesh-filemq"), []byte(`{"v":1,"t":"clock-req"}`)},
		"not json":     tagged("nope"),
		"version":      tagged(`{"v":9,"t":"sync"}`),
		"type":         tagged(`{"v":1,"t":"reboot"}`),
		"null record":  tagged(`{"v":1,"t":"upsert","recs":[null]}`),
		"bad cron":     tagged(`{"v":1,"t":"upsert","recs":[{"spec":{"name":"x","cron":"61 * * * *"}}]}`),
		"fired noname": tagged(`{"v":1,"t":"fired","at":"2026-01-01T00:00:00Z"}`),
		"fired notime": tagged(`{"v":1,"t":"fired","name":"x"}`),
		"huge":         {peerTag, make([]byte, maxPeerMsg+1)},
	}
	for name, frames := range cases {
		if _, err := decodePeerMsg(frames); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}
