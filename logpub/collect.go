package logpub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// CollectorConfig configures a Collector. Start from DefaultCollectorConfig.
type CollectorConfig struct {
	// Self is this logd's node: never collected (its hub captures its own
	// events).
	Self uuid.UUID
	// Dir is the root of the collected captures:
	// <Dir>/<origin name>/<service>.log, beside each its envelope journal
	// .<service>.env. Required.
	Dir string
	// StateDir holds the cursor file collect-cursors.json. Default Dir.
	StateDir string
	// Capture configures rotation, compression and archive announcements
	// of the collected files, as for the Hub's own (Dir and Shared are
	// ignored). OnArchive is given the service as "<origin>/<service>".
	Capture CaptureConfig
	// MinLevel and LevelSet keep only events of this level and above, as
	// Filter's (the zero values keep every event, with a level or
	// without). The filter applies here, not at the origin, so that every
	// sequence number still arrives and a gap is never mistaken for a
	// filtered event.
	MinLevel zerolog.Level
	LevelSet bool
	// Services, if not empty, collects only these services (filtered at
	// the origin).
	Services []string
	// Nodes, if not empty, collects only these origins (node name or UUID).
	Nodes []string
	// Retry is the pause before reconnecting to an origin. Default 1 s.
	Retry time.Duration
	// SaveEvery is how often changed cursors are persisted. Default 1 s.
	SaveEvery time.Duration
	// IdleResume resumes from the cursors once an origin's live stream has
	// been quiet this long after events: an origin that dropped the last
	// events of a burst for a slow collector sends nothing that would
	// show the gap, but its ring still has them. Default 2 s.
	IdleResume time.Duration
	// Log receives the Collector's own messages.
	Log zerolog.Logger
}

// DefaultCollectorConfig returns a configuration with the defaults filled
// in; Dir and Self are still to be set.
func DefaultCollectorConfig() CollectorConfig {
	return CollectorConfig{Retry: time.Second, SaveEvery: time.Second, IdleResume: 2 * time.Second, Log: zerolog.Nop()}
}

// originForget is how long the cursors of an origin not seen are kept.
const originForget = 30 * 24 * time.Hour

// CollectorPeer is one logd of the mesh that may be collected.
type CollectorPeer struct {
	ID       uuid.UUID
	Name     string
	Endpoint string // its log hub's publish endpoint (X-LOGD-PUB, resolved)
	// Curve, when set, subscribes with CURVE (a closed mesh), as
	// SubscribeOptions.Curve.
	Curve *CurveClient
}

// CollectorStats are a Collector's counters.
type CollectorStats struct {
	Collected     uint64 // events captured
	Filtered      uint64 // events received below MinLevel, not captured
	Deduped       uint64 // events received again and dropped by sequence
	Missed        uint64 // events no longer available at their origin (gaps)
	Gaps          uint64 // gaps found (each of Missed events in all)
	CaptureErrors uint64 // failed capture writes (collected again after a reconnect)
	Resumes       uint64 // subscriptions (re)started from the cursors
	Origins       []OriginStats
}

// OriginStats describe one collected origin node.
type OriginStats struct {
	Node      uuid.UUID
	Name      string
	Endpoint  string
	Connected bool   // a stream to it is open
	Present   bool   // it is in the mesh (last SetPeers)
	Sources   int    // sources with a cursor
	Collected uint64 // events captured from it
	Deduped   uint64
	Missed    uint64
	LastError string `json:",omitempty"`
}

// Collector subscribes to other logds' hubs and captures their events
// durably into its own capture directory, per origin and service, keeping
// each JSON line byte-identical and the origin's envelope in a journal
// beside it. It resumes every origin from its persisted per-source
// cursors through the origin hub's ring, drops what it already has by
// sequence number, and counts and logs every gap it cannot fill. Collected
// events are not published again: logtail reads every logd directly.
type Collector struct {
	cfg CollectorConfig
	log zerolog.Logger

	mu        sync.Mutex
	closed    bool
	origins   map[uuid.UUID]*origin
	dirs      map[string]*outDir
	followers map[uuid.UUID]*follower
	lastDone  map[uuid.UUID]chan struct{} // per origin: done of its latest follower
	dirty     bool

	collected, filtered, deduped, missed, gaps, captureErrors, resumes atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// origin is the collection state of one origin node. sources is written by
// its follower under Collector.mu, and read by it without the lock.
type origin struct {
	id        uuid.UUID
	name      string
	known     bool // a baseline exists: unseen sequences are gaps
	seen      time.Time
	sources   map[uint64]*cursorSource
	endpoint  string
	connected bool
	present   bool
	lastErr   string

	collected, deduped, missed uint64
}

type follower struct {
	curve    *CurveClient
	endpoint string
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewCollector loads the cursors and the envelope journals of cfg.Dir (cutting
// off what a crash left uncaptured) and starts the cursor saver. Collection
// starts with SetPeers.
func NewCollector(cfg CollectorConfig) (*Collector, error) {
	if cfg.Dir == "" {
		return nil, errors.New("logpub: collector: no capture directory")
	}
	if cfg.StateDir == "" {
		cfg.StateDir = cfg.Dir
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = time.Second
	}
	if cfg.IdleResume <= 0 {
		cfg.IdleResume = 2 * time.Second
	}
	for _, s := range cfg.Services {
		if err := checkService(s); err != nil {
			return nil, fmt.Errorf("logpub: collector: %w", err)
		}
	}
	for _, d := range []string{cfg.Dir, cfg.StateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("logpub: collector: %w", err)
		}
	}
	c := &Collector{cfg: cfg, log: cfg.Log, origins: map[uuid.UUID]*origin{}, dirs: map[string]*outDir{},
		followers: map[uuid.UUID]*follower{}, lastDone: map[uuid.UUID]chan struct{}{}}
	if err := c.load(); err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.saver()
	if cfg.Capture.RotateEvery > 0 {
		c.wg.Add(1)
		go c.timeRotation(cfg.Capture.RotateEvery)
	}
	return c, nil
}

// load rebuilds the origins from the cursor file and the journals; a
// journal ahead of the cursor file (saved up to SaveEvery ago) wins.
func (c *Collector) load() error {
	cf, err := loadCursors(c.cfg.StateDir)
	if err != nil {
		return err
	}
	for id, co := range cf.Origins {
		if time.Since(co.Seen) > originForget {
			continue // a node gone for a month: its cursors are of no use
		}
		u, err := uuid.Parse(id)
		if err != nil {
			return fmt.Errorf("logpub: collector cursors: origin %q: %w", id, err)
		}
		o := c.originLocked(u, co.Name)
		o.seen = co.Seen
		for sid, cs := range co.Sources {
			src, err := strconv.ParseUint(sid, 10, 64)
			if err != nil {
				return fmt.Errorf("logpub: collector cursors: source %q: %w", sid, err)
			}
			o.sources[src] = &cursorSource{Service: cs.Service, Seq: cs.Seq}
		}
	}
	ents, err := os.ReadDir(c.cfg.Dir)
	if err != nil {
		return fmt.Errorf("logpub: collector: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || e.Name()[0] == '.' {
			continue
		}
		name := e.Name()
		err := recoverDir(c.cfg.Dir+string(os.PathSeparator)+name, c.log, func(service string, env *Envelope) {
			o := c.originLocked(env.Node, name)
			cs := o.sources[env.Source]
			if cs == nil {
				cs = &cursorSource{Service: service}
				o.sources[env.Source] = cs
			}
			cs.Seq = max(cs.Seq, env.Seq)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *Collector) originLocked(id uuid.UUID, name string) *origin {
	o := c.origins[id]
	if o == nil {
		o = &origin{id: id, name: name, known: true, sources: map[uint64]*cursorSource{}}
		c.origins[id] = o
	}
	return o
}

// SetPeers tells the Collector which logds are in the mesh now: it starts
// collecting from new ones (those that match Nodes), stops following those
// that left (their state is kept, and they resume when they come back).
func (c *Collector) SetPeers(peers []CollectorPeer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	want := map[uuid.UUID]CollectorPeer{}
	for _, p := range peers {
		if p.ID == c.cfg.Self || p.Endpoint == "" {
			continue
		}
		if len(c.cfg.Nodes) > 0 && !slices.Contains(c.cfg.Nodes, p.Name) && !slices.Contains(c.cfg.Nodes, p.ID.String()) {
			continue
		}
		want[p.ID] = p
	}
	for id, f := range c.followers {
		p, ok := want[id]
		if ok && p.Endpoint == f.endpoint && (p.Curve == nil) == (f.curve == nil) {
			continue
		}
		f.cancel()
		delete(c.followers, id)
		if o := c.origins[id]; o != nil && !ok {
			o.present = false
			c.log.Info().Str("origin", o.name).Str("node", id.String()).Uint64("collected", o.collected).
				Uint64("missed", o.missed).Msg("origin left the mesh; its cursors are kept")
		}
	}
	for id, p := range want {
		if c.followers[id] != nil {
			continue
		}
		o := c.origins[id]
		if o == nil {
			o = c.originLocked(id, p.Name)
			o.known = false // first contact: what the origin no longer has is not a gap
			c.dirty = true
		}
		o.endpoint, o.present = p.Endpoint, true // the name is set once: followers read it
		// A follower of this origin cancelled just above may still be
		// writing: the new one waits for it, so one origin has one writer.
		prev := c.lastDone[id]
		ctx, cancel := context.WithCancel(c.ctx)
		f := &follower{endpoint: p.Endpoint, curve: p.Curve, cancel: cancel, done: make(chan struct{})}
		c.followers[id] = f
		c.lastDone[id] = f.done
		c.wg.Add(1)
		go c.follow(ctx, o, p.Endpoint, p.Curve, prev, f.done)
		c.log.Info().Str("origin", p.Name).Str("node", id.String()).Str("endpoint", p.Endpoint).Msg("collecting from origin")
	}
}

// Stats returns the Collector's counters and its origins.
func (c *Collector) Stats() CollectorStats {
	s := CollectorStats{
		Collected: c.collected.Load(), Filtered: c.filtered.Load(), Deduped: c.deduped.Load(),
		Missed: c.missed.Load(), Gaps: c.gaps.Load(), CaptureErrors: c.captureErrors.Load(),
		Resumes: c.resumes.Load(), Origins: []OriginStats{},
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.origins {
		s.Origins = append(s.Origins, OriginStats{Node: o.id, Name: o.name, Endpoint: o.endpoint,
			Connected: o.connected, Present: o.present, Sources: len(o.sources), Collected: o.collected,
			Deduped: o.deduped, Missed: o.missed, LastError: o.lastErr})
	}
	slices.SortFunc(s.Origins, func(a, b OriginStats) int {
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		return slices.Compare(a.Node[:], b.Node[:])
	})
	return s
}

// Close stops every follower, saves the cursors and closes the files.
func (c *Collector) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	errs := []error{c.save()}
	for _, d := range c.dirs {
		errs = append(errs, d.close())
	}
	return errors.Join(errs...)
}

// saver persists changed cursors every SaveEvery.
func (c *Collector) saver() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.SaveEvery)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		if err := c.save(); err != nil {
			c.log.Error().Err(err).Msg("save collector cursors")
		}
	}
}

func (c *Collector) save() error {
	c.mu.Lock()
	if !c.dirty {
		c.mu.Unlock()
		return nil
	}
	cf := &cursorFile{Version: 1, Origins: make(map[string]*cursorOrigin, len(c.origins))}
	for id, o := range c.origins {
		if !o.known {
			continue // first contact not settled yet: no baseline to keep
		}
		co := &cursorOrigin{Name: o.name, Seen: o.seen, Sources: make(map[string]cursorSource, len(o.sources))}
		for src, cs := range o.sources {
			co.Sources[strconv.FormatUint(src, 10)] = *cs
		}
		cf.Origins[id.String()] = co
	}
	c.dirty = false
	c.mu.Unlock()
	if err := saveCursors(c.cfg.StateDir, cf); err != nil {
		c.mu.Lock()
		c.dirty = true
		c.mu.Unlock()
		return err
	}
	return nil
}

func (c *Collector) timeRotation(every time.Duration) {
	defer c.wg.Done()
	for {
		now := time.Now()
		t := time.NewTimer(now.Truncate(every).Add(every).Sub(now))
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		c.mu.Lock()
		dirs := make([]*outDir, 0, len(c.dirs))
		for _, d := range c.dirs {
			dirs = append(dirs, d)
		}
		c.mu.Unlock()
		for _, d := range dirs {
			d.rotateAll()
		}
	}
}

// dir returns the capture directory of an origin, created on first use.
func (c *Collector) dir(o *origin) (*outDir, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := originDirName(o.name, o.id)
	if d := c.dirs[name]; d != nil {
		return d, nil
	}
	d, err := newOutDir(c.cfg.Dir, name, c.cfg.Capture, c.log)
	if err != nil {
		return nil, err
	}
	c.dirs[name] = d
	return d, nil
}
