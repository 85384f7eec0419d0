package admission

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// fakeAddrConn is a net.Conn with a given remote address.
type fakeAddrConn struct {
	net.Conn
	remote net.Addr
}

func (c fakeAddrConn) RemoteAddr() net.Addr { return c.remote }

func TestSourcesAndLimits(t *testing.T) {
	t.Parallel()
	ipOf := func(addr net.Addr) string {
		ip, ok := Source(fakeAddrConn{remote: addr})
		if !ok {
			return "none"
		}
		return ip.String()
	}
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 5}, "10.1.2.3"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 5}, "10.1.2.3"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), Port: 5}, "2001:db8:1:2::"},
		{&net.UnixAddr{Name: "/run/logd.sock", Net: "unix"}, "none"},
	} {
		if got := ipOf(tc.addr); got != tc.want {
			t.Errorf("source of %v = %s, want %s", tc.addr, got, tc.want)
		}
	}

	now := time.Unix(1000, 0)
	a := New(2, 1) // 2 pending, 1 handshake/s, burst 2
	a.now = func() time.Time { return now }
	ip := netip.MustParseAddr("10.0.0.1")
	if !a.Enter(ip) || !a.Enter(ip) || a.Enter(ip) {
		t.Fatal("want 2 pending connections admitted, the third refused")
	}
	if !a.Handshake(ip) || !a.Handshake(ip) || a.Handshake(ip) {
		t.Fatal("want a burst of 2 handshakes, the third refused")
	}
	now = now.Add(1500 * time.Millisecond)
	if !a.Handshake(ip) || a.Handshake(ip) {
		t.Fatal("want 1 handshake back after 1.5 s at 1/s")
	}
	a.Leave(ip)
	if !a.Enter(ip) {
		t.Fatal("a slot freed by leave was not reused")
	}
	if a.Handshake(netip.MustParseAddr("10.0.0.9")) {
		t.Fatal("a handshake from a source that never entered was allowed")
	}

	// The table forgets idle sources and refuses new ones past its bound.
	a.Leave(ip) // one connection of ip still pending: it is not idle
	now = now.Add(10 * time.Second)
	for i := 0; len(a.src) < maxSources; i++ {
		a.Enter(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))
	}
	now = now.Add(500 * time.Millisecond) // under a second since the sweep
	if a.Enter(netip.MustParseAddr("10.2.0.1")) {
		t.Fatal("a new source admitted past maxSources")
	}
	if _, ok := a.src[ip]; !ok {
		t.Fatal("a source with a pending connection was forgotten")
	}
	now = now.Add(time.Second)
	for ip := range a.src {
		a.src[ip].pending = 0 // all their connections identified
	}
	if !a.Enter(netip.MustParseAddr("10.2.0.1")) || len(a.src) != 1 {
		t.Fatalf("after a sweep: %d sources, want only the new one", len(a.src))
	}
}

// Admit and HandshakeFor take a connection: a unix socket is never limited.
func TestAdmitConn(t *testing.T) {
	t.Parallel()
	a := New(1, 0.5) // 1 pending, a burst of 1 handshake
	tcp := fakeAddrConn{remote: &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 1}}
	unix := fakeAddrConn{remote: &net.UnixAddr{Name: "/run/x.sock", Net: "unix"}}
	release, ok := a.Admit(tcp)
	if !ok {
		t.Fatal("first connection refused")
	}
	if _, ok := a.Admit(tcp); ok {
		t.Fatal("second pending connection admitted over a limit of 1")
	}
	release()
	release() // idempotent: must not free a second slot
	r2, ok := a.Admit(tcp)
	if !ok {
		t.Fatal("connection refused after release")
	}
	if _, ok := a.Admit(tcp); ok {
		t.Fatal("a double release freed two slots")
	}
	r2()
	for i := 0; i < 3; i++ {
		if r, ok := a.Admit(unix); !ok {
			t.Fatal("a unix socket was refused")
		} else {
			r()
		}
	}
	if !a.HandshakeFor(tcp) || a.HandshakeFor(tcp) {
		t.Fatal("want a burst of one handshake")
	}
	if !a.HandshakeFor(unix) || !a.HandshakeFor(unix) {
		t.Fatal("a unix socket was limited")
	}
}
