package faults

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
)

// socket is one endpoint a logd serves, as a rogue finds it.
type socket struct {
	name    string // header or role
	network string // tcp or unix
	addr    string
	zmtp    bool   // a ZeroMQ socket (ZMTP 3), else logpub's framed TCP
	http    bool   // the dashboard's HTTP server
	prefix  []byte // the protocol's first bytes, for mutated messages
}

// rogueStats counts what a rogue tried on one socket.
type rogueStats struct {
	conns, messages, closedByServer int
	// stalled: connections that sent a few bytes (less than any greeting
	// or frame header) and then nothing, still open after stallWait.
	stalls, stalledOpen int
	honestGreeting      time.Duration // ZMTP: answer time of an honest peer during the stalls
}

// stallWait is how long a stalled connection is watched.
const stallWait = 15 * time.Second

// stall opens n connections that send 1..9 bytes and go quiet, and counts
// those logd has not closed after stallWait (slowloris).
// For a ZMTP socket it also reports how long an honest peer's greeting
// took to be answered meanwhile (-1: not within stallWait).
func stall(r *rand.Rand, s socket, n int) (tried, open int, answered time.Duration) {
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout(s.network, s.addr, 2*time.Second)
		if err != nil {
			continue
		}
		c.Write(garbage(r, nil, 9))
		conns = append(conns, c)
	}
	deadline := time.Now().Add(stallWait)
	if s.zmtp {
		// Meanwhile an honest peer greets: how long until it is answered?
		answered = -1
		if h, err := net.DialTimeout(s.network, s.addr, 2*time.Second); err == nil {
			start := time.Now()
			h.Write(zmtpGreeting())
			h.SetReadDeadline(deadline)
			if _, err := io.ReadFull(h, make([]byte, 64)); err == nil {
				answered = time.Since(start)
			}
			h.Close()
		}
	}
	for _, c := range conns {
		c.SetReadDeadline(deadline)
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			open++
		}
		c.Close()
	}
	return len(conns), open, answered
}

// sockets lists every socket logd l advertises (mesh headers, its
// mailbox) plus its local writer socket.
func sockets(t *testing.T, l *logd) []socket {
	t.Helper()
	r := l.waitUp(30 * time.Second)
	hostPort := func(ep string) string {
		ep = strings.TrimPrefix(ep, "tcp://")
		return strings.Replace(ep, "*", "127.0.0.1", 1)
	}
	ss := []socket{{name: "mailbox (ZRE)", network: "tcp", addr: hostPort(r.Self.Endpoint), zmtp: true, prefix: []byte{0xAA, 0xA1}}}
	for _, h := range []struct {
		key    string
		zmtp   bool
		prefix []byte
		http   bool
	}{
		{"X-LOGD-PUB", false, nil, false},
		{"X-TIMER", true, []byte("{"), false},
		{"X-FILEMQ", true, []byte{0xAA, 0xA3}, false},
		{"X-HARMONY", true, []byte{0xA5}, false},
		{"X-HTTP", false, nil, true},
	} {
		ep, ok := r.Self.Headers[h.key]
		if !ok {
			t.Logf("%s does not advertise %s", l.name, h.key)
			continue
		}
		ss = append(ss, socket{name: h.key, network: "tcp", addr: hostPort(ep), zmtp: h.zmtp, prefix: h.prefix, http: h.http})
	}
	ss = append(ss, socket{name: "writer (logpub)", network: "unix", addr: strings.TrimPrefix(l.writerEndpoint(), "ipc://")})
	return ss
}

// zmtpGreeting is a ZMTP 3.0 greeting with the NULL mechanism, as client.
func zmtpGreeting() []byte {
	g := make([]byte, 64)
	g[0], g[9], g[10], g[11] = 0xFF, 0x7F, 3, 0
	copy(g[12:], "NULL")
	return g
}

// zmtpReady is the READY command of a DEALER with the given identity.
func zmtpReady(id []byte) []byte {
	body := []byte{5}
	body = append(body, "READY"...)
	prop := func(k string, v []byte) {
		body = append(body, byte(len(k)))
		body = append(body, k...)
		body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
		body = append(body, v...)
	}
	prop("Socket-Type", []byte("DEALER"))
	prop("Identity", id)
	return append([]byte{0x04, byte(len(body))}, body...)
}

// zmtpMessage frames parts as one ZMTP message.
func zmtpMessage(parts ...[]byte) []byte {
	var b []byte
	for i, p := range parts {
		more := byte(0)
		if i < len(parts)-1 {
			more = 1
		}
		if len(p) < 256 {
			b = append(b, more, byte(len(p)))
		} else {
			b = append(b, more|2)
			b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
		}
		b = append(b, p...)
	}
	return b
}

// garbage returns a random body: pure noise, or the protocol's prefix
// followed by noise (a mutated message that passes the first check).
func garbage(r *rand.Rand, prefix []byte, max int) []byte {
	b := make([]byte, r.IntN(max)+1)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if len(prefix) > 0 && r.IntN(2) == 0 {
		copy(b, prefix)
		if len(b) > len(prefix) && prefix[0] == 0xAA {
			b[len(prefix)] = byte(r.IntN(12)) // a message id near the valid ones
		}
	}
	return b
}

// framedGarbage is logpub framing (4-byte length, type) around noise, or a
// length alone that is out of range or never followed by its body.
func framedGarbage(r *rand.Rand) []byte {
	switch r.IntN(4) {
	case 0:
		return binary.BigEndian.AppendUint32(nil, uint32(r.Uint32())) // huge or zero length
	case 1:
		return binary.BigEndian.AppendUint32(nil, 1<<20) // promises 1 MiB, sends nothing
	default:
		body := garbage(r, nil, 512)
		b := binary.BigEndian.AppendUint32(nil, uint32(len(body)+1))
		b = append(b, byte(r.IntN(8)))
		return append(b, body...)
	}
}

// httpGarbage is one HTTP/1.1 request, closing the connection after it:
// NDJSON ingest with random and mutated lines, a random path, a bad
// method or an oversized header.
func httpGarbage(r *rand.Rand, host string) []byte {
	var b strings.Builder
	switch r.IntN(4) {
	case 0, 1:
		var body strings.Builder
		for range r.IntN(20) + 1 {
			line := []byte(`{"level":"info","service":"rogue","message":"hello","n":1}`)
			for range r.IntN(4) {
				line[r.IntN(len(line))] = byte(r.Uint32())
			}
			if r.IntN(4) == 0 {
				line = garbage(r, nil, 200)
			}
			body.Write(line)
			body.WriteByte('\n')
		}
		fmt.Fprintf(&b, "POST /api/v1/logs HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			host, body.Len(), body.String())
	case 2:
		fmt.Fprintf(&b, "GET /api/v1/%x?since=%x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", garbage(r, nil, 20), garbage(r, nil, 8), host)
	default:
		fmt.Fprintf(&b, "%X / HTTP/1.1\r\nHost: %s\r\nX-Junk: %s\r\nConnection: close\r\n\r\n", garbage(r, nil, 6), host, strings.Repeat("j", r.IntN(2<<20)))
	}
	return []byte(b.String())
}

// attack opens rounds connections to s: half send raw noise, half speak
// the protocol's framing (ZMTP handshake, or logpub frames) around random
// and mutated bodies. It counts the connections the server closed.
func attack(r *rand.Rand, s socket, rounds, msgs int) rogueStats {
	var st rogueStats
	for i := range rounds {
		c, err := net.DialTimeout(s.network, s.addr, 2*time.Second)
		if err != nil {
			continue
		}
		st.conns++
		// Noise must be dropped at once; well-framed garbage may be read
		// and ignored (ZMTP) or wait for the first frame's deadline.
		c.SetDeadline(time.Now().Add(time.Duration(1+2*(1-i%2)) * time.Second))
		w := bufio.NewWriter(c)
		switch {
		case i%2 == 0: // raw noise, at least a greeting's length
			w.Write(append(garbage(r, nil, 64), garbage(r, nil, 4032)...))
			st.messages++
		case s.http:
			w.Write(httpGarbage(r, s.addr))
			st.messages++
		case s.zmtp:
			w.Write(zmtpGreeting())
			id := garbage(r, nil, 16)
			if r.IntN(2) == 0 {
				id = append([]byte{1}, id...) // looks like a ZRE peer's identity
			}
			w.Write(zmtpReady(id))
			for range msgs {
				parts := make([][]byte, r.IntN(3)+1)
				for k := range parts {
					parts[k] = garbage(r, s.prefix, 300)
				}
				w.Write(zmtpMessage(parts...))
				st.messages++
			}
		default:
			for range msgs {
				w.Write(framedGarbage(r))
				st.messages++
			}
		}
		w.Flush()
		// Dropped: the server closes (EOF or reset) before our deadline.
		_, err = io.Copy(io.Discard, c)
		var ne net.Error
		if err == nil || !(errors.As(err, &ne) && ne.Timeout()) {
			st.closedByServer++
		}
		c.Close()
	}
	return st
}

// beaconGarbage sends random and mutated UDP datagrams to the mesh's
// beacon port (loopback broadcast, where logds listen).
func beaconGarbage(t *testing.T, r *rand.Rand, port, n int) int {
	t.Helper()
	c, err := net.Dial("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := 0
	for range n {
		b := garbage(r, nil, 64)
		if r.IntN(2) == 0 && len(b) >= 4 {
			copy(b, "ZRE\x01") // a beacon header with a bad body
		}
		if _, err := c.Write(b); err == nil {
			sent++
		}
	}
	return sent
}

// rssKiB returns a process's resident set size.
func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			return strconv.Atoi(strings.Fields(line)[1])
		}
	}
	return 0, errors.New("no VmRSS")
}

// TestRoguePeer throws random and mutated input at every socket of a logd
// while an app logs into it and another logd collects its archives.
func TestRoguePeer(t *testing.T) {
	t.Parallel()
	port := meshtest.Config(t).BeaconPort
	collect := t.TempDir()
	a := newLogd(t, nil, port, "logd-target", "--rotate-size", "16KiB", "--ship-poll", "200ms")
	a.args = append(a.args, "--ship-to", a.captureDir())
	b := newLogd(t, nil, port, "logd-honest", "--collect", collect)
	ls := []*logd{a, b}
	for _, l := range ls {
		l.start()
		l.waitUp(60 * time.Second)
	}
	waitConverged(t, 60*time.Second, ls...)
	addTimers(t, a)
	waitTimers(t, ls...)
	targets := sockets(t, a)
	rss0, err := rssKiB(a.pid())
	if err != nil {
		t.Fatal(err)
	}

	app := newApp(t, a.writerEndpoint(), "honest")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var peak int
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				app.write(5, 0)
				time.Sleep(10 * time.Millisecond) // the app's pace
			}
		}
	}()
	go func() {
		defer wg.Done()
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if k, err := rssKiB(a.pid()); err == nil && k > peak {
					peak = k
				}
			}
		}
	}()

	rounds, msgs := pick(20, 400), pick(20, 50)
	results := make([]rogueStats, len(targets))
	var awg sync.WaitGroup
	for i, s := range targets {
		awg.Add(1)
		go func() {
			defer awg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 42))
			res := attack(r, s, rounds, msgs)
			res.stalls, res.stalledOpen, res.honestGreeting = stall(r, s, 5)
			results[i] = res
		}()
	}
	udp := beaconGarbage(t, rand.New(rand.NewPCG(7, 7)), port, pick(500, 20000))
	awg.Wait()
	close(stop)
	wg.Wait()

	// Honest traffic went on: the mesh holds, the app's events are all
	// captured, archives ship, timers fire; the rogue never became a peer.
	for _, l := range ls {
		if !l.running() {
			t.Fatalf("%s exited under bad input", l.name)
		}
	}
	waitConverged(t, 30*time.Second, ls...)
	for _, l := range ls {
		r, err := l.peers()
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Peers) != 1 {
			t.Errorf("%s lists %d peers after the attack: %+v", l.name, len(r.Peers), r.Peers)
		}
	}
	var shipped, inboxes int
	var why string
	waitFor(t, 60*time.Second, "archives shipped byte-identical", func() bool {
		var ok bool
		ok, shipped, why, inboxes = shippedIdentical(a.captureDir(), collect, a.name)
		return ok
	}, func() string { return "not identical: " + why })
	cl, nd := checkTimersSettled(t, ls, 3*time.Second)
	capt := readCapture(t, a.captureDir(), app.run)
	led := account(t, app, capt)
	hs, err := a.hubStats()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := a.timerSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	rss1, _ := rssKiB(a.pid())
	if peak > rss0+256<<10 {
		t.Errorf("RSS grew from %d KiB to a peak of %d KiB under bad input", rss0, peak)
	}

	var tried int
	var lines []string
	for i, s := range targets {
		st := results[i]
		tried += st.messages
		if st.conns == 0 {
			t.Errorf("%s (%s): no connection made", s.name, s.addr)
		}
		line := fmt.Sprintf("%s: %d connections, %d inputs, %d closed by logd, %d of %d stalled connections still open after %v",
			s.name, st.conns, st.messages, st.closedByServer, st.stalledOpen, st.stalls, stallWait)
		switch {
		case !s.zmtp:
		case st.honestGreeting < 0:
			line += ", an honest greeting meanwhile not answered"
		default:
			line += fmt.Sprintf(", an honest greeting meanwhile answered in %v", st.honestGreeting.Round(time.Millisecond))
		}
		lines = append(lines, line)
		// Raw noise is never a valid handshake: logd must drop it. zmq4
		// sockets handshake one connection at a time in their accept loop,
		// so under a long attack a few may wait past our 3 s (the soak
		// allows 2%).
		noise := (st.conns + 1) / 2
		if st.closedByServer < noise-noise/50 {
			t.Errorf("%s: logd closed %d of %d connections, fewer than the %d that sent raw noise", s.name, st.closedByServer, st.conns, noise)
		}
	}
	report(t, "%d inputs on %d sockets + %d UDP beacons; %s; hub bad frames %d, timer bad messages %d; RSS %d KiB before, peak %d KiB, after %d KiB; "+
		"honest app: %v; archives %d identical (%d inbox); timer: cluster %+v node %+v",
		tried, len(targets), udp, strings.Join(lines, "; "), hs.BadFrames, ts.BadMessages, rss0, peak, rss1, led, shipped, inboxes, cl, nd)
}
