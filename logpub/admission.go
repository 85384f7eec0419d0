package logpub

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Default per-source limits of a Hub's TCP endpoints (HubConfig).
const (
	// Generous for a host whose apps all reconnect at once when logd
	// restarts: their HELLOs are read within milliseconds.
	DefaultMaxPendingPerSource = 256
	DefaultHandshakesPerSource = 50 // CURVE handshakes per second, burst twice that
)

// errShed: a connection closed at once by the per-source limits.
var errShed = errors.New("logpub: connection shed: its source is over its limit")

// admission limits what one source address can make the Hub do before it
// has said who it is. A connection that has not sent its HELLO or
// SUBSCRIBE holds a goroutine and a descriptor for up to the handshake
// deadline, and each CURVE handshake costs several curve25519 operations:
// a host opening connections in a loop would otherwise take the
// descriptors and the CPU that honest peers need. The limits are per
// source IP, so that one such host does not lock out the others; a unix
// socket (no IP, guarded by file permissions) is not limited.
type admission struct {
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

func newAdmission(maxPending int, rate float64) *admission {
	return &admission{maxPending: maxPending, rate: rate, burst: 2 * rate, src: make(map[netip.Addr]*sourceLimit), now: time.Now}
}

// sourceIP is the source c is limited as: its remote IPv4 address, or
// the /64 of its IPv6 address (one host usually holds a whole /64). ok is
// false for a unix socket.
func sourceIP(c net.Conn) (ip netip.Addr, ok bool) {
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

// enter counts a new connection from ip as pending, unless ip already has
// maxPending.
func (a *admission) enter(ip netip.Addr) bool {
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

// leave ends the pending state of a connection from ip (it identified
// itself, or closed).
func (a *admission) leave(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.src[ip]; s != nil && s.pending > 0 {
		s.pending--
	}
}

// handshake takes one of ip's CURVE handshake tokens, if it has one.
func (a *admission) handshake(ip netip.Addr) bool {
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

func (a *admission) refillLocked(s *sourceLimit) {
	now := a.now()
	s.tokens = min(a.burst, s.tokens+now.Sub(s.at).Seconds()*a.rate)
	s.at = now
}

// sweepLocked forgets the sources with nothing pending and a full bucket:
// they are as good as new.
func (a *admission) sweepLocked() {
	a.swept = a.now()
	for ip, s := range a.src {
		if a.refillLocked(s); s.pending == 0 && s.tokens >= a.burst {
			delete(a.src, ip)
		}
	}
}
