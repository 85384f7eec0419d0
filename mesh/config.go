package mesh

import (
	"fmt"
	"os"
	"time"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/admission"
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

	// MaxMessageSize bounds one incoming ZRE message (all its frames). A
	// peer that sends more is disconnected and the message dropped
	// (counted). Default 16 MiB.
	MaxMessageSize int

	// MaxPendingPerSource bounds the mailbox and gossip connections of
	// one source address (IPv4, or IPv6 /64) that have not finished their
	// handshake; more are closed at once and counted in Stats.Shed, so
	// that one host opening connections in a loop cannot hold the
	// descriptors honest peers need. Default admission.DefaultMaxPending
	// (256). CURVE handshakes are limited to
	// admission.DefaultHandshakesPerSecond per address as well.
	MaxPendingPerSource int

	// SendQueue is how many messages may wait for one peer (its DEALER's
	// high-water mark, as Zyre's SNDHWM). Beyond it messages to that peer
	// are dropped (counted); the peer sees a sequence gap and resets us.
	// Default 10000.
	SendQueue int

	// Curve, when set, closes the mesh with CURVE (ZMTP-CURVE, CurveZMQ
	// RFC 26) as Zyre does when it has a certificate: beacons become
	// version 3 with our public key, HELLO carries X-PUBLICKEY, gossip
	// values are "endpoint|key", every mailbox connection is encrypted and
	// authenticated, and only peers whose key Curve.Authorize admits are
	// dialled or heard. Nodes without CURVE (and Pyre) cannot join such a
	// mesh, nor does such a node see them. Default nil: NULL security.
	Curve *Curve

	// EventBuffer is how many events may wait for a slow Events reader.
	// The node never blocks on its reader; beyond this many waiting
	// events, new ones are dropped, counted (Stats().EventsDropped) and
	// logged. Default 100000.
	EventBuffer int
}

// Defaults of the knobs added after the first release of Config; zero in a
// Config means "use the default".
const (
	DefaultMaxMessageSize = 16 << 20
	DefaultSendQueue      = 10000
	DefaultEventBuffer    = 100000
)

// DefaultConfig returns the LAN configuration: UDP beacons on port 5670 every
// second, evasive after 5 s, expired after 30 s, the hostname as name.
func DefaultConfig() Config {
	name, _ := os.Hostname()
	return Config{
		Name:           name,
		BeaconPort:     5670,
		BeaconInterval: time.Second,
		Bind:           "0.0.0.0",
		EvasiveTimeout: 5 * time.Second,
		ExpiredTimeout: 30 * time.Second,
		MaxMessageSize: DefaultMaxMessageSize,
		SendQueue:      DefaultSendQueue,
		EventBuffer:    DefaultEventBuffer,
		Logger:         zerolog.Nop(),
	}
}

// WANConfig returns a configuration for networks without UDP broadcast:
// no beacons, discovery through the Join seeds (and GossipBind on a seed),
// and longer timeouts for links with more latency.
func WANConfig() Config {
	c := DefaultConfig()
	c.BeaconPort = 0
	c.EvasiveTimeout = 10 * time.Second
	c.ExpiredTimeout = 60 * time.Second
	return c
}

// withDefaults fills the zero fields that have a default and checks the rest.
func (c Config) withDefaults() (Config, error) {
	def := DefaultConfig()
	if c.Name == "" {
		c.Name = def.Name
	}
	if len(c.Name) > 255 {
		return c, fmt.Errorf("mesh: name of %d bytes is longer than 255", len(c.Name))
	}
	if c.BeaconInterval <= 0 {
		c.BeaconInterval = def.BeaconInterval
	}
	if c.Bind == "" {
		c.Bind = def.Bind
	}
	if c.EvasiveTimeout <= 0 {
		c.EvasiveTimeout = def.EvasiveTimeout
	}
	if c.ExpiredTimeout <= 0 {
		c.ExpiredTimeout = def.ExpiredTimeout
	}
	if c.ExpiredTimeout <= c.EvasiveTimeout {
		return c, fmt.Errorf("mesh: expired timeout %v must be longer than evasive timeout %v", c.ExpiredTimeout, c.EvasiveTimeout)
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = def.MaxMessageSize
	}
	if c.SendQueue <= 0 {
		c.SendQueue = def.SendQueue
	}
	if c.MaxPendingPerSource <= 0 {
		c.MaxPendingPerSource = admission.DefaultMaxPending
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = def.EventBuffer
	}
	if c.BeaconPort < 0 || c.BeaconPort > 65535 || c.MailboxPort < 0 || c.MailboxPort > 65535 {
		return c, fmt.Errorf("mesh: port out of range (beacon %d, mailbox %d)", c.BeaconPort, c.MailboxPort)
	}
	if c.Curve != nil && c.Curve.Authorize == nil {
		return c, fmt.Errorf("mesh: Curve.Authorize is required (e.g. an AllowList's Authorize)")
	}
	for k := range c.Headers {
		if len(k) > 255 {
			return c, fmt.Errorf("mesh: header name %.20q... is longer than 255 bytes", k)
		}
	}
	for _, g := range c.Groups {
		if len(g) > 255 {
			return c, fmt.Errorf("mesh: group name %.20q... is longer than 255 bytes", g)
		}
	}
	return c, nil
}

// Curve is a node's CURVE identity and the peers it admits.
type Curve struct {
	// Keys is the node's long-term key pair (`logd keygen`).
	Keys curve.KeyPair
	// Authorize admits a peer's public key, e.g. AllowList.Authorize of
	// curve.LoadKeyDir. It is asked before dialling a peer and when a peer
	// connects. Required.
	Authorize curve.AuthorizeFunc
}
