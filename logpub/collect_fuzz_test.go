package logpub

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"
)

func FuzzDecodeResumeSubscribe(f *testing.F) {
	f.Add(appendSubscribe(nil, subscribeReq{Follow: true, Resume: true, After: []SourceSeq{{Source: 3, Seq: 9}}})[5:])
	f.Add(appendSubscribe(nil, subscribeReq{Resume: true})[5:])
	f.Add([]byte("LOGP\x01\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeSubscribe(body)
		if err != nil {
			return
		}
		again, err := decodeSubscribe(appendSubscribe(nil, req)[5:])
		if err != nil || again.Resume != req.Resume || len(again.After) != len(req.After) {
			t.Fatalf("re-encode: %+v %v", again, err)
		}
	})
}

func FuzzDecodeSources(f *testing.F) {
	f.Add(appendSources(nil, []SourceSeq{{Source: 1, Service: "api", Seq: 7}})[5:])
	f.Add(appendSources(nil, nil)[5:])
	f.Add([]byte{0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		l, err := decodeSources(body, nil)
		if err != nil {
			return
		}
		again, err := decodeSources(appendSources(nil, l)[5:], nil)
		if err != nil || len(again) != len(l) {
			t.Fatalf("re-encode: %d %v", len(again), err)
		}
		for i := range l {
			if again[i] != l[i] {
				t.Fatalf("source %d: %+v != %+v", i, again[i], l[i])
			}
		}
	})
}

func FuzzDecodeEnvelopes(f *testing.F) {
	e := Event{Node: uuid.New(), Source: 5, Seq: 2, Received: time.Unix(0, 42), Line: []byte("{}\n")}
	f.Add(appendEnvRecord(nil, &e))
	f.Add(appendEnvRecord(nil, &e)[:47])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		envs, partial := DecodeEnvelopes(data)
		if len(envs) != len(data)/envRecordSize || partial != (len(data)%envRecordSize != 0) {
			t.Fatalf("%d records, partial %v, of %d bytes", len(envs), partial, len(data))
		}
	})
}

func TestSourcesFrameSplits(t *testing.T) {
	l := make([]SourceSeq, 20000)
	for i := range l {
		l[i] = SourceSeq{Source: uint64(i), Service: "service-with-a-long-name", Seq: uint64(i) * 3}
	}
	b := appendSources(nil, l)
	var got []SourceSeq
	frames := 0
	for len(b) > 0 {
		typ, body, _, err := readFrame(bytes.NewReader(b), nil)
		if err != nil || typ != frameSources {
			t.Fatalf("frame %d: type %d, %v", frames, typ, err)
		}
		if len(body)+1 > sourcesFrameBytes+64 {
			t.Fatalf("frame of %d bytes", len(body)+1)
		}
		if got, err = decodeSources(body, got); err != nil {
			t.Fatal(err)
		}
		b = b[4+1+len(body):]
		frames++
	}
	if frames < 2 || len(got) != len(l) || got[19999] != l[19999] {
		t.Fatalf("%d frames, %d sources", frames, len(got))
	}
}
