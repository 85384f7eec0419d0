package timer

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/mesh"
)

// Config holds the knobs of a Service. Start from DefaultConfig.
type Config struct {
	// Endpoint is where the service's ROUTER binds. Default
	// "tcp://127.0.0.1:0" (an ephemeral loopback port); Endpoint() tells
	// the port chosen.
	Endpoint string

	// DataDir holds timer.json, the persisted schedules. Empty: none kept.
	DataDir string

	// Mesh, when set, replicates schedules to the other timer nodes and
	// elects the node that fires cluster-scope schedules. *mesh.Node fits.
	Mesh Mesh
	// Events are the mesh's events (ENTER, JOIN, SHOUT...) for this service.
	// Required with Mesh.
	Events <-chan mesh.Event
	// Group is the mesh group of timer nodes. Default "timer".
	Group string

	// ClientTimeout drops a client that has sent nothing for that long.
	// Clients heartbeat every second. Default 5 s.
	ClientTimeout time.Duration
	// Window is how many messages may be in flight to a client before it
	// acknowledges; beyond that ticks are dropped for it (it sees Missed)
	// so that a stuck client never blocks the socket. Default 256.
	Window int
	// MaxClients bounds the clients served at once. Default 10000.
	MaxClients int

	// LateAfter marks a fire late when it goes out that long after its
	// occurrence. Default 500 ms.
	LateAfter time.Duration
	// CatchUp is how far back a node that takes over cluster schedules
	// fires missed occurrences (late); older ones are skipped. Default 1 min.
	CatchUp time.Duration
	// Settle is how long a timer node must have been in the group before
	// it may fire cluster schedules, so that it has the others' state
	// first. Default 2 s.
	Settle time.Duration
	// ClockInterval is the period of clock-offset probes to timer peers.
	// Default 2 s.
	ClockInterval time.Duration

	// Keys, when set, closes the service's socket with CURVE: a client
	// must speak CURVE, know the service's public key (Snapshot.PublicKey)
	// and prove a key Authorize admits. NULL clients are refused (no
	// downgrade). Nil: an open socket.
	Keys *curve.KeyPair
	// Authorize admits a client's public key (e.g. a curve.AllowList's
	// Authorize). Required with Keys.
	Authorize curve.AuthorizeFunc

	// Logger receives the service's diagnostics. Default zerolog.Nop().
	Logger zerolog.Logger
}

// DefaultConfig returns a standalone, in-memory service on loopback.
func DefaultConfig() Config {
	return Config{
		Endpoint:      "tcp://127.0.0.1:0",
		Group:         "timer",
		ClientTimeout: 5 * time.Second,
		Window:        256,
		MaxClients:    10000,
		LateAfter:     500 * time.Millisecond,
		CatchUp:       time.Minute,
		Settle:        2 * time.Second,
		ClockInterval: 2 * time.Second,
		Logger:        zerolog.Nop(),
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.Endpoint == "" {
		c.Endpoint = d.Endpoint
	}
	if c.Group == "" {
		c.Group = d.Group
	}
	if c.ClientTimeout <= 0 {
		c.ClientTimeout = d.ClientTimeout
	}
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.MaxClients <= 0 {
		c.MaxClients = d.MaxClients
	}
	if c.LateAfter <= 0 {
		c.LateAfter = d.LateAfter
	}
	if c.CatchUp <= 0 {
		c.CatchUp = d.CatchUp
	}
	if c.Settle <= 0 {
		c.Settle = d.Settle
	}
	if c.ClockInterval <= 0 {
		c.ClockInterval = d.ClockInterval
	}
}
