package logpub

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

func frameBody(t testing.TB, frame []byte, want byte) []byte {
	t.Helper()
	typ, body, _, err := readFrame(bytes.NewReader(frame), nil)
	if err != nil {
		t.Fatalf("readFrame: %v", err)
	}
	if typ != want {
		t.Fatalf("frame type %d, want %d", typ, want)
	}
	return body
}

func encodeBatch(first uint64, lines ...string) []byte {
	b := &wbatch{buf: make([]byte, batchHeader), first: first}
	for _, l := range lines {
		b.buf = appendBatchEvent(b.buf, int8(levelOf([]byte(l))), []byte(l))
		b.count++
	}
	b.seal()
	return b.buf
}

func TestCodecRoundTrip(t *testing.T) {
	h := hello{Source: 42, Service: "api"}
	got, err := decodeHello(frameBody(t, appendHello(nil, h), frameHello))
	if err != nil || got != h {
		t.Fatalf("hello: got %+v, %v", got, err)
	}

	lines := []string{`{"level":"info","message":"a"}` + "\n", `{"level":"warn","message":"b"}` + "\n"}
	var seqs []uint64
	var out []string
	first, n, err := decodeBatch(frameBody(t, encodeBatch(7, lines...), frameBatch), func(seq uint64, ev batchEvent) {
		seqs = append(seqs, seq)
		out = append(out, string(ev.Line))
	})
	if err != nil || first != 7 || n != 2 || seqs[1] != 8 || out[0] != lines[0] || out[1] != lines[1] {
		t.Fatalf("batch: first %d n %d seqs %v out %q err %v", first, n, seqs, out, err)
	}

	ack, err := decodeAck(frameBody(t, appendAck(nil, 99), frameAck))
	if err != nil || ack != 99 {
		t.Fatalf("ack: %d %v", ack, err)
	}

	for _, f := range []Filter{{}, Filter{}.AtLeast(zerolog.DebugLevel), Filter{}.AtLeast(zerolog.TraceLevel), {MinLevel: zerolog.InfoLevel}} {
		gr, err := decodeSubscribe(frameBody(t, appendSubscribe(nil, subscribeReq{Filter: f}), frameSubscribe))
		if err != nil || gr.Filter.levelOn() != f.levelOn() || (f.levelOn() && gr.Filter.MinLevel != f.MinLevel) {
			t.Fatalf("subscribe level %+v: %+v %v", f, gr.Filter, err)
		}
	}
	req := subscribeReq{Follow: true, Since: 12345, Filter: Filter{MinLevel: zerolog.WarnLevel, Services: []string{"api", "db"}, Nodes: []string{"n1"}}}
	gr, err := decodeSubscribe(frameBody(t, appendSubscribe(nil, req), frameSubscribe))
	if err != nil || !gr.Follow || gr.Since != 12345 || gr.Filter.MinLevel != zerolog.WarnLevel ||
		len(gr.Filter.Services) != 2 || gr.Filter.Services[1] != "db" || gr.Filter.Nodes[0] != "n1" {
		t.Fatalf("subscribe: %+v %v", gr, err)
	}

	ev := Event{Node: uuid.New(), Service: "api", Source: 3, Seq: 4, StreamSeq: 5, Received: time.Unix(0, 1700000000123456789),
		Level: zerolog.ErrorLevel, History: true, Line: []byte(lines[1])}
	b, st := beginFrame(nil, frameEvents)
	b = appendU32(b, 2)
	b = appendEnvelope(b, &ev)
	b = appendEnvelope(b, &ev)
	b = finishFrame(b, st)
	evs, err := decodeEvents(frameBody(t, b, frameEvents), nil)
	if err != nil || len(evs) != 2 {
		t.Fatalf("events: %d %v", len(evs), err)
	}
	g := evs[1]
	if g.Node != ev.Node || g.Service != "api" || g.Source != 3 || g.Seq != 4 || g.StreamSeq != 5 ||
		!g.Received.Equal(ev.Received) || g.Level != zerolog.ErrorLevel || !g.History || string(g.Line) != lines[1] {
		t.Fatalf("events: got %+v", g)
	}
	// A history line with no receive time (unindexed, no time field) stays
	// without one, so that logtail keeps it after the line before it.
	untimed := ev
	untimed.Received = time.Time{}
	b, st = beginFrame(nil, frameEvents)
	b = appendU32(b, 1)
	b = appendEnvelope(b, &untimed)
	b = finishFrame(b, st)
	if evs, err := decodeEvents(frameBody(t, b, frameEvents), nil); err != nil || len(evs) != 1 || !evs[0].Received.IsZero() {
		t.Fatalf("event without a receive time: %+v %v", evs, err)
	}

	d, err := decodeEnd(frameBody(t, appendEnd(nil, 17), frameEnd))
	if err != nil || d != 17 {
		t.Fatalf("end: %d %v", d, err)
	}
}

func TestCodecRejects(t *testing.T) {
	good := frameBody(t, appendHello(nil, hello{Source: 1, Service: "api"}), frameHello)
	cases := map[string]func() error{
		"hello bad magic":   func() error { b := bytes.Clone(good); b[0] = 'X'; _, err := decodeHello(b); return err },
		"hello bad version": func() error { b := bytes.Clone(good); b[4] = 9; _, err := decodeHello(b); return err },
		"hello truncated":   func() error { _, err := decodeHello(good[:len(good)-1]); return err },
		"hello trailing":    func() error { _, err := decodeHello(append(bytes.Clone(good), 0)); return err },
		"hello bad service": func() error {
			_, err := decodeHello(frameBody(t, appendHello(nil, hello{Service: "../etc"}), frameHello))
			return err
		},
		"batch huge count": func() error {
			_, _, err := decodeBatch([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, nil)
			return err
		},
		"batch huge line": func() error {
			b := appendU32(appendU64(nil, 1), 1)
			b = append(b, 1)
			b = appendU32(b, MaxLine+1)
			_, _, err := decodeBatch(b, nil)
			return err
		},
		"subscribe many services": func() error {
			b := []byte("LOGP\x01\x00\x00")
			b = appendU64(b, 0)
			b = appendU16(b, 60000)
			_, err := decodeSubscribe(b)
			return err
		},
		"subscribe level without its flag": func() error {
			b := []byte("LOGP\x01\x00\x02")
			b = appendU64(b, 0)
			b = appendU16(appendU16(b, 0), 0)
			_, err := decodeSubscribe(b)
			return err
		},
		"events huge count": func() error { _, err := decodeEvents([]byte{0xff, 0xff, 0xff, 0xff}, nil); return err },
		"frame too large": func() error {
			_, _, _, err := readFrame(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 1}), nil)
			return err
		},
		"frame empty": func() error {
			_, _, _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 0}), nil)
			return err
		},
	}
	for name, fn := range cases {
		if err := fn(); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: got %v, want ErrFrame", name, err)
		}
	}
}

func TestLevelAndTimeOf(t *testing.T) {
	if l := levelOf([]byte(`{"level":"warn","time":"2026-11-27T04:00:00Z"}`)); l != zerolog.WarnLevel {
		t.Errorf("levelOf: %v", l)
	}
	if l := levelOf([]byte(`{"message":"x"}`)); l != zerolog.NoLevel {
		t.Errorf("levelOf no level: %v", l)
	}
	tm, ok := timeOf([]byte(`{"level":"warn","time":"2026-11-27T04:00:00Z"}`))
	if !ok || !tm.Equal(time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)) {
		t.Errorf("timeOf: %v %v", tm, ok)
	}
	tm, ok = timeOf([]byte(`{"time":1700000000123}`))
	if !ok || tm.UnixMilli() != 1700000000123 {
		t.Errorf("timeOf ms: %v %v", tm, ok)
	}
}
