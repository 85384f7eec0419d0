package filemq

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/zmtpguard"
)

// EventType says what a client event reports.
type EventType int

// Client events.
const (
	FileUpdated  EventType = iota + 1 // a file is complete in the inbox
	FileDeleted                       // a file was deleted from the inbox
	FileRejected                      // the server sent something refused (bad path, size, checksum)
	Disconnected                      // the session ended; the client reconnects
)

var eventTypeNames = [...]string{"", "FILE UPDATED", "FILE DELETED", "FILE REJECTED", "DISCONNECTED"}

// String returns the name of the event type, as the reference client prints it.
func (t EventType) String() string {
	if t > 0 && int(t) < len(eventTypeNames) {
		return eventTypeNames[t]
	}
	return "UNKNOWN"
}

// Event is something that happened to a client's inbox or session.
type Event struct {
	Type EventType
	Path string // inbox-relative, slash-separated; empty for Disconnected
	Err  error  // FileRejected, Disconnected: why
}

// ClientStats is a snapshot of a Client.
type ClientStats struct {
	Endpoint      string   `json:"endpoint"`
	Connected     bool     `json:"connected"` // a session is up (OHAI-OK received)
	Subscriptions []string `json:"subscriptions"`
	Sessions      uint64   `json:"sessions"`       // sessions started
	ReceivedBytes uint64   `json:"received_bytes"` // chunk bytes received, this run
	ReceivedFiles uint64   `json:"received_files"` // files completed, this run
	HeldFiles     int      `json:"held_files"`     // complete files in the inbox
	Current       string   `json:"current,omitempty"`
	CurrentOffset int64    `json:"current_offset,omitempty"`
	CurrentSize   int64    `json:"current_size,omitempty"`
	Rejected      uint64   `json:"rejected"` // commands or files refused
	// Refused counts sessions refused for their security: with Keys, a
	// server with no CURVE, another key, or that refused ours; without,
	// a CURVE server.
	Refused uint64 `json:"refused"`
	Corrupt uint64 `json:"corrupt"` // chunks or files failing their checksum
	Resyncs uint64 `json:"resyncs"` // extra ICANHAZ sent to repair a transfer
	Dropped uint64 `json:"dropped_events"`
}

var errTimeout = errors.New("filemq: server silent past the timeout")

// Client receives the files of the paths it subscribes to from one server
// into its inbox, resuming after restarts and network cuts.
type Client struct {
	cfg    ClientConfig
	log    zerolog.Logger
	in     *inbox
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events chan Event
	subCh  chan struct{}

	mu      sync.Mutex
	subs    []string
	started bool
	closed  bool
	stats   ClientStats

	sec   *curve.Security // nil: a NULL client
	guard zmtpguard.Counters
}

// NewClient opens (or creates) the inbox and loads what it already holds.
// Call Subscribe and Connect next.
func NewClient(cfg ClientConfig) (*Client, error) {
	def := DefaultClientConfig(cfg.Inbox)
	if cfg.Inbox == "" {
		return nil, errors.New("filemq: client needs an inbox directory")
	}
	if cfg.Credit <= 0 {
		cfg.Credit = def.Credit
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = def.Heartbeat
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = def.Timeout
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = def.MaxFileSize
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = def.MaxRetries
	}
	var sec *curve.Security
	if cfg.Keys != nil {
		if cfg.ServerKey == (curve.PublicKey{}) {
			return nil, errors.New("filemq: client: Keys without ServerKey")
		}
		sec = curve.NewClient(*cfg.Keys, cfg.ServerKey, curve.WithLogger(cfg.Logger))
	}
	in, err := openInbox(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg: cfg, log: cfg.Logger, in: in, ctx: ctx, cancel: cancel,
		events: make(chan Event, 1024), subCh: make(chan struct{}, 1), sec: sec,
	}
	c.stats.HeldFiles = len(in.held)
	return c, nil
}

// Events returns the client's events. It is closed by Close. Events are
// dropped (and counted) when nobody reads.
func (c *Client) Events() <-chan Event { return c.events }

// Subscribe asks for every file at or under path ("/" for all). It may be
// called before or after Connect.
func (c *Client) Subscribe(p string) error {
	sub, err := cleanSubPath(p)
	if err != nil {
		return fmt.Errorf("filemq: subscribe: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if !containsString(c.subs, sub) {
		c.subs = append(c.subs, sub)
	}
	select {
	case c.subCh <- struct{}{}:
	default:
	}
	return nil
}

// Connect starts the client's sessions with the server at endpoint. It
// returns at once; the client connects, and reconnects, in the background.
func (c *Client) Connect(endpoint string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.started {
		return fmt.Errorf("filemq: client already connected to %s", c.stats.Endpoint)
	}
	c.started = true
	c.stats.Endpoint = endpoint
	c.wg.Add(1)
	go c.run(endpoint)
	return nil
}

// Stats returns a snapshot of the client.
func (c *Client) Stats() ClientStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	st.Subscriptions = append([]string(nil), c.subs...)
	st.Refused = c.guard.Mechanism()
	if c.sec != nil {
		st.Refused += c.sec.Stats().Failures
	}
	return st
}

// Close says goodbye to the server (KTHXBAI), stops every goroutine and
// closes the Events channel. Partial files stay for the next run.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.in.close()
	close(c.events)
	return nil
}

func (c *Client) emit(e Event) {
	select {
	case c.events <- e:
	default:
		c.mu.Lock()
		c.stats.Dropped++
		c.mu.Unlock()
	}
}

func (c *Client) run(endpoint string) {
	defer c.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		err := c.session(endpoint)
		c.mu.Lock()
		c.stats.Connected = false
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		c.log.Info().Err(err).Str("endpoint", endpoint).Msg("filemq: session ended, reconnecting")
		c.emit(Event{Type: Disconnected, Err: err})
		if time.Since(start) > c.cfg.Timeout {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-time.After(backoff):
		case <-c.ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// session runs one connection: OHAI, ICANHAZ per subscription, NOM, then
// chunks until the server goes silent or the client closes. Each session
// uses a fresh DEALER and identity: zmq4 drops what is sent while
// disconnected, so the client never relies on a socket outliving a cut.
func (c *Client) session(endpoint string) error {
	sctx, scancel := context.WithCancel(zmtpguard.WithCounters(c.log.WithContext(context.Background()), &c.guard))
	defer scancel()
	id := make([]byte, 16)
	rand.Read(id)
	opts := []zmq4.Option{zmq4.WithID(zmq4.SocketIdentity(id)),
		zmq4.WithDialerMaxRetries(-1), zmq4.WithDialerTimeout(c.cfg.Timeout),
		zmq4.WithLogger(discardStdLogger())}
	// Dialling through the guarded transports refuses and counts a server
	// that answers with another mechanism (CURVE to a NULL client, NULL
	// to a keyed one).
	dialEP := zmtpguard.Endpoint(endpoint)
	if c.sec != nil {
		opts = append(opts, zmq4.WithSecurity(c.sec))
		dialEP = zmtpguard.CurveEndpoint(endpoint)
	}
	sock := zmq4.NewDealer(sctx, opts...)
	defer sock.Close()
	// zmq4's Dial blocks, retrying, until it connects: Close must be able to stop it.
	stop := context.AfterFunc(c.ctx, scancel)
	err := sock.Dial(dialEP)
	stop()
	if err != nil {
		return fmt.Errorf("filemq: dial %s: %w", endpoint, err)
	}
	c.mu.Lock()
	c.stats.Sessions++
	c.mu.Unlock()

	recv := make(chan zmq4.Msg, 64)
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		defer close(recv)
		for {
			m, err := sock.Recv()
			if err != nil {
				return
			}
			select {
			case recv <- m:
			case <-sctx.Done():
				return
			}
		}
	}()
	defer func() { scancel(); sock.Close(); rwg.Wait(); drainClosed(sock) }()

	s := &session{c: c, sock: sock, sent: map[string]bool{}, resyncing: map[string]bool{}}
	if err := s.send(&Msg{Cmd: CmdOHAI}); err != nil {
		return err
	}
	hb := time.NewTicker(c.cfg.Heartbeat)
	defer hb.Stop()
	lastRecv := time.Now()
	for {
		select {
		case zm, ok := <-recv:
			if !ok {
				return errors.New("filemq: connection closed")
			}
			lastRecv = time.Now()
			if err := s.handle(zm); err != nil {
				return err
			}
		case <-hb.C:
			if time.Since(lastRecv) > c.cfg.Timeout {
				return errTimeout
			}
			if err := s.send(&Msg{Cmd: CmdHUGZ}); err != nil {
				return err
			}
		case <-c.subCh:
			if s.ready {
				if err := s.subscribeAll(); err != nil {
					return err
				}
			}
		case <-c.ctx.Done():
			s.send(&Msg{Cmd: CmdKTHXBAI})
			return c.ctx.Err()
		}
	}
}

// session is the state of one connection, owned by the run goroutine.
type session struct {
	c         *Client
	sock      zmq4.Socket
	buf       []byte
	ready     bool
	sent      map[string]bool // subscriptions sent this session
	resyncing map[string]bool // vpaths with a repair ICANHAZ outstanding
	owed      int64           // bytes received and not yet granted back
}

func (s *session) send(m *Msg) error {
	b, err := m.Encode(s.buf[:0])
	if err != nil {
		return err
	}
	s.buf = b
	if err := s.sock.Send(zmq4.NewMsg(b)); err != nil {
		// zmq4's DEALER Send stops waiting at its deadline or when the
		// socket closes, and leaves the write running on b: encode the
		// next command into a new buffer.
		s.buf = nil
		return fmt.Errorf("filemq: send %v: %w", m.Cmd, err)
	}
	return nil
}

func (s *session) icanhaz(sub string) error {
	opts := map[string]string{optResync: "1"}
	if s.c.cfg.Name != "" {
		opts[optClient] = s.c.cfg.Name
	}
	return s.send(&Msg{Cmd: CmdICANHAZ, Path: sub, Options: opts, Cache: s.c.in.cacheFor()})
}

func (s *session) subscribeAll() error {
	s.c.mu.Lock()
	subs := append([]string(nil), s.c.subs...)
	s.c.mu.Unlock()
	for _, sub := range subs {
		if s.sent[sub] {
			continue
		}
		if err := s.icanhaz(sub); err != nil {
			return err
		}
		s.sent[sub] = true
	}
	return nil
}

func (s *session) handle(zm zmq4.Msg) error {
	c := s.c
	if len(zm.Frames) != 1 {
		c.countRejected()
		return nil
	}
	m, err := Decode(zm.Frames[0])
	if err != nil {
		c.countRejected()
		c.log.Warn().Err(err).Msg("filemq: bad command from server")
		return nil
	}
	switch m.Cmd {
	case CmdOHAIOK:
		s.ready = true
		c.mu.Lock()
		c.stats.Connected = true
		c.mu.Unlock()
		if err := s.subscribeAll(); err != nil {
			return err
		}
		return s.send(&Msg{Cmd: CmdNOM, Credit: uint64(c.cfg.Credit)})
	case CmdICANHAZOK, CmdHUGZOK:
	case CmdHUGZ:
		return s.send(&Msg{Cmd: CmdHUGZOK})
	case CmdCHEEZBURGER:
		return s.cheezburger(&m)
	case CmdSRSLY, CmdRTFM:
		return fmt.Errorf("filemq: server refused: %v %q", m.Cmd, m.Reason)
	default:
		c.countRejected()
	}
	return nil
}

func (c *Client) countRejected() {
	c.mu.Lock()
	c.stats.Rejected++
	c.mu.Unlock()
}

// relFor maps a virtual path to the inbox by the longest matching
// subscription, as the reference client strips its subscription prefix.
func (c *Client) relFor(vpath string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	best := ""
	for _, s := range c.subs {
		if pathMatches(s, vpath) && len(s) > len(best) {
			best = s
		}
	}
	if best == "" {
		return "", false
	}
	if vpath == best {
		return path.Base(vpath), true
	}
	return strings.TrimPrefix(strings.TrimPrefix(vpath, best), "/"), true
}

func (s *session) cheezburger(m *Msg) error {
	c := s.c
	// Grant back what arrived, whatever becomes of it, so that the
	// server's view of the credit stays exact.
	s.owed += int64(len(m.Chunk))
	if s.owed >= c.cfg.Credit/4 {
		if err := s.send(&Msg{Cmd: CmdNOM, Credit: uint64(s.owed)}); err != nil {
			return err
		}
		s.owed = 0
	}
	c.mu.Lock()
	c.stats.ReceivedBytes += uint64(len(m.Chunk))
	c.mu.Unlock()
	rel, ok := c.relFor(m.Filename)
	if !ok || !strings.HasPrefix(m.Filename, "/") {
		c.countRejected()
		c.emit(Event{Type: FileRejected, Path: m.Filename, Err: fmt.Errorf("%w: %.100q matches no subscription", errRejected, m.Filename)})
		return nil
	}
	r, err := c.in.chunk(m, rel)
	c.note(m, &r, err)
	if r.resync && !s.resyncing[m.Filename] {
		s.resyncing[m.Filename] = true
		c.mu.Lock()
		c.stats.Resyncs++
		c.mu.Unlock()
		return s.repair(m.Filename)
	}
	if err == nil && !r.resync {
		delete(s.resyncing, m.Filename)
	}
	return nil
}

// repair sends ICANHAZ again, with the current cache, for the
// subscriptions that cover vpath: the server then resumes the file from
// what the inbox holds.
func (s *session) repair(vpath string) error {
	s.c.mu.Lock()
	subs := append([]string(nil), s.c.subs...)
	s.c.mu.Unlock()
	for _, sub := range subs {
		if pathMatches(sub, vpath) {
			return s.icanhaz(sub)
		}
	}
	return nil
}

// note updates stats and emits the events of one chunk's result.
func (c *Client) note(m *Msg, r *result, err error) {
	c.mu.Lock()
	p := c.in.parts[r.rel]
	if p != nil && !r.done {
		c.stats.Current, c.stats.CurrentOffset, c.stats.CurrentSize = r.rel, p.off, p.size
	} else {
		c.stats.Current, c.stats.CurrentOffset, c.stats.CurrentSize = "", 0, 0
	}
	if r.done {
		c.stats.ReceivedFiles++
	}
	c.stats.HeldFiles = len(c.in.held)
	if err != nil {
		if errors.Is(err, errRejected) {
			c.stats.Rejected++
		} else {
			c.stats.Corrupt++
		}
	}
	c.mu.Unlock()
	switch {
	case err != nil:
		c.log.Warn().Err(err).Str("file", m.Filename).Msg("filemq: chunk refused")
		c.emit(Event{Type: FileRejected, Path: r.rel, Err: err})
	case r.done:
		c.emit(Event{Type: FileUpdated, Path: r.rel})
	case r.deleted:
		c.emit(Event{Type: FileDeleted, Path: r.rel})
	}
}
