package filemq

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/zmtpguard"
)

// ErrClosed is returned by calls on a closed Server or Client.
var ErrClosed = errors.New("filemq: closed")

// Server publishes directory trees to FILEMQ clients over a ROUTER socket.
type Server struct {
	cfg    ServerConfig
	log    zerolog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	in       chan zmq4.Msg // from the reader goroutine
	changes  chan []change // from the scanner goroutine
	mounts   chan mount    // to the scanner
	announce chan string   // to the scanner
	statsReq chan chan ServerStats

	malformed atomic.Uint64
	restarts  atomic.Uint64
	sec       *curve.Security     // nil: an open server
	guard     *zmtpguard.Counters // connections the transport refused

	sockMu    sync.Mutex
	sock      zmq4.Socket // replaced when a stalled write forces a restart
	endpoint  string      // bound endpoint, with the real port
	closeOnce sync.Once

	// Owned by the loop goroutine.
	files   map[string]fileInfo
	clients map[string]*peer
	buf     []byte
	chunk   []byte
}

// NewServer binds the ROUTER and starts the server's goroutines.
func NewServer(cfg ServerConfig) (*Server, error) {
	def := DefaultServerConfig()
	if cfg.Endpoint == "" {
		cfg.Endpoint = def.Endpoint
	}
	if cfg.ChunkSize <= 0 || cfg.ChunkSize > 16<<20 {
		cfg.ChunkSize = def.ChunkSize
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = def.PollInterval
	}
	if cfg.ClientTimeout <= 0 {
		cfg.ClientTimeout = def.ClientTimeout
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = def.SendTimeout
	}
	var sec *curve.Security
	if cfg.Keys != nil {
		if cfg.Authorize == nil {
			return nil, errors.New("filemq: server: Keys without Authorize")
		}
		sec = curve.NewServer(*cfg.Keys, cfg.Authorize, curve.WithLogger(cfg.Logger))
	}
	guard := new(zmtpguard.Counters)
	ctx, cancel := context.WithCancel(zmtpguard.WithCounters(cfg.Logger.WithContext(context.Background()), guard))
	sock, err := bindRouter(ctx, cfg.Endpoint, sec)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, sock: sock, ctx: ctx, cancel: cancel, endpoint: boundEndpoint(sock, cfg.Endpoint),
		sec: sec, guard: guard,
		in: make(chan zmq4.Msg, 64), changes: make(chan []change, 4),
		mounts: make(chan mount), announce: make(chan string, 64),
		statsReq: make(chan chan ServerStats),
		files:    map[string]fileInfo{}, clients: map[string]*peer{},
	}
	s.wg.Add(3)
	go s.readLoop(sock)
	go s.scanLoop()
	go s.loop()
	return s, nil
}

// bindRouter binds the server's ROUTER; with sec, closed with CURVE. The
// guarded transports screen each connection before zmq4's accept loop
// (see internal/zmtpguard), with or without CURVE.
func bindRouter(ctx context.Context, endpoint string, sec *curve.Security) (zmq4.Socket, error) {
	opts := []zmq4.Option{zmq4.WithLogger(discardStdLogger())}
	if sec != nil {
		opts = append(opts, zmq4.WithSecurity(sec))
	}
	sock := zmq4.NewRouter(ctx, opts...)
	if err := sock.Listen(zmtpguard.ListenEndpoint(endpoint, sec != nil)); err != nil {
		sock.Close()
		return nil, fmt.Errorf("filemq: bind %s: %w", endpoint, err)
	}
	return sock, nil
}

func boundEndpoint(sock zmq4.Socket, configured string) string {
	if a, ok := sock.Addr().(*net.TCPAddr); ok {
		return fmt.Sprintf("tcp://%s", net.JoinHostPort(a.IP.String(), strconv.Itoa(a.Port)))
	}
	return configured
}

// Endpoint returns the bound endpoint, with the real port.
func (s *Server) Endpoint() string { return s.endpoint }

// Publish makes the tree under dir available under the virtual path alias
// ("/" or "/logs", ...). Files already there are sent to resyncing clients.
func (s *Server) Publish(dir, alias string) error {
	if !validAlias(alias) {
		return fmt.Errorf("filemq: publish %s: alias %q must be a clean path starting with /", dir, alias)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("filemq: publish %s: %w", dir, err)
	}
	select {
	case s.mounts <- mount{dir: abs, alias: alias}:
		return nil
	case <-s.ctx.Done():
		return ErrClosed
	}
}

// Announce publishes the file at path (inside a published tree) at once,
// without waiting for it to look stable. Use it for files known complete,
// such as rotated archives.
func (s *Server) Announce(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("filemq: announce %s: %w", path, err)
	}
	select {
	case s.announce <- abs:
		return nil
	case <-s.ctx.Done():
		return ErrClosed
	}
}

// Close stops the server and every goroutine it started.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.sockMu.Lock()
		s.sock.Close()
		s.sockMu.Unlock()
		s.wg.Wait()
	})
	return nil
}

func (s *Server) readLoop(sock zmq4.Socket) {
	defer s.wg.Done()
	for {
		msg, err := sock.Recv()
		if err != nil {
			drainClosed(sock)
			return
		}
		select {
		case s.in <- msg:
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Server) scanLoop() {
	defer s.wg.Done()
	sc := newScanner(s.cfg)
	tick := time.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	force := map[string]bool{}
	for {
		select {
		case m := <-s.mounts:
			sc.mounts = append(sc.mounts, m)
			// A new mount's existing files are published at once: they are
			// the resync set (the reference server never sends them).
			if err := filepath.WalkDir(m.dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return nil
				}
				if fi, err := d.Info(); err == nil && time.Since(fi.ModTime()) >= s.cfg.StableAge {
					force[p] = true
				}
				return nil
			}); err != nil {
				s.log.Warn().Err(err).Str("dir", m.dir).Msg("filemq: walk published tree")
			}
		case p := <-s.announce:
			force[p] = true
		case <-tick.C:
		case <-s.ctx.Done():
			return
		}
		// Gather queued announcements so a burst costs one scan.
	drain:
		for {
			select {
			case p := <-s.announce:
				force[p] = true
			default:
				break drain
			}
		}
		ch, err := sc.scan(s.ctx, force)
		if err != nil && s.ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("filemq: scan")
		}
		clear(force)
		if len(ch) == 0 {
			continue
		}
		select {
		case s.changes <- ch:
		case <-s.ctx.Done():
			return
		}
	}
}
