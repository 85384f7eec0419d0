package harmony

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/zmtpguard"
)

// ErrClosed is returned by calls on a closed Worker, Ventilator or Collector.
var ErrClosed = errors.New("harmony: closed")

// WorkerConfig configures a Worker. The zero value works.
type WorkerConfig struct {
	// Endpoint is where the worker binds its task socket
	// (default "tcp://127.0.0.1:0", an ephemeral port).
	Endpoint string
	// AdvertiseHost, if set, replaces the host of the bound address in
	// Endpoint() (for a worker bound on 0.0.0.0).
	AdvertiseHost string
	// Concurrency is how many tasks run at once (default 1).
	Concurrency int
	// QueueLen is how many received tasks may wait for a free slot
	// (default 64). Ventilators bound what they send, so this is a safety net.
	QueueLen int
	// DialWait is how long a result waits for the connection to its
	// collector before it is dropped; the collector asks for the task again
	// (default 5 s).
	DialWait time.Duration
	// LinkIdle closes a connection to a collector unused for this long
	// (default 1 min).
	LinkIdle time.Duration
	// Keys, when set, closes the task socket with CURVE (ventilators must
	// prove a key Authorize admits; NULL ones are refused), and results go
	// only to collectors whose endpoint carries a key Authorize admits
	// ("ep|key"), over CURVE. Nil: NULL sockets.
	Keys *curve.KeyPair
	// Authorize admits a ventilator's or collector's public key (e.g. a
	// curve.AllowList's Authorize). Required with Keys.
	Authorize curve.AuthorizeFunc
	// Log receives the worker's diagnostics (default: none).
	Log zerolog.Logger
}

func (c *WorkerConfig) defaults() {
	if c.Endpoint == "" {
		c.Endpoint = "tcp://127.0.0.1:0"
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 64
	}
	if c.DialWait <= 0 {
		c.DialWait = 5 * time.Second
	}
	if c.LinkIdle <= 0 {
		c.LinkIdle = time.Minute
	}
}

// WorkerStats are a worker's counters since it started.
type WorkerStats struct {
	Tasks     int64 `json:"tasks"`     // tasks processed
	Lines     int64 `json:"lines"`     // lines processed
	Bad       int64 `json:"bad"`       // bad lines met
	Malformed int64 `json:"malformed"` // frames that were not Harmony tasks
	Failed    int64 `json:"failed"`    // tasks that could not be processed (bad spec)
	Dropped   int64 `json:"dropped"`   // results dropped: no connection to their collector
	Queued    int   `json:"queued"`    // tasks waiting now
	// Refused counts connections refused for their security, both ways:
	// ventilators with no CURVE or an unadmitted key, collectors whose
	// key is missing, unadmitted or does not match.
	Refused int64 `json:"refused"`
}

// Worker processes tasks from any number of ventilators and sends each
// result to the collector the task names. It binds one ROUTER; ventilators
// connect to it with a DEALER each.
type Worker struct {
	cfg    WorkerConfig
	ctx    context.Context
	cancel context.CancelFunc
	router zmq4.Socket
	ep     string
	tasks  chan inbound
	wg     sync.WaitGroup

	jobsMu sync.Mutex
	jobs   map[string]Job

	linksMu sync.Mutex
	links   map[string]*link

	tasksN, lines, bad, malformed, failed, dropped atomic.Int64
	closeOnce                                      sync.Once

	sec     *curve.Security // nil: an open task socket
	guard   zmtpguard.Counters
	refused atomic.Int64 // by the worker's links to collectors
}

type inbound struct {
	from []byte // the ventilator's identity
	msg  *Message
}

// NewWorker binds the worker's task socket and starts serving.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	cfg.defaults()
	sec, err := serverSecurity(cfg.Keys, cfg.Authorize, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("harmony: worker: %w", err)
	}
	w := &Worker{
		cfg: cfg, sec: sec,
		tasks: make(chan inbound, cfg.QueueLen),
		jobs:  map[string]Job{},
		links: map[string]*link{},
	}
	ctx, cancel := context.WithCancel(zmtpguard.WithCounters(cfg.Log.WithContext(context.Background()), &w.guard))
	w.ctx, w.cancel = ctx, cancel
	w.router = newRouter(ctx, sec, cfg.Log)
	if err := w.router.Listen(zmtpguard.ListenEndpoint(cfg.Endpoint, sec != nil)); err != nil {
		cancel()
		w.router.Close()
		return nil, fmt.Errorf("harmony: worker listen %s: %w", cfg.Endpoint, err)
	}
	w.ep = advertised(w.router.Addr().String(), cfg.AdvertiseHost)
	w.wg.Add(2 + cfg.Concurrency)
	go w.recvLoop()
	go w.janitor()
	for range cfg.Concurrency {
		go w.processLoop()
	}
	return w, nil
}

// Endpoint returns the bound task endpoint, "tcp://ip:port"; advertise it
// in the X-HARMONY header.
func (w *Worker) Endpoint() string { return w.ep }

// Stats returns the worker's counters.
func (w *Worker) Stats() WorkerStats {
	return WorkerStats{
		Tasks: w.tasksN.Load(), Lines: w.lines.Load(), Bad: w.bad.Load(),
		Malformed: w.malformed.Load(), Failed: w.failed.Load(), Dropped: w.dropped.Load(),
		Queued: len(w.tasks), Refused: w.refused.Load() + serverRefused(w.sec, w.guard.Mechanism()),
	}
}

// Close stops the worker and waits for its goroutines. Tasks not finished
// are abandoned; their ventilators resend them elsewhere.
func (w *Worker) Close() error {
	w.closeOnce.Do(func() {
		w.cancel()
		w.router.Close()
		w.linksMu.Lock()
		for ep, l := range w.links {
			l.close()
			delete(w.links, ep)
		}
		w.linksMu.Unlock()
		w.wg.Wait()
	})
	return nil
}

func (w *Worker) recvLoop() {
	defer w.wg.Done()
	for {
		zm, err := w.router.Recv()
		if w.ctx.Err() != nil {
			return
		}
		if err != nil {
			continue // a peer went away: zmq4 reports it as a Recv error
		}
		if len(zm.Frames) != 2 {
			w.malformed.Add(1)
			continue
		}
		m, err := Decode(zm.Frames[1])
		if err == nil && m.Type != MsgTask {
			err = fmt.Errorf("%w: %v sent to a worker", ErrMalformed, m.Type)
		}
		if err != nil {
			w.malformed.Add(1)
			w.cfg.Log.Warn().Err(err).Msg("harmony worker: bad frame")
			continue
		}
		select {
		case w.tasks <- inbound{from: zm.Frames[0], msg: m}:
		case <-w.ctx.Done():
			return
		}
	}
}

func (w *Worker) processLoop() {
	defer w.wg.Done()
	var buf []byte // result frames, reused: sends return once written
	for {
		select {
		case <-w.ctx.Done():
			return
		case in := <-w.tasks:
			buf = w.process(in, buf)
		}
	}
}

func (w *Worker) job(spec string) (Job, error) {
	w.jobsMu.Lock()
	defer w.jobsMu.Unlock()
	if j, ok := w.jobs[spec]; ok {
		return j, nil
	}
	j, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if len(w.jobs) >= 64 {
		clear(w.jobs)
	}
	w.jobs[spec] = j
	return j, nil
}

// process runs one task and sends its RESULT and DONE; it encodes the
// result into buf and returns the buffer for the next task.
func (w *Worker) process(in inbound, buf []byte) []byte {
	t := in.msg
	job, err := w.job(t.Spec)
	if err != nil {
		w.failed.Add(1)
		w.cfg.Log.Warn().Err(err).Uint32("task", t.Index).Msg("harmony worker: cannot run task")
		return buf // no DONE: the ventilator times the task out
	}
	out, nbad, details, err := processTask(job, t.Source, t.FirstLine, t.Data)
	if err != nil {
		w.failed.Add(1)
		w.cfg.Log.Warn().Err(err).Uint32("task", t.Index).Msg("harmony worker: task failed")
		return buf
	}
	lines := countLines(t.Data)
	w.tasksN.Add(1)
	w.lines.Add(int64(lines))
	w.bad.Add(int64(nbad))
	res := &Message{Type: MsgResult, Batch: t.Batch, Index: t.Index, Source: t.Source,
		Lines: uint32(lines), Bad: nbad, BadLines: details, Data: out}
	frame, err := Encode(buf[:0], res)
	if err != nil {
		w.failed.Add(1)
		w.cfg.Log.Warn().Err(err).Uint32("task", t.Index).Msg("harmony worker: encode result")
		return buf
	}
	sent := w.sendResult(t.Collector, frame)
	if sent != nil {
		w.dropped.Add(1)
		w.cfg.Log.Debug().Err(sent).Str("collector", t.Collector).Msg("harmony worker: result dropped")
	}
	done, _ := Encode(nil, &Message{Type: MsgDone, Batch: t.Batch, Index: t.Index})
	// The ROUTER holds one lock across writes; DONE frames are tiny and
	// ventilators always read, so this does not stall for long.
	if err := w.router.Send(zmq4.NewMsgFrom(in.from, done)); err != nil && w.ctx.Err() == nil {
		w.cfg.Log.Debug().Err(err).Msg("harmony worker: send DONE")
	}
	if sent != nil {
		// zmq4's DEALER Send gives up when its deadline or the link's
		// context ends, and leaves the write running: the frame may still
		// be read. The next task gets a new buffer.
		return nil
	}
	return reusable(frame)
}

// countLines counts the lines of data as forEachLine sees them: one per
// '\n', plus a last one without it.
func countLines(data []byte) int {
	n := bytes.Count(data, []byte{'\n'})
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	return n
}

// sendResult sends a RESULT frame to the collector at ep, connecting first
// if needed.
func (w *Worker) sendResult(ep string, frame []byte) error {
	w.linksMu.Lock()
	l, ok := w.links[ep]
	if !ok {
		if w.ctx.Err() != nil {
			w.linksMu.Unlock()
			return ErrClosed
		}
		if err := w.admitCollector(ep); err != nil {
			w.linksMu.Unlock()
			w.refused.Add(1)
			w.cfg.Log.Warn().Err(err).Msg("harmony worker: collector refused")
			return err
		}
		l = dialLink(w.ctx, &w.wg, ep, "w-"+uuid.NewString(),
			linkSecurity{keys: w.cfg.Keys, refused: &w.refused, log: w.cfg.Log}, nil, nil, nil)
		w.links[ep] = l
	}
	w.linksMu.Unlock()
	return l.send(frame, w.cfg.DialWait)
}

// admitCollector checks, on a keyed worker, that a task's collector
// endpoint carries a key Authorize admits: a task may name any collector,
// and results must not go to one outside the allow-list.
func (w *Worker) admitCollector(ep string) error {
	if w.cfg.Keys == nil {
		return nil
	}
	_, key, keyed, err := SplitEndpoint(ep)
	if err != nil {
		return err
	}
	if !keyed {
		return fmt.Errorf("harmony: collector %s has no CURVE key (no downgrade)", ep)
	}
	return w.cfg.Authorize(key, nil)
}

// janitor closes collector connections that have been idle for LinkIdle.
func (w *Worker) janitor() {
	defer w.wg.Done()
	t := time.NewTicker(w.cfg.LinkIdle / 2)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-w.cfg.LinkIdle).UnixNano()
		w.linksMu.Lock()
		for ep, l := range w.links {
			if l.last.Load() < cutoff {
				l.close()
				delete(w.links, ep)
			}
		}
		w.linksMu.Unlock()
	}
}

// advertised returns "tcp://host:port" for a bound address, with host
// replaced when one is given.
func advertised(addr, host string) string {
	if host != "" {
		if _, port, err := net.SplitHostPort(addr); err == nil {
			addr = net.JoinHostPort(host, port)
		}
	}
	return "tcp://" + addr
}
