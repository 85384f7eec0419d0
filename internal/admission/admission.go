// Package admission limits what one source address can make a server do
// before it has identified itself: connections still in their handshake,
// each holding a goroutine and a descriptor until the handshake deadline,
// and CURVE handshakes, each costing several curve25519 operations. A host
// opening connections in a loop would otherwise take the descriptors and
// the CPU that honest peers need. The limits are per source (an IPv4
// address, or an IPv6 /64, which one host usually holds), so that one such
// host does not lock out the others; a unix socket (no address, guarded by
// file permissions) is not limited.
package admission

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Defaults for a server's limits.
const (
	// DefaultMaxPending is generous for a host whose clients all
	// reconnect at once when the server restarts: they identify
	// themselves within milliseconds.
	DefaultMaxPending = 256
	// DefaultHandshakesPerSecond is CURVE handshakes per source per
	// second (bursts of twice that): a few per cent of a core each.
	DefaultHandshakesPerSecond = 50
)

// Table holds the per-source state of one server. Its methods are safe for
// concurrent use.
type Table struct {
	maxPending int
	rate       float64 // handshake tokens per second
	burst      float64

	mu    sync.Mutex
	src   map[netip.Addr]*sourceLimit
	swept time.Time
	now   func() time.Time
}

// The table of sources is swept of idle ones when it reaches
// sweepSources, at most once a second; past maxSources (a flood from that
// many addresses at once) new sources are refused until a sweep.
const (
	sweepSources = 4096
	maxSources   = 16384
)

type sourceLimit struct {
	pending int       // connections not yet identified
	tokens  float64   // CURVE handshakes it may start now
	at      time.Time // when tokens was last brought up to date
}

// New returns a Table that admits maxPending unidentified connections per
// source and rate CURVE handshakes per second per source, in bursts of
// twice that.
func New(maxPending int, rate float64) *Table {
	return &Table{maxPending: maxPending, rate: rate, burst: 2 * rate, src: make(map[netip.Addr]*sourceLimit), now: time.Now}
}

// Source is the source c is limited as: its remote IPv4 address, or
// the /64 of its IPv6 address (one host usually holds a whole /64). ok is
// false for a unix socket.
func Source(c net.Conn) (ip netip.Addr, ok bool) {
	ta, isTCP := c.RemoteAddr().(*net.TCPAddr)
	if !isTCP {
		return netip.Addr{}, false
	}
	if ip, ok = netip.AddrFromSlice(ta.IP); !ok {
		return ip, false
	}
	if ip = ip.Unmap(); ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip, true
}

// Enter counts a new connection from ip as pending, unless ip already has
// maxPending (or the table is full of sources).
func (a *Table) Enter(ip netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.src[ip]
	if s == nil {
		if len(a.src) >= sweepSources && a.now().Sub(a.swept) >= time.Second {
			a.sweepLocked()
		}
		if len(a.src) >= maxSources {
			return false
		}
		s = &sourceLimit{tokens: a.burst, at: a.now()}
		a.src[ip] = s
	}
	if s.pending >= a.maxPending {
		return false
	}
	s.pending++
	return true
}

// Leave ends the pending state of a connection from ip (it identified
// itself, or closed).
func (a *Table) Leave(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.src[ip]; s != nil && s.pending > 0 {
		s.pending--
	}
}

// Handshake takes one of ip's CURVE handshake tokens, if it has one.
func (a *Table) Handshake(ip netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.src[ip]
	if s == nil { // not entered: a caller's mistake, refuse
		return false
	}
	a.refillLocked(s)
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

func (a *Table) refillLocked(s *sourceLimit) {
	now := a.now()
	s.tokens = min(a.burst, s.tokens+now.Sub(s.at).Seconds()*a.rate)
	s.at = now
}

// sweepLocked forgets the sources with nothing pending and a full bucket:
// they are as good as new.
func (a *Table) sweepLocked() {
	a.swept = a.now()
	for ip, s := range a.src {
		if a.refillLocked(s); s.pending == 0 && s.tokens >= a.burst {
			delete(a.src, ip)
		}
	}
}

// Admit is Enter for connection c: ok is false if c must be shed, and
// release (idempotent) ends its pending state. A unix socket is always
// admitted, with a release that does nothing.
func (a *Table) Admit(c net.Conn) (release func(), ok bool) {
	ip, isIP := Source(c)
	if !isIP {
		return func() {}, true
	}
	if !a.Enter(ip) {
		return nil, false
	}
	return sync.OnceFunc(func() { a.Leave(ip) }), true
}

// HandshakeFor is Handshake for connection c; a unix socket always may.
func (a *Table) HandshakeFor(c net.Conn) bool {
	ip, isIP := Source(c)
	return !isIP || a.Handshake(ip)
}
