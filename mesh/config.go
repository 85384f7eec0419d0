package mesh

import (
	"time"

	"github.com/rs/zerolog"
)

// Config holds every knob of a Node. Start from DefaultConfig (a LAN with UDP
// broadcast) or WANConfig (seeds only, no beacons) and change what you need.
type Config struct {
	// Name is the node's human-readable name, sent in HELLO. Default: hostname.
	Name string

	// Headers are sent in HELLO and advertise the node's service endpoints
	// (X-LOGD-PUB, X-TIMER, X-FILEMQ, X-HTTP, ...). Set them before Start.
	Headers map[string]string

	// Groups are joined at Start, before the first HELLO goes out.
	Groups []string

	// BeaconPort is the UDP port of ZRE discovery beacons. Default 5670
	// (the IANA ZRE-DISC port, as in Zyre and Pyre). 0 disables beacons.
	BeaconPort int

	// BeaconInterval is the time between two beacons. Default 1 s.
	BeaconInterval time.Duration

	// Interface names the network interface whose address is advertised
	// and whose subnet broadcast address beacons are sent to. Default: the
	// first up, non-loopback IPv4 interface; loopback if there is none.
	Interface string

	// BroadcastAddr overrides the address beacons are sent to
	// (default: the interface's directed broadcast address, because Pyre
	// does not hear 255.255.255.255).
	BroadcastAddr string

	// Bind is the host the mailbox ROUTER binds to. Default "0.0.0.0".
	Bind string

	// MailboxPort is the mailbox's TCP port. Default 0 (an ephemeral port).
	MailboxPort int

	// Advertise overrides the host (or host:port) peers use to reach the
	// mailbox, for NAT or hosts with several addresses. Default: the
	// interface's address.
	Advertise string

	// GossipBind, when set (host:port), serves gossip on that address so
	// other nodes can use this node as a seed (--join).
	GossipBind string

	// Join lists gossip seeds (host:port) for networks that UDP broadcast
	// does not reach. A node learns the others' endpoints from its seeds.
	Join []string

	// EvasiveTimeout is how long a peer may stay silent before it is
	// pinged and reported Evasive. Default 5 s (as Zyre).
	EvasiveTimeout time.Duration

	// ExpiredTimeout is how long a peer may stay silent before it is
	// removed and reported Exit. Default 30 s (as Zyre).
	ExpiredTimeout time.Duration

	// Logger receives the node's own diagnostics. Default: zerolog.Nop().
	Logger zerolog.Logger
}
