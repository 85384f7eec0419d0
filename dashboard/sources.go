package dashboard

import (
	"regexp"
	"time"

	"github.com/logmesh/logmesh/mesh"
)

// The dashboard reads the rest of logd only through the small interfaces of
// this file, so it can be wired to the real services (logpub hub, mesh node,
// timer service, FileMQ, Harmony) by thin adapters in cmd/logd.

// Levels are zerolog's level names, from the least to the most severe.
var Levels = []string{"trace", "debug", "info", "warn", "error", "fatal", "panic"}

// LevelRank returns the rank of a zerolog level name (trace = 0 ... panic = 6),
// and -1 for an unknown or empty name.
func LevelRank(level string) int {
	for i, l := range Levels {
		if l == level {
			return i
		}
	}
	return -1
}

// Event is one log event as a LogSource delivers it.
type Event struct {
	Time    time.Time // receive time, stamped by logd
	Node    string    // name of the node the event came from
	Service string    // service that logged it
	Level   string    // zerolog level name; "" when the line had none
	Seq     uint64    // per-source sequence number
	Line    []byte    // the zerolog JSON line, unchanged, without newline
}

// Filter selects events. Zero fields select everything.
type Filter struct {
	Level   string         // minimum level ("warn" selects warn, error, fatal, panic)
	Service string         // exact service name
	Node    string         // exact node name
	Regexp  *regexp.Regexp // matched against the raw line
}

// Match reports whether e passes the filter. Events with no or an unknown
// level pass a level filter only when it is empty.
func (f Filter) Match(e *Event) bool {
	if f.Level != "" && LevelRank(e.Level) < LevelRank(f.Level) {
		return false
	}
	if f.Service != "" && e.Service != f.Service {
		return false
	}
	if f.Node != "" && e.Node != f.Node {
		return false
	}
	if f.Regexp != nil && !f.Regexp.Match(e.Line) {
		return false
	}
	return true
}

// LevelStats counts events of one level.
type LevelStats struct {
	In      uint64 // received (from writers, the mesh or the HTTP bridge)
	Out     uint64 // delivered to subscribers, if the source counts by level
	Dropped uint64 // lost on the way (full buffers, slow subscribers), likewise
}

// LogStats is a snapshot of a LogSource's cumulative counters.
type LogStats struct {
	Levels   map[string]LevelStats // by zerolog level name ("none": no level)
	Nodes    map[string]uint64     // events received, by node name
	Rejected uint64                // malformed inputs refused
	// ShedPending and ShedHandshakes count the connections the hub closed
	// at once by its per-source limits (logpub.HubStats.Shed and
	// ShedHandshakes).
	ShedPending, ShedHandshakes uint64
	// Out and Dropped are the totals of a source that does not count them
	// by level (its LevelStats.Out and Dropped stay zero); /metrics then
	// shows them with level="all".
	Out, Dropped uint64
}

// LogSource is the log hub of logd as the dashboard needs it.
type LogSource interface {
	// Subscribe calls deliver with every later event that matches f (a
	// source may filter loosely or ignore Regexp: the dashboard applies f
	// again) until
	// cancel is called. deliver must not block and must not keep e.Line
	// after it returns; the source must not call it after cancel returns.
	Subscribe(f Filter, deliver func(e *Event)) (cancel func())
	// Ingest accepts one zerolog JSON line (without newline) for a service
	// through the same path as the zerolog writer.
	Ingest(service string, line []byte) error
	// Stats returns the cumulative counters.
	Stats() LogStats
}

// PeersSource lists the mesh peers; *mesh.Node implements it.
type PeersSource interface {
	Peers() []mesh.PeerInfo
}

// Tick is one tick of a wall-clock-aligned ticker: tick N fires at
// Unix epoch + N·period.
type Tick struct {
	N      uint64
	At     time.Time
	Missed uint64 // ticks skipped before this one (receiver was late)
}

// TickSource delivers wall-clock-aligned ticks, as the timer service does.
// The dashboard samples its graphs on each tick. WallTicker is the fallback.
type TickSource interface {
	// SubscribeTicks calls deliver on every tick of the given period until
	// cancel is called. deliver must not block.
	SubscribeTicks(period time.Duration, deliver func(Tick)) (cancel func())
}

// Schedule describes one named schedule or tick stream of the timer service.
type Schedule struct {
	Name   string    `json:"name"`
	Kind   string    `json:"kind"`            // "tick", "every", "cron", "at"
	Spec   string    `json:"spec"`            // "100ms", "*/5 * * * *", an RFC 3339 time...
	Scope  string    `json:"scope,omitempty"` // "node" or "cluster"
	Owner  string    `json:"owner,omitempty"` // node that fires it (cluster scope)
	Next   time.Time `json:"next,omitzero"`
	Last   time.Time `json:"last,omitzero"`
	Fired  uint64    `json:"fired"`
	Missed uint64    `json:"missed"`
}

// TimerStatus is the timer service's state as the dashboard shows it.
type TimerStatus struct {
	Schedules   []Schedule `json:"schedules"`
	TicksMissed uint64     `json:"ticks_missed"`
}

// TimersSource is the timer service as the dashboard needs it.
type TimersSource interface {
	TimerStatus() TimerStatus
}

// Transfer is one archive being (or having been) shipped over FileMQ.
type Transfer struct {
	Path  string `json:"path"`
	Peer  string `json:"peer"`
	Size  int64  `json:"size"`
	Sent  int64  `json:"sent"`
	Done  bool   `json:"done"`
	Error string `json:"error,omitempty"`
}

// ShippingStatus is FileMQ archive shipping as the dashboard shows it.
type ShippingStatus struct {
	Transfers    []Transfer `json:"transfers"`
	BytesShipped uint64     `json:"bytes_shipped"`
}

// ShippingSource is archive shipping as the dashboard needs it.
type ShippingSource interface {
	ShippingStatus() ShippingStatus
}

// Batch is one Harmony batch and its progress.
type Batch struct {
	ID      string    `json:"id"`
	Tasks   int       `json:"tasks"`
	Done    int       `json:"done"`
	Resent  int       `json:"resent"`
	Workers int       `json:"workers"`
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
	Error   string    `json:"error,omitempty"`
}

// BatchesSource is the Harmony pipeline as the dashboard needs it.
type BatchesSource interface {
	Batches() []Batch
}
