package harmony

import (
	"bytes"
	"context"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"go.uber.org/goleak"
)

// peerSocket is the test speaking the protocol itself, as a ventilator
// would, over a real DEALER.
type peerSocket struct {
	t    *testing.T
	sock zmq4.Socket
	in   chan *Message
}

func dialPeer(t *testing.T, ep string) *peerSocket {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &peerSocket{t: t, sock: zmq4.NewDealer(ctx, zmq4.WithID(zmq4.SocketIdentity("test-peer"))), in: make(chan *Message, 64)}
	if err := p.sock.Dial(ep); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := p.sock.Recv()
			if ctx.Err() != nil {
				return
			}
			if err != nil || len(m.Frames) != 1 {
				continue
			}
			if dm, err := Decode(m.Frames[0]); err == nil {
				select {
				case p.in <- dm:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		p.sock.Close()
		<-done
	})
	return p
}

func (p *peerSocket) send(m *Message) {
	p.t.Helper()
	frame, err := Encode(nil, m)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.sock.Send(zmq4.NewMsg(frame)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *peerSocket) sendRaw(frame []byte) {
	p.t.Helper()
	if err := p.sock.Send(zmq4.NewMsg(frame)); err != nil {
		p.t.Fatal(err)
	}
}

// expect returns the next message of type typ, skipping others.
func (p *peerSocket) expect(typ MsgType, within time.Duration) *Message {
	p.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-p.in:
			if m.Type == typ {
				return m
			}
		case <-deadline:
			p.t.Fatalf("no %v within %v", typ, within)
			return nil
		}
	}
}

// TestCollectorAsksFromLastResponse: the ventilator side sends START and
// some results but never END; the collector asks for the holes and for
// everything after the last response, then completes once they come.
func TestCollectorAsksFromLastResponse(t *testing.T) {
	tasks := cut(genLines(3000, 51), "p.log", 100) // 30 tasks
	job := mustJob(t, "filter level=warn")
	want, _ := localRun(t, job, tasks)
	id := newBatchID()
	out := newSyncBuffer()
	c, err := NewCollector(CollectorConfig{Batch: id, Job: job, Out: out, ResendTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	vent := dialPeer(t, c.Endpoint())
	w := startWorkers(t, 1)[0]
	toWorker := dialPeer(t, w.Endpoint())
	sendTask := func(i int) {
		tk := tasks[i]
		toWorker.send(&Message{Type: MsgTask, Batch: id, Index: uint32(i), Collector: c.Endpoint(),
			Spec: job.Spec(), Source: tk.Source, FirstLine: tk.FirstLine, Data: tk.Data})
		toWorker.expect(MsgDone, 10*time.Second)
	}
	vent.send(&Message{Type: MsgStart, Batch: id, N: uint32(len(tasks)), Spec: job.Spec()})
	if ack := vent.expect(MsgAck, 5*time.Second); ack.Committed != 0 {
		t.Fatalf("ACK %+v", ack)
	}
	for i := range 20 {
		if i != 5 {
			sendTask(i)
		}
	}
	sendTask(7) // a duplicate, dropped by task number
	// A RESEND may come while the results above are still arriving; the
	// collector repeats it every ResendTimeout, so wait for the full one.
	var rs *Message
	for rs == nil || rs.From != 20 {
		rs = vent.expect(MsgResend, 10*time.Second)
	}
	if !reflect.DeepEqual(rs.Missing, []uint32{5}) {
		t.Fatalf("RESEND %+v, want missing [5] from 20", rs)
	}
	sendTask(5)
	for i := 20; i < len(tasks); i++ {
		sendTask(i)
	}
	vent.expect(MsgFinished, 10*time.Second)
	if _, err := c.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := out.Bytes(); !bytes.Equal(got, want) {
		t.Fatal("output differs")
	}
	if st := c.Stats(); st.Duplicates != 1 || st.Resends == 0 {
		t.Fatalf("stats %+v: want 1 duplicate and a resend", st)
	}
}

// TestGarbageIsCountedAndIgnored sends malformed frames, wrong message
// types, a foreign batch and results beyond N to a worker and a collector;
// each is counted and a batch still runs right afterwards.
func TestGarbageIsCountedAndIgnored(t *testing.T) {
	ws := startWorkers(t, 1)
	tasks := cut(genLines(5000, 61), "g.log", 500)
	job := mustJob(t, "filter service=web")
	want, _ := localRun(t, job, tasks)
	id := newBatchID()
	out := newSyncBuffer()
	c, err := NewCollector(CollectorConfig{Batch: id, Job: job, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	garbage := [][]byte{nil, []byte("hello"), {signature, 9, 1}, bytes.Repeat([]byte{0xA5}, 100)}
	done, _ := Encode(nil, &Message{Type: MsgDone, Batch: id})
	foreign, _ := Encode(nil, &Message{Type: MsgResult, Batch: newBatchID(), Index: 1})
	tooFar, _ := Encode(nil, &Message{Type: MsgStart, Batch: id, N: uint32(len(tasks))})
	beyond, _ := Encode(nil, &Message{Type: MsgResult, Batch: id, Index: uint32(len(tasks) + 5)})
	pw, pc := dialPeer(t, ws[0].Endpoint()), dialPeer(t, c.Endpoint())
	for _, g := range append(garbage, done) {
		pw.sendRaw(g)
	}
	for _, g := range append(garbage, foreign) {
		pc.sendRaw(g)
	}
	pc.sendRaw(tooFar)
	pc.expect(MsgAck, 5*time.Second)
	pc.sendRaw(beyond)
	waitFor(t, "garbage counted", 10*time.Second, func() bool {
		return ws[0].Stats().Malformed == int64(len(garbage)+1) && c.Stats().Malformed == int64(len(garbage)+2)
	})
	v, err := NewVentilator(VentilatorConfig{Batch: id, Job: job, Tasks: tasks, Collector: c.Endpoint(), Workers: endpoints(ws)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatal("output differs after garbage")
	}
}

// TestCloseMidBatchLeavesNoGoroutine closes every part while tasks are in
// flight.
func TestCloseMidBatchLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t)
	ws := make([]*Worker, 2)
	for i := range ws {
		w, err := NewWorker(WorkerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
	}
	tasks := cut(genLines(50_000, 71), "c.log", 200)
	job := mustJob(t, "filter level>=warn")
	id := newBatchID()
	c, err := NewCollector(CollectorConfig{Batch: id, Job: job, Out: newSyncBuffer()})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVentilator(VentilatorConfig{Batch: id, Job: job, Tasks: tasks, Collector: c.Endpoint(), Workers: endpoints(ws)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "some progress", 20*time.Second, func() bool { return c.Committed() > 5 })
	v.Close()
	c.Close()
	for _, w := range ws {
		w.Close()
	}
}

// TestLinkCloseDuringSilentHandshake: a peer that accepts TCP and never
// speaks ZMTP (a stopped process) must not hold a link's Close.
func TestLinkCloseDuringSilentHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	var wg sync.WaitGroup
	l := dialLink(context.Background(), &wg, "tcp://"+ln.Addr().String(), "silent", linkSecurity{}, func([][]byte) {}, nil, nil)
	c := <-accepted
	defer c.Close()
	if err := l.send([]byte("x"), 100*time.Millisecond); err == nil {
		t.Fatal("send succeeded without a handshake")
	}
	l.close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("link goroutine still stuck in the handshake after close")
	}
}
