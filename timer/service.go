package timer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/zmtpguard"
)

// Mesh is what the service needs of a mesh node; *mesh.Node satisfies it.
type Mesh interface {
	UUID() uuid.UUID
	Join(group string) error
	Shout(group string, frames ...[]byte) error
	Whisper(peer uuid.UUID, frames ...[]byte) error
	GroupPeers(group string) []uuid.UUID
}

// Service is the timer service of one node: it serves ticks and schedule
// fires to Clients over a ROUTER socket, and shares schedules with the other
// timer nodes of the mesh.
type Service struct {
	cfg     Config
	log     zerolog.Logger
	self    string // our mesh UUID, "" standalone
	started time.Time

	ctx    context.Context
	cancel context.CancelFunc
	sock   zmq4.Socket
	ep     string
	wg     sync.WaitGroup
	wake   chan struct{}
	closed atomic.Bool

	mu      sync.Mutex
	clients map[string]*client
	entries map[string]*entry
	dirty   bool
	leader  bool
	// leaderSince is when this node took over cluster schedules; their
	// occurrences before it are fired late (catch-up).
	leaderSince time.Time
	peers       map[uuid.UUID]*peer
	recent      []Fire // ring of the latest fires, for Snapshot
	ticks       []tickStats
	// tickWake wakes an idle tick loop when its first client subscribes.
	tickWake []chan struct{}
	stats    counters

	sec   *curve.Security // nil: an open socket
	guard zmtpguard.Counters
}

type client struct {
	id       string
	lastSeen time.Time
	sent     uint64 // seq of the last message sent
	acked    uint64 // seq the client says it has received
	subs     []bool // by index in Periods
	watch    map[string]bool
}

type counters struct {
	badMessages  uint64
	badPeerMsgs  uint64
	firesDropped uint64
	firesSkipped uint64
	sendErrors   uint64
	rejected     uint64
}

type tickStats struct {
	sent, dropped, skipped uint64
	last                   int64
	subs                   int // clients subscribed
}

// NewService checks cfg and loads the persisted schedules; Start serves.
func NewService(cfg Config) (*Service, error) {
	cfg.fill()
	if cfg.Mesh != nil && cfg.Events == nil {
		return nil, errors.New("timer: config: Mesh without Events")
	}
	var sec *curve.Security
	if cfg.Keys != nil {
		if cfg.Authorize == nil {
			return nil, errors.New("timer: config: Keys without Authorize")
		}
		sec = curve.NewServer(*cfg.Keys, cfg.Authorize, curve.WithLogger(cfg.Logger))
	}
	recs, err := loadState(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:      cfg,
		log:      cfg.Logger.With().Str("component", "timer").Logger(),
		wake:     make(chan struct{}, 1),
		clients:  make(map[string]*client),
		entries:  make(map[string]*entry),
		peers:    make(map[uuid.UUID]*peer),
		ticks:    make([]tickStats, len(Periods)),
		tickWake: make([]chan struct{}, len(Periods)),
		sec:      sec,
	}
	for i := range s.tickWake {
		s.tickWake[i] = make(chan struct{}, 1)
	}
	if cfg.Mesh != nil {
		s.self = cfg.Mesh.UUID().String()
	}
	now := time.Now()
	for _, r := range recs {
		s.entries[r.Spec.Name] = newEntry(r, now)
	}
	return s, nil
}

// Start binds the endpoint and starts ticking, scheduling and, with a mesh,
// replicating. ctx bounds the service's life as Close does.
func (s *Service) Start(ctx context.Context) error {
	s.ctx, s.cancel = context.WithCancel(zmtpguard.WithCounters(s.log.WithContext(ctx), &s.guard))
	s.started = time.Now()
	if err := s.listen(); err != nil {
		s.closed.Store(true) // nothing for Close to stop
		s.cancel()
		return err
	}
	if s.cfg.Mesh != nil {
		if err := s.startMesh(); err != nil {
			s.closed.Store(true)
			s.cancel()
			s.sock.Close()
			return err
		}
	}
	s.wg.Add(3 + len(Periods))
	go s.recvLoop()
	go s.schedLoop()
	go s.housekeeping()
	for i := range Periods {
		go s.tickLoop(i)
	}
	s.log.Info().Str("endpoint", s.ep).Msg("timer service started")
	return nil
}

// endpointFile keeps the endpoint the service bound last, so that after a
// restart it binds the same ephemeral port again and its clients find it.
const endpointFile = "timer.endpoint"

// listen binds the ROUTER: first on the endpoint of the previous run (when
// Endpoint asks for any port and it is free), else on Endpoint.
func (s *Service) listen() error {
	eps := []string{s.cfg.Endpoint}
	prefix, anyPort := strings.CutSuffix(s.cfg.Endpoint, ":0")
	if anyPort && s.cfg.DataDir != "" {
		b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, endpointFile))
		if prev := strings.TrimSpace(string(b)); err == nil && len(prev) < 256 && strings.HasPrefix(prev, prefix+":") {
			eps = []string{prev, s.cfg.Endpoint}
		}
	}
	var err error
	for _, ep := range eps {
		// zmq4: Recv has no timeout, so cancelling s.ctx (Close) is what
		// ends the receive loop.
		// The guarded transports screen each connection before zmq4's
		// accept loop (see internal/zmtpguard), with or without CURVE.
		opts := []zmq4.Option{zmq4.WithID(zmq4.SocketIdentity("timer"))}
		if s.sec != nil {
			opts = append(opts, zmq4.WithSecurity(s.sec))
		}
		sock := zmq4.NewRouter(s.ctx, opts...)
		if err = sock.Listen(zmtpguard.ListenEndpoint(ep, s.sec != nil)); err != nil {
			sock.Close()
			continue
		}
		s.sock, s.ep = sock, ep
		if a, ok := sock.Addr().(*net.TCPAddr); ok {
			s.ep = fmt.Sprintf("tcp://%s", a.String())
		}
		if s.cfg.DataDir != "" && anyPort {
			if werr := os.WriteFile(filepath.Join(s.cfg.DataDir, endpointFile), []byte(s.ep+"\n"), 0o644); werr != nil {
				s.log.Warn().Err(werr).Msg("timer: save endpoint")
			}
		}
		return nil
	}
	return fmt.Errorf("timer: listen on %s: %w", s.cfg.Endpoint, err)
}

// Endpoint returns the address clients dial, e.g. "tcp://127.0.0.1:41234".
func (s *Service) Endpoint() string { return s.ep }

// Close stops every goroutine of the service and saves its schedules.
func (s *Service) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if s.cancel == nil { // never started
		return nil
	}
	s.cancel()
	err := s.sock.Close()
	if errors.Is(err, net.ErrClosed) {
		// zmq4 closed the connections already when the context ended.
		err = nil
	}
	s.wg.Wait()
	if ferr := s.flush(); ferr != nil {
		err = ferr
	}
	return err
}

func (s *Service) recvLoop() {
	defer s.wg.Done()
	for {
		msg, err := s.sock.Recv()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn().Err(err).Msg("timer: receive")
			s.mu.Lock()
			s.stats.badMessages++
			s.mu.Unlock()
			continue
		}
		if len(msg.Frames) != 2 {
			s.bad(fmt.Errorf("%w: %d frames, want 2", ErrMalformed, len(msg.Frames)))
			continue
		}
		m, err := decodeMessage(msg.Frames[1])
		if err != nil {
			s.bad(err)
			continue
		}
		s.handle(string(msg.Frames[0]), m)
	}
}

func (s *Service) bad(err error) {
	s.mu.Lock()
	s.stats.badMessages++
	s.mu.Unlock()
	s.log.Debug().Err(err).Msg("timer: bad client message")
}

// handle serves one client message.
func (s *Service) handle(id string, m message) {
	now := time.Now()
	s.mu.Lock()
	c := s.clients[id]
	if c == nil {
		if len(s.clients) >= s.cfg.MaxClients {
			s.stats.rejected++
			s.mu.Unlock()
			s.reply(id, m.Req, nil, fmt.Errorf("timer: too many clients (max %d)", s.cfg.MaxClients))
			return
		}
		c = &client{id: id, subs: make([]bool, len(Periods)), watch: map[string]bool{}}
		s.clients[id] = c
	}
	c.lastSeen = now
	// An ack above what we sent comes from before a restart of the
	// service: ignore it, the client acks our new numbers soon.
	if m.Seq <= c.sent && m.Seq > c.acked {
		c.acked = m.Seq
	}
	var err error
	switch m.Type {
	case msgHeartbeat:
		// The answer tells the client its connection works: zmq4 gives
		// it no other sign, and a stalled connection never fails.
		c.sent++
		pong := message{Type: msgPong, Seq: c.sent}
		s.mu.Unlock()
		s.send(id, &pong)
		return
	case msgSub, msgUnsub:
		i := periodIndex(time.Duration(m.Period))
		if i < 0 {
			err = fmt.Errorf("%w: %v", ErrBadPeriod, time.Duration(m.Period))
			break
		}
		s.setSubLocked(c, i, m.Type == msgSub)
	case msgWatch, msgUnwatch:
		if m.Name != "*" {
			if err = validName(m.Name); err != nil {
				break
			}
		}
		if m.Type == msgWatch {
			if len(c.watch) >= 1024 && !c.watch[m.Name] {
				err = fmt.Errorf("timer: watch %q: too many watches", m.Name)
				break
			}
			c.watch[m.Name] = true
		} else {
			delete(c.watch, m.Name)
		}
	case msgSchedule, msgCancel, msgList:
		s.mu.Unlock()
		s.request(id, m)
		return
	default:
		err = fmt.Errorf("%w: unexpected %s from a client", ErrMalformed, m.Type)
		s.stats.badMessages++
	}
	s.mu.Unlock()
	if err != nil {
		s.reply(id, m.Req, nil, err)
	}
}

// request serves SCHEDULE, CANCEL and LIST.
func (s *Service) request(id string, m message) {
	var (
		out any
		err error
	)
	switch m.Type {
	case msgSchedule:
		var sp Spec
		if err = json.Unmarshal(m.Data, &sp); err != nil {
			err = fmt.Errorf("%w: %v", ErrBadSpec, err)
			break
		}
		err = s.Schedule(sp)
	case msgCancel:
		err = s.Cancel(m.Name)
	case msgList:
		out = s.List()
	}
	s.reply(id, m.Req, out, err)
}

// reply sends REPLY or ERROR for request req. Replies bypass the credit
// window: a client only gets them for what it asked.
func (s *Service) reply(id string, req uint32, out any, rerr error) {
	m := message{Type: msgReply, Req: req}
	if rerr != nil {
		m.Type, m.Data, m.N = msgError, []byte(rerr.Error()), errCode(rerr)
	} else if out != nil {
		b, err := json.Marshal(out)
		if err != nil {
			m.Type, m.Data = msgError, []byte(err.Error())
		} else {
			m.Data = b
		}
	}
	if len(m.Data) > MaxData {
		m.Type, m.Data = msgError, []byte("timer: reply too large")
	}
	s.mu.Lock()
	if c := s.clients[id]; c != nil {
		c.sent++
		m.Seq = c.sent
	}
	s.mu.Unlock()
	s.send(id, &m)
}

func (s *Service) send(id string, m *message) {
	b, err := m.encode()
	if err != nil {
		s.log.Error().Err(err).Msg("timer: encode")
		return
	}
	s.sendRaw(id, b)
}

func (s *Service) sendRaw(id string, b []byte) {
	// zmq4: ROUTER.Send holds one lock across the blocking TCP write to
	// the peer; the credit window keeps every client's unread bytes far
	// below its socket buffer, so the write never blocks for long.
	if err := s.sock.Send(zmq4.NewMsgFrom([]byte(id), b)); err != nil && s.ctx.Err() == nil {
		s.mu.Lock()
		s.stats.sendErrors++
		s.mu.Unlock()
	}
}

// housekeeping drops silent clients, saves changed schedules and probes
// the peers' clocks.
func (s *Service) housekeeping() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastProbe := time.Time{}
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			for id, c := range s.clients {
				if now.Sub(c.lastSeen) > s.cfg.ClientTimeout {
					for i := range c.subs {
						s.setSubLocked(c, i, false)
					}
					delete(s.clients, id)
				}
			}
			// A tombstone only has to outlive the partitions it may meet.
			for name, e := range s.entries {
				if e.rec.Deleted && now.Sub(time.Unix(0, e.rec.Version)) > tombstoneTTL {
					delete(s.entries, name)
					s.dirty = true
				}
			}
			s.mu.Unlock()
			if err := s.flush(); err != nil {
				s.log.Error().Err(err).Msg("timer: save schedules")
			}
			if s.cfg.Mesh != nil && now.Sub(lastProbe) >= s.cfg.ClockInterval {
				lastProbe = now
				s.probeClocks()
			}
		}
	}
}

// flush saves the schedules if they changed since the last save.
func (s *Service) flush() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	s.dirty = false
	recs := s.recordsLocked()
	s.mu.Unlock()
	if err := saveState(s.cfg.DataDir, recs); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return err
	}
	return nil
}

// recordsLocked copies the records, tombstones included.
func (s *Service) recordsLocked() []*record {
	recs := make([]*record, 0, len(s.entries))
	for _, e := range s.entries {
		r := *e.rec
		recs = append(recs, &r)
	}
	return recs
}
