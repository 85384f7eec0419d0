package harmony

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/zmtpguard"
)

// CollectorConfig configures a Collector.
type CollectorConfig struct {
	// Endpoint is where the collector binds (default "tcp://127.0.0.1:0").
	// A restarted collector binds the same endpoint again.
	Endpoint string
	// Batch is the batch this collector gathers.
	Batch BatchID
	// Job merges the results; it must match the ventilator's spec.
	Job Job
	// Out receives the output, in task order.
	Out io.Writer
	// AdvertiseHost, if set, replaces the host of the bound address in
	// Endpoint(), for a collector bound on 0.0.0.0 that workers on other
	// hosts must reach.
	AdvertiseHost string
	// StartAt resumes a batch: tasks below it are already in Out
	// (see Collector.Committed).
	StartAt uint32
	// ResendTimeout is how long the collector waits without progress before
	// it asks the ventilator to resend what is missing (default 3 s).
	ResendTimeout time.Duration
	// Keys, when set, closes the collector's socket with CURVE: workers
	// and ventilators must prove a key Authorize admits (NULL ones are
	// refused), and Endpoint carries the collector's public key.
	Keys *curve.KeyPair
	// Authorize admits a worker's or ventilator's public key (e.g. a
	// curve.AllowList's Authorize). Required with Keys.
	Authorize curve.AuthorizeFunc
	// Log receives diagnostics (default: none).
	Log zerolog.Logger
}

// CollectorStats is a snapshot of a collector's progress.
type CollectorStats struct {
	Batch      string    `json:"batch"`
	N          int       `json:"n"`         // tasks in the batch (0 until START)
	Committed  int       `json:"committed"` // tasks written out, in order
	Pending    int       `json:"pending"`   // results held, waiting for an earlier one
	Duplicates int64     `json:"duplicates"`
	Malformed  int64     `json:"malformed"`
	Resends    int64     `json:"resends"` // RESEND requests sent
	Dropped    int64     `json:"dropped"` // results dropped before START, asked for again later
	Lines      int64     `json:"lines"`
	Bad        int64     `json:"bad"`
	Started    time.Time `json:"started"`
	Done       bool      `json:"done"`
	// Refused counts connections refused for their security: with Keys,
	// peers with no CURVE, an unadmitted key or a failed handshake.
	Refused int64 `json:"refused"`
}

// maxPendingBeforeStart bounds the results held before START tells the
// batch's size.
const maxPendingBeforeStart = 1024

// Collector receives the results of one batch from the workers, writes
// them out in task order, drops duplicates by task number, and asks the
// ventilator to resend what does not arrive.
type Collector struct {
	cfg    CollectorConfig
	ctx    context.Context
	cancel context.CancelFunc
	router zmq4.Socket
	ep     string
	merger Merger
	wg     sync.WaitGroup
	done   chan struct{} // closed when the batch is complete or failed

	mu           sync.Mutex
	n            uint32 // 0 = not known yet
	committed    uint32
	pending      map[uint32]*Message
	highest      int64 // highest task number received, -1 if none
	endSeen      bool
	ventilator   []byte // identity for replies
	lastProgress time.Time
	err          error
	report       Report
	stats        CollectorStats
	closeOnce    sync.Once

	sec   *curve.Security // nil: an open socket
	guard zmtpguard.Counters
}

// NewCollector binds the collector and starts receiving.
func NewCollector(cfg CollectorConfig) (*Collector, error) {
	if cfg.Job == nil || cfg.Out == nil {
		return nil, errors.New("harmony: collector needs a Job and an Out")
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = "tcp://127.0.0.1:0"
	}
	if cfg.ResendTimeout <= 0 {
		cfg.ResendTimeout = 3 * time.Second
	}
	sec, err := serverSecurity(cfg.Keys, cfg.Authorize, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("harmony: collector: %w", err)
	}
	c := &Collector{
		cfg: cfg, sec: sec,
		merger:  cfg.Job.NewMerger(cfg.Out),
		done:    make(chan struct{}),
		pending: map[uint32]*Message{},
		highest: -1, committed: cfg.StartAt,
		lastProgress: time.Now(),
	}
	c.stats = CollectorStats{Batch: cfg.Batch.String(), Started: time.Now(), Committed: int(cfg.StartAt)}
	ctx, cancel := context.WithCancel(zmtpguard.WithCounters(cfg.Log.WithContext(context.Background()), &c.guard))
	c.ctx, c.cancel = ctx, cancel
	c.router = newRouter(ctx, sec, cfg.Log)
	if err := c.router.Listen(zmtpguard.ListenEndpoint(cfg.Endpoint, sec != nil)); err != nil {
		cancel()
		c.router.Close()
		return nil, fmt.Errorf("harmony: collector listen %s: %w", cfg.Endpoint, err)
	}
	c.ep = advertised(c.router.Addr().String(), cfg.AdvertiseHost)
	if cfg.Keys != nil {
		c.ep = KeyedEndpoint(c.ep, cfg.Keys.Public)
	}
	in := make(chan zmq4.Msg, 64)
	c.wg.Add(2)
	go c.recvLoop(in)
	go c.loop(in)
	return c, nil
}

// Endpoint returns the bound endpoint, to put in the ventilator's config;
// with Keys, it carries the collector's public key ("ep|key").
func (c *Collector) Endpoint() string { return c.ep }

// Committed returns how many tasks, from the first, are written to Out.
// A collector restarted with StartAt = Committed() resumes the batch.
func (c *Collector) Committed() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.committed
}

// Stats returns a snapshot of the collector's progress.
func (c *Collector) Stats() CollectorStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.N, s.Committed, s.Pending = int(c.n), int(c.committed), len(c.pending)
	s.Refused = serverRefused(c.sec, c.guard.Mechanism())
	return s
}

// Wait blocks until every task is written out and the merger closed, or
// ctx ends. It returns what the batch met.
func (c *Collector) Wait(ctx context.Context) (Report, error) {
	select {
	case <-ctx.Done():
		return Report{}, ctx.Err()
	case <-c.done:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.report, c.err
}

// Close stops the collector. Output already written stays; a collector made
// with StartAt = Committed() takes over from there.
func (c *Collector) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.router.Close()
		c.wg.Wait()
	})
	return nil
}

func (c *Collector) recvLoop(in chan<- zmq4.Msg) {
	defer c.wg.Done()
	for {
		m, err := c.router.Recv()
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			continue // a peer went away
		}
		select {
		case in <- m:
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *Collector) loop(in <-chan zmq4.Msg) {
	defer c.wg.Done()
	tick := time.NewTicker(max(c.cfg.ResendTimeout/4, 20*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case zm := <-in:
			c.handle(zm)
		case <-tick.C:
			c.checkResend()
		}
	}
}

func (c *Collector) handle(zm zmq4.Msg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(zm.Frames) != 2 {
		c.stats.Malformed++
		return
	}
	m, err := Decode(zm.Frames[1])
	if err == nil && m.Batch != c.cfg.Batch {
		err = fmt.Errorf("harmony: message for batch %v, collecting %v", m.Batch, c.cfg.Batch)
	}
	if err != nil {
		c.stats.Malformed++
		c.cfg.Log.Warn().Err(err).Msg("harmony collector: bad frame")
		return
	}
	switch m.Type {
	case MsgStart:
		c.ventilator = zm.Frames[0]
		if c.n == 0 {
			c.n = m.N
			c.lastProgress = time.Now()
			c.commit()
		} else if c.n != m.N {
			c.stats.Malformed++
			c.cfg.Log.Warn().Uint32("n", m.N).Uint32("have", c.n).Msg("harmony collector: START with another size")
		}
		c.reply(&Message{Type: MsgAck, Committed: c.committed})
		if c.isDone() {
			c.reply(&Message{Type: MsgFinished})
		}
	case MsgEnd:
		c.ventilator = zm.Frames[0]
		c.endSeen = true
	case MsgResult:
		c.result(m)
	default:
		c.stats.Malformed++
	}
}

func (c *Collector) result(m *Message) {
	if m.Index < c.committed || c.pending[m.Index] != nil || c.isDone() {
		c.stats.Duplicates++
		return
	}
	if (c.n != 0 && m.Index >= c.n) || m.Index >= MaxTasks {
		c.stats.Malformed++
		return
	}
	if c.n == 0 && len(c.pending) >= maxPendingBeforeStart {
		c.stats.Dropped++ // the size is unknown until START: hold a bounded number
		return
	}
	c.pending[m.Index] = m
	c.highest = max(c.highest, int64(m.Index))
	c.commit()
}

// commit writes out every result that follows the committed prefix.
func (c *Collector) commit() {
	for c.err == nil {
		m := c.pending[c.committed]
		if m == nil {
			break
		}
		delete(c.pending, c.committed)
		if err := c.merger.Add(m.Data); err != nil {
			if errors.Is(err, ErrBadResult) {
				// A broken worker: drop it; the task is asked for again.
				c.stats.Malformed++
				c.cfg.Log.Warn().Err(err).Uint32("task", m.Index).Msg("harmony collector: bad result")
				break
			}
			c.fail(fmt.Errorf("harmony: collector: task %d: %w", m.Index, err))
			return
		}
		c.report.Tasks++
		c.report.Lines += int64(m.Lines)
		c.report.Bad += int64(m.Bad) - int64(len(m.BadLines))
		c.report.addBad(m.BadLines...)
		c.stats.Lines, c.stats.Bad = c.report.Lines, c.report.Bad
		c.committed++
		c.lastProgress = time.Now()
	}
	if c.isDone() && c.err == nil && !c.stats.Done {
		c.stats.Done = true
		if err := c.merger.Close(); err != nil {
			c.fail(fmt.Errorf("harmony: collector: close output: %w", err))
			return
		}
		c.reply(&Message{Type: MsgFinished})
		close(c.done)
	}
}

func (c *Collector) isDone() bool { return c.n != 0 && c.committed >= c.n }

func (c *Collector) fail(err error) {
	if c.err == nil {
		c.err = err
		c.stats.Done = true
		close(c.done)
	}
}

// checkResend asks the ventilator for the missing tasks once nothing has
// been committed for ResendTimeout: the holes below the highest result, and,
// if END has not come, every task after the last response.
func (c *Collector) checkResend() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stats.Done || c.ventilator == nil || time.Since(c.lastProgress) < c.cfg.ResendTimeout {
		return
	}
	limit := uint32(c.highest + 1)
	from := max(limit, c.committed)
	if c.endSeen && c.n != 0 {
		limit, from = c.n, c.n
	}
	var missing []uint32
	for i := c.committed; i < limit && len(missing) < MaxResendList; i++ {
		if c.pending[i] == nil {
			missing = append(missing, i)
		}
	}
	c.reply(&Message{Type: MsgResend, From: from, Missing: missing})
	c.stats.Resends++
	c.lastProgress = time.Now()
	c.cfg.Log.Debug().Int("missing", len(missing)).Uint32("from", from).Msg("harmony collector: asking for resend")
}

// reply sends m to the ventilator. Replies are tiny and the ventilator
// always reads, so the ROUTER's lock across writes is not held for long.
func (c *Collector) reply(m *Message) {
	if c.ventilator == nil {
		return
	}
	m.Batch = c.cfg.Batch
	frame, err := Encode(nil, m)
	if err != nil {
		c.cfg.Log.Error().Err(err).Msg("harmony collector: encode reply")
		return
	}
	if err := c.router.Send(zmq4.NewMsgFrom(c.ventilator, frame)); err != nil && c.ctx.Err() == nil {
		c.cfg.Log.Debug().Err(err).Msg("harmony collector: reply")
	}
}
