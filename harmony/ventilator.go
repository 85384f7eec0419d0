package harmony

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
)

// WorkerSource yields the task endpoints of the workers available now. The
// ventilator asks it again on every heartbeat, so workers may come and go.
type WorkerSource interface {
	WorkerEndpoints() []string
}

// StaticWorkers is a fixed list of worker endpoints.
type StaticWorkers []string

// WorkerEndpoints returns the list.
func (s StaticWorkers) WorkerEndpoints() []string { return s }

// WorkerFunc adapts a function to WorkerSource.
type WorkerFunc func() []string

// WorkerEndpoints calls f.
func (f WorkerFunc) WorkerEndpoints() []string { return f() }

// VentilatorConfig configures a Ventilator.
type VentilatorConfig struct {
	// Batch names the batch; the collector must use the same id.
	Batch BatchID
	// Job is the processor; its spec travels with every task.
	Job Job
	// Tasks are the batch's tasks, numbered by their index.
	Tasks []Task
	// Collector is the collector's endpoint.
	Collector string
	// Workers yields the worker endpoints.
	Workers WorkerSource
	// InFlight bounds the tasks sent to one worker and not yet done
	// (default 4).
	InFlight int
	// TaskTimeout is how long a worker may hold a task before it is sent
	// elsewhere; the worker then gets one task at a time until it answers
	// again (default 10 s).
	TaskTimeout time.Duration
	// Heartbeat is how often the ventilator repeats START to the collector,
	// looks for new workers and checks timeouts (default 500 ms).
	Heartbeat time.Duration
	// Keys, when set, makes the ventilator speak CURVE to the collector
	// and the workers, whose endpoints must then carry their public keys
	// ("ep|key", see KeyedEndpoint); an endpoint without one is refused.
	// Nil: NULL connections.
	Keys *curve.KeyPair
	// Log receives diagnostics (default: none).
	Log zerolog.Logger
}

// VentilatorStats is a snapshot of a ventilator's progress.
type VentilatorStats struct {
	Batch      string         `json:"batch"`
	N          int            `json:"n"`
	Dispatched int            `json:"dispatched"` // tasks sent at least once
	Sent       int64          `json:"sent"`       // task sends, resends included
	Done       int            `json:"done"`       // tasks a worker reported done
	Committed  int            `json:"committed"`  // tasks the collector has written
	Timeouts   int64          `json:"timeouts"`
	Lost       int64          `json:"lost"`    // tasks sent again because their worker's connection dropped
	Resends    int64          `json:"resends"` // tasks resent at the collector's request
	EndSent    bool           `json:"end_sent"`
	InFlight   map[string]int `json:"in_flight"` // per worker endpoint
	Started    time.Time      `json:"started"`
	Finished   bool           `json:"finished"`
	// Refused counts connections to workers or the collector refused for
	// their security (keys or mechanisms that do not match).
	Refused int64 `json:"refused"`
}

type taskStatus uint8

const (
	statusQueued taskStatus = iota
	statusInFlight
	statusDone
)

type taskState struct {
	status taskStatus
	worker *workerConn // in flight: who has it
	sentAt time.Time
	avoid  *workerConn // queued again: who failed it last
}

// workerConn is the ventilator's connection to one worker.
type workerConn struct {
	ep       string
	link     *link
	out      chan *Message // tasks for the sender goroutine
	inflight map[uint32]struct{}
	suspect  bool
}

type ventEvent struct {
	from   *workerConn // nil: from the collector
	frames [][]byte    // nil: the link came up, or went down
	down   bool
}

// Ventilator sends a batch's tasks to the workers, at most InFlight at a
// time per worker, resends what times out or what the collector asks for,
// and finishes when the collector says the batch is complete.
type Ventilator struct {
	cfg    VentilatorConfig
	id     string
	spec   string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events chan ventEvent
	coll   *link
	done   chan struct{}

	mu      sync.Mutex
	tasks   []Task
	state   []taskState
	next    uint32   // first task never sent
	retry   taskHeap // tasks to send again, lowest first
	acked   uint32   // the collector has written tasks below this
	workers map[string]*workerConn
	order   []*workerConn // workers sorted by endpoint
	stats   VentilatorStats
	refused atomic.Int64

	closeOnce sync.Once
}

// NewVentilator starts sending the batch.
func NewVentilator(cfg VentilatorConfig) (*Ventilator, error) {
	if cfg.Job == nil || cfg.Workers == nil || cfg.Collector == "" {
		return nil, errors.New("harmony: ventilator needs a Job, Workers and a Collector")
	}
	if len(cfg.Tasks) == 0 || len(cfg.Tasks) > MaxTasks {
		return nil, fmt.Errorf("harmony: ventilator: %d tasks (want 1 to %d)", len(cfg.Tasks), MaxTasks)
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 4
	}
	if cfg.TaskTimeout <= 0 {
		cfg.TaskTimeout = 10 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 500 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	v := &Ventilator{
		cfg: cfg, id: "v-" + uuid.NewString(), spec: cfg.Job.Spec(),
		ctx: ctx, cancel: cancel,
		events:  make(chan ventEvent, 256),
		done:    make(chan struct{}),
		tasks:   append([]Task(nil), cfg.Tasks...),
		state:   make([]taskState, len(cfg.Tasks)),
		workers: map[string]*workerConn{},
	}
	v.stats = VentilatorStats{Batch: cfg.Batch.String(), N: len(cfg.Tasks), Started: time.Now()}
	v.coll = dialLink(ctx, &v.wg, cfg.Collector, v.id, v.linkSec(), v.onRecv(nil), v.onLink(nil, false), nil)
	v.wg.Add(1)
	go v.loop()
	return v, nil
}

func (v *Ventilator) linkSec() linkSecurity {
	return linkSecurity{keys: v.cfg.Keys, refused: &v.refused, log: v.cfg.Log}
}

// Wait blocks until the collector reports the batch complete, or ctx ends.
func (v *Ventilator) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-v.done:
		return nil
	}
}

// Stats returns a snapshot of the ventilator's progress.
func (v *Ventilator) Stats() VentilatorStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.stats
	s.Refused = v.refused.Load()
	s.Committed = int(v.acked)
	s.InFlight = make(map[string]int, len(v.order))
	for _, w := range v.order {
		s.InFlight[w.ep] = len(w.inflight)
	}
	return s
}

// Close stops the ventilator and closes its connections.
func (v *Ventilator) Close() error {
	v.closeOnce.Do(func() {
		v.cancel()
		v.mu.Lock()
		for _, w := range v.workers {
			w.link.close()
		}
		v.mu.Unlock()
		v.coll.close()
		v.wg.Wait()
	})
	return nil
}

func (v *Ventilator) onRecv(from *workerConn) func([][]byte) {
	return func(frames [][]byte) {
		select {
		case v.events <- ventEvent{from: from, frames: frames}:
		case <-v.ctx.Done():
		}
	}
}

func (v *Ventilator) onLink(from *workerConn, down bool) func() {
	return func() {
		select {
		case v.events <- ventEvent{from: from, down: down}:
		case <-v.ctx.Done():
		}
	}
}

func (v *Ventilator) loop() {
	defer v.wg.Done()
	tick := time.NewTicker(v.cfg.Heartbeat)
	defer tick.Stop()
	v.heartbeat()
	for {
		select {
		case <-v.ctx.Done():
			return
		case ev := <-v.events:
			v.handle(ev)
		case <-tick.C:
			v.heartbeat()
		}
	}
}

func (v *Ventilator) heartbeat() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.refreshWorkers()
	v.checkTimeouts()
	v.toCollector(&Message{Type: MsgStart, N: uint32(len(v.tasks)), Spec: v.spec})
	v.dispatch()
}

func (v *Ventilator) toCollector(m *Message) {
	if !v.coll.isReady() {
		return // not connected yet: the next heartbeat tries again
	}
	m.Batch = v.cfg.Batch
	frame, err := Encode(nil, m)
	if err == nil {
		err = v.coll.send(frame, 0)
	}
	if err != nil && v.ctx.Err() == nil {
		v.cfg.Log.Debug().Err(err).Stringer("type", m.Type).Msg("harmony ventilator: to collector")
	}
}

func (v *Ventilator) handle(ev ventEvent) {
	if ev.frames == nil { // a link is up: greet the collector, or use the worker
		v.mu.Lock()
		defer v.mu.Unlock()
		if ev.down {
			// The worker's connection dropped: what it holds is lost, or
			// comes back twice, which the collector drops.
			for i := range ev.from.inflight {
				v.requeue(i, true)
				v.stats.Lost++
			}
			ev.from.suspect = true
		} else if ev.from == nil {
			v.toCollector(&Message{Type: MsgStart, N: uint32(len(v.tasks)), Spec: v.spec})
			if v.stats.EndSent {
				v.toCollector(&Message{Type: MsgEnd})
			}
		}
		v.dispatch()
		return
	}
	if len(ev.frames) != 1 {
		return
	}
	m, err := Decode(ev.frames[0])
	if err != nil || m.Batch != v.cfg.Batch {
		v.cfg.Log.Warn().Err(err).Msg("harmony ventilator: bad frame")
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case ev.from != nil && m.Type == MsgDone:
		v.taskDone(ev.from, m.Index)
	case ev.from == nil && m.Type == MsgAck:
		v.ack(m.Committed)
	case ev.from == nil && m.Type == MsgResend:
		v.resend(m)
	case ev.from == nil && m.Type == MsgFinished:
		if !v.stats.Finished {
			v.stats.Finished = true
			v.ack(uint32(len(v.tasks)))
			close(v.done)
		}
		return
	}
	v.dispatch()
}

func (v *Ventilator) taskDone(w *workerConn, i uint32) {
	w.suspect = false
	if int(i) >= len(v.state) {
		return
	}
	if _, ok := w.inflight[i]; !ok {
		return // late answer for a task given to someone else since
	}
	delete(w.inflight, i)
	v.state[i] = taskState{status: statusDone}
	v.stats.Done++
}

// ack frees the data of the tasks the collector has written.
func (v *Ventilator) ack(committed uint32) {
	committed = min(committed, uint32(len(v.tasks)))
	for i := v.acked; i < committed; i++ {
		v.tasks[i].Data = nil
	}
	v.acked = max(v.acked, committed)
}

func (v *Ventilator) resend(m *Message) {
	for _, i := range m.Missing {
		if v.requeue(i, false) {
			v.stats.Resends++
		}
	}
	for i := m.From; i < v.next; i++ {
		if v.requeue(i, false) {
			v.stats.Resends++
		}
	}
}

// requeue puts task i back in line, unless it is written, queued, or (when
// force is false) in flight and not yet timed out.
func (v *Ventilator) requeue(i uint32, force bool) bool {
	if int(i) >= len(v.state) || i < v.acked || i >= v.next {
		return false
	}
	st := &v.state[i]
	switch st.status {
	case statusQueued:
		return false
	case statusInFlight:
		if !force && time.Since(st.sentAt) < v.cfg.TaskTimeout {
			return false
		}
		delete(st.worker.inflight, i)
	}
	*st = taskState{status: statusQueued, avoid: st.worker}
	heap.Push(&v.retry, i)
	return true
}

func (v *Ventilator) checkTimeouts() {
	for _, w := range v.order {
		for i := range w.inflight {
			if time.Since(v.state[i].sentAt) >= v.cfg.TaskTimeout {
				v.requeue(i, true)
				v.stats.Timeouts++
				w.suspect = true
				v.cfg.Log.Debug().Str("worker", w.ep).Uint32("task", i).Msg("harmony ventilator: task timed out")
			}
		}
	}
}

// refreshWorkers connects to new workers and drops vanished ones, whose
// tasks go back in line.
func (v *Ventilator) refreshWorkers() {
	want := map[string]bool{}
	for _, ep := range v.cfg.Workers.WorkerEndpoints() {
		want[ep] = true
		if v.workers[ep] == nil && v.ctx.Err() == nil {
			w := &workerConn{ep: ep, inflight: map[uint32]struct{}{}, out: make(chan *Message, v.cfg.InFlight)}
			w.link = dialLink(v.ctx, &v.wg, ep, v.id, v.linkSec(), v.onRecv(w), v.onLink(w, false), v.onLink(w, true))
			v.workers[ep] = w
			v.wg.Add(1)
			go v.sender(w)
		}
	}
	for ep, w := range v.workers {
		if !want[ep] {
			for i := range w.inflight {
				v.requeue(i, true)
			}
			w.link.close()
			delete(v.workers, ep)
		}
	}
	v.order = v.order[:0]
	for _, w := range v.workers {
		v.order = append(v.order, w)
	}
	sort.Slice(v.order, func(a, b int) bool { return v.order[a].ep < v.order[b].ep })
}

// sender encodes and writes a worker's tasks, so that a slow connection
// never blocks the ventilator's loop. It encodes every task into the same
// buffer: a successful zmq4 Send returns once the frame is written to the
// connection, so the buffer is free again, and a batch's data is copied
// once, not allocated and cleared again for each task. A failed Send may
// leave its write running (zmq4's DEALER stops waiting for it when the
// send deadline or the socket's context ends), so that buffer is dropped.
func (v *Ventilator) sender(w *workerConn) {
	defer v.wg.Done()
	var buf []byte
	for {
		select {
		case <-w.link.ctx.Done():
			return
		case m := <-w.out:
			frame, err := Encode(buf[:0], m)
			if err != nil { // checkTask let it through: cannot happen
				v.cfg.Log.Error().Err(err).Uint32("task", m.Index).Msg("harmony ventilator: encode task")
				continue
			}
			if err := w.link.send(frame, time.Second); err != nil {
				// zmq4's Send may return while its write goes on (its
				// deadline, or the link closing): that frame is not ours
				// to overwrite.
				buf = nil
				if w.link.ctx.Err() == nil {
					v.cfg.Log.Debug().Err(err).Str("worker", w.ep).Msg("harmony ventilator: send task")
				}
				continue
			}
			buf = reusable(frame)
		}
	}
}

// dispatch sends queued tasks to the least loaded workers with room.
func (v *Ventilator) dispatch() {
	for {
		i, ok := v.peek()
		if !ok {
			break
		}
		w := v.pickWorker(v.state[i].avoid)
		if w == nil {
			break
		}
		t := &v.tasks[i]
		m := &Message{Type: MsgTask, Batch: v.cfg.Batch, Index: i,
			Collector: v.cfg.Collector, Spec: v.spec, Source: t.Source, FirstLine: t.FirstLine, Data: t.Data}
		if err := checkTask(m); err != nil {
			v.cfg.Log.Error().Err(err).Uint32("task", i).Msg("harmony ventilator: encode task")
			v.pop()
			continue
		}
		select {
		case w.out <- m:
		default:
			w.suspect = true // its sender is stuck: give it less
			return
		}
		v.pop()
		if i >= v.next {
			v.next = i + 1
			v.stats.Dispatched++
		}
		v.state[i] = taskState{status: statusInFlight, worker: w, sentAt: time.Now()}
		w.inflight[i] = struct{}{}
		v.stats.Sent++
	}
	if !v.stats.EndSent && int(v.next) == len(v.tasks) {
		v.stats.EndSent = true
		v.toCollector(&Message{Type: MsgEnd})
	}
}

// peek returns the next task to send: retries first, lowest number first.
func (v *Ventilator) peek() (uint32, bool) {
	for v.retry.Len() > 0 {
		i := v.retry[0]
		if i >= v.acked && v.state[i].status == statusQueued {
			return i, true
		}
		heap.Pop(&v.retry) // written meanwhile
	}
	if int(v.next) < len(v.tasks) {
		return v.next, true
	}
	return 0, false
}

func (v *Ventilator) pop() {
	if v.retry.Len() > 0 {
		heap.Pop(&v.retry)
	}
}

// pickWorker returns the worker with room that should get the next task:
// not the one that failed it last (unless no other has room), healthy
// before suspect, then the least loaded.
func (v *Ventilator) pickWorker(avoid *workerConn) *workerConn {
	var best *workerConn
	rank := func(w *workerConn) [3]int {
		return [3]int{b2i(w == avoid), b2i(w.suspect), len(w.inflight)}
	}
	for _, w := range v.order {
		limit := v.cfg.InFlight
		if w.suspect {
			limit = 1
		}
		if !w.link.isReady() || len(w.inflight) >= limit {
			continue
		}
		if best == nil || lessRank(rank(w), rank(best)) {
			best = w
		}
	}
	return best
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func lessRank(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// taskHeap is a min-heap of task numbers.
type taskHeap []uint32

func (h taskHeap) Len() int           { return len(h) }
func (h taskHeap) Less(a, b int) bool { return h[a] < h[b] }
func (h taskHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *taskHeap) Push(x any)        { *h = append(*h, x.(uint32)) }
func (h *taskHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
