package netns

import (
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// dialTime measures a TCP connect from host from to a listener on host to:
// one round trip, so it carries to's egress delay once.
func dialTime(t *testing.T, from, to *Host) time.Duration {
	t.Helper()
	var ln net.Listener
	if err := to.Do(func() (err error) {
		ln, err = net.Listen("tcp4", to.IP+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	best := time.Hour
	for range 3 {
		var d time.Duration
		if err := from.Do(func() error {
			start := time.Now()
			c, err := net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
			if err != nil {
				return err
			}
			d = time.Since(start)
			return c.Close()
		}); err != nil {
			t.Fatal(err)
		}
		best = min(best, d)
	}
	return best
}

func TestCableDelaysWhatTheHostSends(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) }) // runs after the cables close
	nw := NewCabled(t, 2)
	a, b := nw.Hosts[0], nw.Hosts[1]
	before := dialTime(t, a, b)
	b.Cable.SetDelay(200 * time.Millisecond)
	delayed := dialTime(t, a, b)
	b.Cable.SetDelay(0)
	t.Logf("connect a->b: %v plain, %v with 200 ms on b's egress", before, delayed)
	if delayed < 200*time.Millisecond {
		t.Fatalf("connect took %v with a 200 ms delay on b's egress", delayed)
	}
	if before > 100*time.Millisecond {
		t.Fatalf("connect took %v without delay", before)
	}
	sent, dropped := b.Cable.Stats()
	if sent == 0 || dropped != 0 {
		t.Fatalf("b's cable: sent %d, dropped %d", sent, dropped)
	}

	// Loss: a host that drops everything it sends cannot be reached.
	b.Cable.SetLoss(100)
	var ln net.Listener
	if err := b.Do(func() (err error) { ln, err = net.Listen("tcp4", b.IP+":0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := a.Do(func() error {
		c, err := net.DialTimeout("tcp4", ln.Addr().String(), 500*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	}); err == nil {
		t.Fatal("connected through a cable that drops every frame")
	}
	if _, d := b.Cable.Stats(); d == 0 {
		t.Fatal("no frame counted as dropped")
	}
}
