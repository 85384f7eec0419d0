package dashboard

import (
	"time"

	"github.com/rs/zerolog"
)

// DefaultAddr is where the dashboard listens unless told otherwise: loopback
// only, so no token is needed.
const DefaultAddr = "127.0.0.1:7070"

// Config holds every knob of a Server. Start from DefaultConfig and set the
// sources; only Logs is required, a nil optional source shows as "not
// available" on the page and as an empty list in the API.
type Config struct {
	// Addr is the host:port to listen on. Default DefaultAddr. Binding to a
	// non-loopback address requires a bearer token (see Token).
	Addr string

	// Token is the bearer token clients must present (Authorization:
	// Bearer, or the page's cookie). When empty and Addr is not loopback,
	// New generates one (Server.Token). When set, it is always required.
	Token string

	// MaxBody is the largest accepted request body in bytes; larger POSTs
	// get 413. Default 8 MiB.
	MaxBody int64

	// ClientBuffer is how many events each stream client may have queued;
	// beyond it the client loses events (counted) and logd never waits.
	// Default 1024.
	ClientBuffer int

	// MaxClients bounds the open stream connections (tail, graph, status);
	// beyond it a new stream gets 503. Default 256.
	MaxClients int

	// MaxIngest bounds the POST bodies read at once, so memory stays
	// under MaxIngest × MaxBody; further requests wait their turn. Default 4.
	MaxIngest int

	// Heartbeat is the interval of SSE comment heartbeats that keep idle
	// connections (and proxies) alive. Default 15 s.
	Heartbeat time.Duration

	// GraphPeriod is the sampling period of the live graphs. Default 100 ms.
	GraphPeriod time.Duration

	// GraphWindow is the span each rate is measured over, sliding with
	// every sample. Default 1 s.
	GraphWindow time.Duration

	// GraphPoints is how many samples the graphs keep (a new page gets
	// them all at once). Default 600 (one minute at 100 ms).
	GraphPoints int

	// StatusPeriod is how often peers, timers, shipping and batches are
	// pushed to the page. Default 1 s.
	StatusPeriod time.Duration

	// DefaultService is the service of ingested lines when the request
	// does not name one (?service=). Default "http".
	DefaultService string

	// Logs is the log hub (required).
	Logs LogSource
	// Ticks paces the graphs; default a WallTicker.
	Ticks TickSource
	// Peers, Timers, Shipping and Batches are optional.
	Peers    PeersSource
	Timers   TimersSource
	Shipping ShippingSource
	Batches  BatchesSource

	// Logger receives the server's own diagnostics. Default zerolog.Nop().
	Logger zerolog.Logger
}

// DefaultConfig returns a Config with every default filled in and no sources.
func DefaultConfig() Config {
	return Config{
		Addr:           DefaultAddr,
		MaxBody:        8 << 20,
		ClientBuffer:   1024,
		MaxClients:     256,
		MaxIngest:      4,
		Heartbeat:      15 * time.Second,
		GraphPeriod:    100 * time.Millisecond,
		GraphWindow:    time.Second,
		GraphPoints:    600,
		StatusPeriod:   time.Second,
		DefaultService: "http",
		Logger:         zerolog.Nop(),
	}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	if c.MaxBody <= 0 {
		c.MaxBody = d.MaxBody
	}
	if c.ClientBuffer <= 0 {
		c.ClientBuffer = d.ClientBuffer
	}
	if c.MaxClients <= 0 {
		c.MaxClients = d.MaxClients
	}
	if c.MaxIngest <= 0 {
		c.MaxIngest = d.MaxIngest
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = d.Heartbeat
	}
	if c.GraphPeriod <= 0 {
		c.GraphPeriod = d.GraphPeriod
	}
	if c.GraphWindow <= 0 {
		c.GraphWindow = d.GraphWindow
	}
	if c.GraphPoints <= 0 {
		c.GraphPoints = d.GraphPoints
	}
	if c.StatusPeriod <= 0 {
		c.StatusPeriod = d.StatusPeriod
	}
	if c.DefaultService == "" {
		c.DefaultService = d.DefaultService
	}
	return c
}
