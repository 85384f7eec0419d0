package mesh

import (
	"time"

	"github.com/google/uuid"
)

// EventType says what happened on the mesh.
type EventType int

// The events a Node reports on its Events channel, as Zyre does.
const (
	EventEnter   EventType = iota + 1 // a peer said HELLO
	EventExit                         // a peer left or expired
	EventJoin                         // a peer joined a group
	EventLeave                        // a peer left a group
	EventShout                        // a peer shouted to a group we are in
	EventWhisper                      // a peer whispered to us
	EventEvasive                      // a peer has been silent past the evasive timeout
	EventSilent                       // a peer stayed silent after a PING
	EventStop                         // the node stopped; the channel closes next
)

var eventNames = [...]string{"", "ENTER", "EXIT", "JOIN", "LEAVE", "SHOUT", "WHISPER", "EVASIVE", "SILENT", "STOP"}

// String returns the Zyre name of the event type ("ENTER", "SHOUT", ...).
func (t EventType) String() string {
	if t > 0 && int(t) < len(eventNames) {
		return eventNames[t]
	}
	return "UNKNOWN"
}

// Event is one thing that happened on the mesh. Fields that do not apply to
// the event's type are zero.
type Event struct {
	Type     EventType
	Peer     uuid.UUID         // the peer concerned
	Name     string            // the peer's name
	Endpoint string            // Enter: the peer's mailbox endpoint
	Headers  map[string]string // Enter: the peer's HELLO headers
	Group    string            // Join, Leave, Shout
	Frames   [][]byte          // Shout, Whisper: the message
}

// PeerInfo describes a peer as the node knows it now.
type PeerInfo struct {
	ID       uuid.UUID         `json:"id"`
	Name     string            `json:"name"`
	Endpoint string            `json:"endpoint"`
	Headers  map[string]string `json:"headers,omitempty"`
	Groups   []string          `json:"groups,omitempty"`
	LastSeen time.Time         `json:"last_seen"`
}
