package logpub

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

func FuzzReadFrame(f *testing.F) {
	f.Add(appendHello(nil, hello{Source: 1, Service: "api"}))
	f.Add(appendAck(nil, 5))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var buf []byte
		for {
			var err error
			_, _, buf, err = readFrame(r, buf)
			if err != nil {
				return
			}
		}
	})
}

func FuzzDecodeHello(f *testing.F) {
	f.Add(appendHello(nil, hello{Source: 1, Service: "api"})[5:])
	f.Add([]byte("LOGP\x01"))
	f.Add([]byte("LOGX\x01\x00\x00\x00\x00\x00\x00\x00\x01\x03api"))
	f.Fuzz(func(t *testing.T, body []byte) {
		h, err := decodeHello(body)
		if err != nil {
			return
		}
		again, err := decodeHello(appendHello(nil, h)[5:])
		if err != nil || again != h {
			t.Fatalf("re-encode: %+v %v", again, err)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch(1, `{"level":"info"}`+"\n", `{"a":1}`+"\n")[5:])
	f.Add(encodeBatch(1)[5:])
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, body []byte) {
		var n uint32
		first, count, err := decodeBatch(body, func(seq uint64, ev batchEvent) { n++ })
		if err != nil {
			if n != 0 {
				t.Fatalf("events delivered from a malformed batch")
			}
			return
		}
		if n != count {
			t.Fatalf("delivered %d of %d events (first %d)", n, count, first)
		}
	})
}

func FuzzDecodeSubscribe(f *testing.F) {
	f.Add(appendSubscribe(nil, subscribeReq{Follow: true, Since: 1, Filter: Filter{MinLevel: zerolog.WarnLevel, Services: []string{"api"}}})[5:])
	f.Add(appendSubscribe(nil, subscribeReq{})[5:])
	f.Add(appendSubscribe(nil, subscribeReq{Filter: Filter{}.AtLeast(zerolog.DebugLevel)})[5:])
	f.Add(appendSubscribe(nil, subscribeReq{Filter: Filter{}.AtLeast(zerolog.TraceLevel)})[5:])
	f.Add([]byte("LOGP\x01\x07"))
	f.Add([]byte("LOGP\x01\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")) // a level without the level flag
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeSubscribe(body)
		if err != nil {
			return
		}
		again, err := decodeSubscribe(appendSubscribe(nil, req)[5:])
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("re-encode: %+v, want %+v (%v)", again, req, err)
		}
	})
}

func FuzzDecodeEvents(f *testing.F) {
	ev := Event{Node: uuid.New(), Service: "api", Seq: 1, StreamSeq: 1, Received: time.Unix(1, 0), Line: []byte("{}\n")}
	b := appendU32(nil, 1)
	f.Add(appendEnvelope(b, &ev))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 5, 1})
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := decodeEvents(body, nil)
		if err != nil {
			return
		}
		b := appendU32(nil, uint32(len(evs)))
		for i := range evs {
			b = appendEnvelope(b, &evs[i])
		}
		again, err := decodeEvents(b, nil)
		if err != nil || len(again) != len(evs) {
			t.Fatalf("re-encode: %d %v", len(again), err)
		}
	})
}

func FuzzDecodeAckEnd(f *testing.F) {
	f.Add(appendAck(nil, 1)[5:])
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, body []byte) {
		a, errA := decodeAck(body)
		e, errE := decodeEnd(body)
		if (errA == nil) != (len(body) == 8) || (errE == nil) != (len(body) == 8) || a != e {
			t.Fatalf("ack/end disagree on %x", body)
		}
	})
}

// FuzzValidJSON checks the hub's one-pass event check against
// encoding/json, utf8.Valid and a newline search.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"level":"info","n":-1.5e+3,"a":[true,false,null,{}],"s":"\u00e9\n"}`, `{"a":}`, `{"a":01}`, `[1,]`, `"\x01"`, `{"a":"\q"}`, ` {} `, `-`, `1.`, `1e`,
		`{"a" 1}`, "{\"a\":\n1}", `{"a":"très long string, more than eight bytes: é 日本 \u00e9"}`, "{\"a\":\"\xed\xa0\x80 surrogate\"}", "{\"a\":\"xxxxxxx\xff\"}", "{\"a\":\"xxxxxxxxxxxxxxx\x1f\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := json.Valid(b) && utf8.Valid(b) && bytes.IndexByte(b, '\n') < 0
		if got := validEvent(b); got != want {
			t.Fatalf("validEvent(%q) = %v, want %v", b, got, want)
		}
	})
}

// FuzzCaptureIndex reads arbitrary bytes as a capture index beside lines
// looked up in file order: no panic, and every answer comes from a valid
// record that covers the line.
func FuzzCaptureIndex(f *testing.F) {
	good := []byte(idxMagic)
	good = appendIdxRecord(good, idxRecord{off: 0, n: 20, count: 2, recv: 1e18, service: "api"})
	good = appendIdxRecord(good, idxRecord{off: 40, n: 10, count: 1, recv: 2e18, service: "db"})
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte(idxMagic))
	f.Add([]byte("LPIX\x02"))
	f.Add(append([]byte(idxMagic), bytes.Repeat([]byte{0xff}, 40)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		ix := newIdxReader(bytes.NewReader(b))
		for off := int64(0); off < 200; off += 5 {
			svc, recv, ok := ix.lookup(off)
			if !ok {
				continue
			}
			if off < ix.cur.off || off >= ix.cur.off+ix.cur.n || svc != ix.cur.service || recv <= 0 || checkService(svc) != nil {
				t.Fatalf("line at %d: %q %d from record %+v", off, svc, recv, ix.cur)
			}
		}
		// A record that decodes encodes back to the same bytes.
		if len(b) > len(idxMagic) {
			r, n, err := decodeIdxRecord(b[len(idxMagic):], 0)
			if err == nil && !bytes.Equal(appendIdxRecord(nil, r), b[len(idxMagic):len(idxMagic)+n]) {
				t.Fatalf("record %+v does not re-encode to its bytes", r)
			}
		}
	})
}

// FuzzHubBatch feeds BATCH bodies to the hub's batch handling, which moves
// the accepted lines within the frame, and checks what it keeps against an
// independent decoding of a copy: exactly the events that pass the line
// check and are not duplicates, each line intact with one '\n'.
func FuzzHubBatch(f *testing.F) {
	f.Add(encodeBatch(1, `{"level":"info"}`+"\n", "not json\n", `{"a":1}`, "\n", `{"b":"\n"}`+"\n")[5:])
	f.Add(encodeBatch(0, `{}`, `{}`)[5:])
	f.Add(encodeBatch(1)[5:])
	f.Add(encodeBatch(1<<64-1, `{}`, `{}`)[5:])
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, body []byte) {
		cfg := DefaultHubConfig()
		cfg.WriterEndpoint, cfg.PubEndpoint = "", ""
		h, err := NewHub(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		var want []string
		var last uint64
		_, _, derr := decodeBatch(bytes.Clone(body), func(seq uint64, ev batchEvent) {
			l := ev.Line
			if n := len(l); n > 0 && l[n-1] == '\n' {
				l = l[:n-1]
			}
			if h.checkLine(l) == nil && seq > last {
				want = append(want, string(l)+"\n")
				last = seq
			}
		})
		_, kept, err := h.handleBatch(&source{id: 1, service: "api"}, body)
		if (err != nil) != (derr != nil) {
			t.Fatalf("handleBatch error %v, decodeBatch error %v", err, derr)
		}
		var got []string
		h.ring.each(func(e *Event) { got = append(got, string(e.Line)) })
		if len(got) != len(want) || kept != (len(want) > 0) {
			t.Fatalf("kept %v, ring %q, want %q", kept, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("event %d: %q, want %q", i, got[i], want[i])
			}
		}
	})
}
