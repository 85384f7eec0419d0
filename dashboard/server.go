package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

//go:embed static
var staticFS embed.FS

// ErrClosed is returned by Start on a closed Server.
var ErrClosed = errors.New("dashboard: closed")

// ErrNoLogSource is returned by New when Config.Logs is nil.
var ErrNoLogSource = errors.New("dashboard: Config.Logs is required")

// Server serves the dashboard page, its SSE streams, the HTTP bridge and
// /metrics. Create it with New, start it with Start, stop it with Close.
type Server struct {
	cfg    Config
	log    zerolog.Logger
	token  string
	mux    *http.ServeMux
	graph  *graph
	reg    *prometheus.Registry
	ctx    context.Context // cancelled by Close; parent of every request
	cancel context.CancelFunc
	ingest chan struct{} // one token per POST body being read

	// counters of the server's own work, exported on /metrics
	clients        atomic.Int64  // open stream connections
	clientsRefused atomic.Uint64 // streams refused with 503 (MaxClients)
	clientDropped  atomic.Uint64 // events lost by slow stream clients
	linesAccepted  atomic.Uint64 // NDJSON lines ingested
	linesRejected  atomic.Uint64 // malformed NDJSON lines
	bodiesTooLarge atomic.Uint64 // requests refused with 413
	unauthorized   atomic.Uint64 // requests refused with 401
	forbidden      atomic.Uint64 // requests refused with 403 (foreign Host or Origin)

	mu       sync.Mutex
	started  bool
	closed   bool
	srv      *http.Server
	ln       net.Listener
	stopTick func()
	wg       sync.WaitGroup
}

// New checks cfg, fills its defaults and returns a Server that is not yet
// listening. When Addr is not loopback and no Token is set, New generates a
// token; read it with Token and show it to the user.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.Logs == nil {
		return nil, ErrNoLogSource
	}
	if cfg.Ticks == nil {
		cfg.Ticks = WallTicker{}
	}
	token := cfg.Token
	if token == "" {
		loop, err := isLoopbackAddr(cfg.Addr)
		if err != nil {
			return nil, err
		}
		if !loop {
			if token, err = generateToken(); err != nil {
				return nil, err
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger,
		token:  token,
		mux:    http.NewServeMux(),
		graph:  newGraph(cfg.GraphPoints, cfg.ClientBuffer, cfg.GraphWindow),
		reg:    prometheus.NewRegistry(),
		ctx:    ctx,
		cancel: cancel,
		ingest: make(chan struct{}, cfg.MaxIngest),
	}
	if err := s.reg.Register(&collector{s: s}); err != nil {
		cancel()
		return nil, fmt.Errorf("dashboard: register metrics: %w", err)
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	static, _ := fs.Sub(staticFS, "static") // cannot fail: "static" is embedded
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /{$}", s.handleIndex)
	s.mux.HandleFunc("POST /api/v1/logs", s.handleIngest)
	s.mux.HandleFunc("GET /api/v1/stream", s.handleStream)
	s.mux.HandleFunc("GET /api/v1/graph", s.handleGraph)
	s.mux.HandleFunc("GET /api/v1/status", s.handleStatus)
	s.mux.HandleFunc("GET /api/v1/peers", s.jsonHandler(func() any { return s.peers() }))
	s.mux.HandleFunc("GET /api/v1/timers", s.jsonHandler(func() any { return s.timers() }))
	s.mux.HandleFunc("GET /api/v1/shipping", s.jsonHandler(func() any { return s.shipping() }))
	s.mux.HandleFunc("GET /api/v1/batches", s.jsonHandler(func() any { return s.batches() }))
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
}

// Handler returns the dashboard's HTTP handler, token check included, for
// callers that serve it themselves (Start serves it on Config.Addr). Streams
// end when the Server is closed; the graphs sample only after Start.
func (s *Server) Handler() http.Handler { return s.authorize(s.mux) }

// Token returns the bearer token clients must present, or "" when none is
// needed (loopback bind without a configured token).
func (s *Server) Token() string { return s.token }

// Registry returns the Prometheus registry served on /metrics, so logd can
// add its own collectors.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Start listens on Config.Addr and serves in the background until Close.
// It returns once the listener is bound (see Addr). ctx bounds only the
// bind itself.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.started {
		return errors.New("dashboard: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dashboard: listen on %s: %w", s.cfg.Addr, err)
	}
	s.started, s.ln = true, ln
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		ErrorLog:          nil,
	}
	s.startGraph()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("dashboard: serve")
		}
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Bool("token_required", s.token != "").Msg("dashboard: listening")
	return nil
}

// startGraph subscribes the graph sampler to the tick source.
func (s *Server) startGraph() {
	ticks := make(chan Tick, 1)
	cancel := s.cfg.Ticks.SubscribeTicks(s.cfg.GraphPeriod, func(t Tick) {
		select { // never block the tick source: a late sample is skipped
		case ticks <- t:
		default:
		}
	})
	s.stopTick = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.ctx.Done():
				return
			case t := <-ticks:
				s.graph.sample(t.At, s.cfg.Logs.Stats())
			}
		}
	}()
}

// Addr returns the address the server listens on ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL returns the page's URL, with the token as a query parameter when one
// is needed (the page then keeps it in a cookie).
func (s *Server) URL() string {
	u := "http://" + s.Addr() + "/"
	if s.token != "" {
		u += "?token=" + s.token
	}
	return u
}

// Close ends every stream, stops the listener and every goroutine of the
// server, and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv, stopTick := s.srv, s.stopTick
	s.mu.Unlock()

	s.cancel() // ends streaming handlers: their contexts derive from s.ctx
	var err error
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err = srv.Shutdown(ctx); err != nil {
			err = srv.Close() // a client that does not read: cut it off
		}
		cancel()
	}
	if stopTick != nil {
		stopTick()
	}
	s.wg.Wait()
	s.graph.close()
	return err
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	page, err := staticFS.ReadFile("static/index.html")
	if err != nil {
		http.Error(w, "page missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(page)
}

func (s *Server) jsonHandler(get func() any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, get())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// addClient counts a new stream connection, or answers 503 when there are
// MaxClients already. The caller calls the returned func when it ends.
func (s *Server) addClient(w http.ResponseWriter) (done func(), ok bool) {
	if s.clients.Add(1) > int64(s.cfg.MaxClients) {
		s.clients.Add(-1)
		s.clientsRefused.Add(1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, fmt.Sprintf("dashboard: %d streams open already", s.cfg.MaxClients), http.StatusServiceUnavailable)
		return nil, false
	}
	return func() { s.clients.Add(-1) }, true
}
