package faults

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/internal/netns"
	"github.com/logmesh/logmesh/logpub"
)

// cluster3 starts three logds on three namespace hosts: a ships its
// capture archives, b collects them, c is a plain node. With cabled, the
// hosts' links are netns Cables, which can delay traffic without netem.
func cluster3(t *testing.T, cabled bool) (*netns.Net, []*logd, string) {
	t.Helper()
	var lan *netns.Net
	if cabled {
		lan = netns.NewCabled(t, 3)
	} else {
		lan = netns.New(t, 3)
	}
	port := meshtest.Config(t).BeaconPort
	collect := t.TempDir()
	a := newLogd(t, lan.Hosts[0], port, "logd-a", "--rotate-size", "16KiB", "--ship-poll", "200ms")
	a.args = append(a.args, "--ship-to", a.captureDir())
	b := newLogd(t, lan.Hosts[1], port, "logd-b", "--collect", collect)
	c := newLogd(t, lan.Hosts[2], port, "logd-c")
	ls := []*logd{a, b, c}
	for _, l := range ls {
		l.start()
	}
	for _, l := range ls {
		l.waitUp(60 * time.Second)
	}
	waitConverged(t, 60*time.Second, ls...)
	return lan, ls, collect
}

// report logs one line for RELIABILITY.md.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("FIGURES %s: %s", t.Name(), fmt.Sprintf(format, args...))
}

// TestLossAndDelay runs the mesh, a live subscriber on another host,
// archive shipping and timers through 5% packet loss and 200 ms delay on
// every host's link.
func TestLossAndDelay(t *testing.T) {
	t.Parallel()
	// Without netem, the delay is made by the hosts' cables.
	lan, ls, collect := cluster3(t, netemAvailable(t) != nil)
	a := ls[0]
	addTimers(t, a)
	waitTimers(t, ls...)
	live := followFrom(t, lan.Hosts[1], pubEndpoint(t, a), "loss")

	var how string
	for _, h := range lan.Hosts {
		how = impair(t, h, 5, 200*time.Millisecond)
	}
	// A TCP connect from b to a crosses both hosts' egress once: at least
	// 400 ms if the delay is in effect (a lost SYN only adds to it).
	rtt := connectTime(t, lan.Hosts[1], strings.TrimPrefix(pubEndpoint(t, a), "tcp://"))
	if rtt < 400*time.Millisecond {
		t.Fatalf("connect b -> a took %v under a 200 ms delay on every host", rtt)
	}
	faultStart := time.Now()
	app := newApp(t, a.writerEndpoint(), "loss")
	n := pick(3000, 30000)
	app.write(n/2, 0)
	app.write(n/2, pick(2*time.Millisecond, 1*time.Millisecond))
	hold := pick(6*time.Second, 60*time.Second)
	if d := time.Until(faultStart.Add(hold)); d > 0 {
		// Keep the fault on for the scenario's length: the mesh must ride
		// it out (pings, beacons, gossip all see loss and delay).
		time.Sleep(d)
	}
	st := app.close()

	// Under loss and delay the mesh holds, the live stream accounts for
	// every event, the archives arrive intact.
	waitConverged(t, 60*time.Second, ls...)
	hs, err := a.hubStats()
	if err != nil {
		t.Fatal(err)
	}
	recv, gaps, subDrops := waitLive(t, a, live, func(s logpub.HubStats) uint64 { return s.Received })
	var shipped, inboxes int
	var why string
	waitFor(t, 90*time.Second, "archives shipped byte-identical", func() bool {
		var ok bool
		ok, shipped, why, inboxes = shippedIdentical(a.captureDir(), collect, a.name)
		return ok
	}, func() string { return "not (yet) identical: " + why })
	faultEnd := time.Now()

	// Timers: every occurrence fired once (cluster scope: on one node).
	from, to := faultStart.Add(2*time.Second), faultEnd.Add(-2*time.Second)
	cl, err := checkFires(ls, "beat", 500*time.Millisecond, true, from, to)
	if err != nil {
		t.Fatal(err)
	}
	nd, err := checkFires(ls, "local", 500*time.Millisecond, false, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Duplicates != 0 || cl.Missing != 0 || nd.Duplicates != 0 {
		t.Errorf("timer fires: cluster %+v, node %+v", cl, nd)
	}

	var lost int
	for _, h := range lan.Hosts {
		lost += droppedPackets(h)
		unimpair(t, h)
	}
	if inboxes != 1 {
		t.Errorf("archives of one logd in %d inbox dirs", inboxes)
	}
	if netemAvailable(t) != nil && lost == 0 {
		t.Errorf("the loss rule dropped no packet")
	}
	conv := waitConverged(t, 60*time.Second, ls...)
	capt := readCapture(t, a.captureDir(), app.run)
	led := account(t, app, capt)
	if hs.Captured != uint64(capt.lines) || capt.corrupt != 0 {
		t.Errorf("capture files hold %d lines (%d corrupt), hub captured %d", capt.lines, capt.corrupt, hs.Captured)
	}
	for _, l := range ls {
		if !l.running() {
			t.Errorf("%s exited", l.name)
		}
	}
	report(t, "loss and delay by %s (connect b -> a %v); packets dropped by the fault %d; %v; writer %+v; live received %d, gaps seen %d, hub subscriber drops %d; archives %d identical; "+
		"timer cluster %+v node %+v; reconverged in %v", how, rtt.Round(time.Millisecond), lost, led, st, recv, gaps, subDrops, shipped, cl, nd, conv.Round(time.Millisecond))
}

// leader returns the name of the one timer node that fires cluster
// schedules, or "" when none or several do.
func leader(ls []*logd) string {
	var names []string
	for _, l := range ls {
		s, err := l.timerSnapshot()
		if err != nil {
			return ""
		}
		if s.Leader {
			names = append(names, l.name)
		}
	}
	if len(names) != 1 {
		return ""
	}
	return names[0]
}

// checkTimersSettled waits for one leader, then checks the fires of a few
// seconds: every occurrence once (cluster scope: on one node).
//
// With clusterDupOK the cluster schedule's duplicates are only reported:
// after a partition heals, the mesh resets every peer once more a few
// seconds later ("messages lost from peer", mesh/actor.go), each timer
// node sees its peers rejoin and, for the settle time, fires cluster
// schedules as if alone (see the reliability report).
func checkTimersSettled(t *testing.T, ls []*logd, span time.Duration) (fireCheck, fireCheck) {
	t.Helper()
	// Wait for one leader that holds for 3 s (after a heal, the higher of
	// the two sides' leaders stops as soon as the other's sync arrives).
	var cur string
	var since time.Time
	waitFor(t, 60*time.Second, "one stable timer leader", func() bool {
		l := leader(ls)
		if l == "" || l != cur {
			cur, since = l, time.Now()
			return false
		}
		return time.Since(since) >= 3*time.Second
	}, nil)
	from := time.Now().Add(500 * time.Millisecond)
	to := from.Add(span)
	waitFor(t, span+30*time.Second, "fires past the window", func() bool {
		if time.Now().Before(to.Add(time.Second)) {
			return false
		}
		c, err := checkFires(ls, "local", 500*time.Millisecond, false, to, to.Add(time.Second))
		return err == nil && c.Fires > 0
	}, nil)
	cl, err := checkFires(ls, "beat", 500*time.Millisecond, true, from, to)
	if err != nil {
		t.Fatal(err)
	}
	nd, err := checkFires(ls, "local", 500*time.Millisecond, false, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Duplicates != 0 || cl.Missing != 0 || nd.Duplicates != 0 || nd.Missing != 0 {
		t.Errorf("timer fires over %v from %s: cluster %+v, node %+v\n%s", span, from.Format("15:04:05.000"), cl, nd, timerDiag(ls))
	}
	return cl, nd
}

// TestPartitionHeals cuts one host off the mesh long past the expiry
// time, keeps its apps logging, and heals it.
func TestPartitionHeals(t *testing.T) {
	t.Parallel()
	lan, ls, collect := cluster3(t, false)
	a, c := ls[0], ls[2]
	addTimers(t, a)
	waitTimers(t, ls...)
	appA := newApp(t, a.writerEndpoint(), "part")
	appC := newApp(t, c.writerEndpoint(), "part")
	n := pick(2000, 20000)
	appA.write(n/2, 0)
	appC.write(n/2, 0)

	partition(t, lan, 2)
	cut := time.Now()
	length := pick(8*time.Second, 20*time.Second)
	// The rest of the mesh must see c leave (expiry 4 s), and c them.
	waitFor(t, length, "the partition to be seen", func() bool {
		r, err := a.peers()
		if err != nil {
			return false
		}
		for _, p := range r.Peers {
			if p.Name == c.name {
				return false
			}
		}
		return true
	}, nil)
	seenAfter := time.Since(cut)
	for time.Since(cut) < length {
		// Both sides keep logging while cut off from each other.
		appA.write(50, 0)
		appC.write(50, 0)
		time.Sleep(100 * time.Millisecond) // the apps' pace
	}
	heal(t, lan, 2)
	conv := waitConverged(t, 60*time.Second, ls...)
	appA.write(n/2, 0)
	appC.write(n/2, 0)

	cl, nd := checkTimersSettled(t, ls, 3*time.Second)
	var shipped, inboxes int
	var why string
	waitFor(t, 90*time.Second, "archives shipped byte-identical after the heal", func() bool {
		var ok bool
		ok, shipped, why, inboxes = shippedIdentical(a.captureDir(), collect, a.name)
		return ok
	}, func() string { return "not identical: " + why })
	if inboxes != 1 {
		t.Errorf("archives of one logd in %d inbox dirs", inboxes)
	}
	var leds []ledger
	for _, x := range []struct {
		l   *logd
		app *app
	}{{a, appA}, {c, appC}} {
		hs, err := x.l.hubStats()
		if err != nil {
			t.Fatal(err)
		}
		capt := readCapture(t, x.l.captureDir(), x.app.run)
		led := account(t, x.app, capt)
		if hs.Captured != uint64(capt.lines) || capt.corrupt != 0 {
			t.Errorf("%s: capture files hold %d lines (%d corrupt), hub captured %d", x.l.name, capt.lines, capt.corrupt, hs.Captured)
		}
		leds = append(leds, led)
	}
	report(t, "partition %v (seen after %v), reconverged in %v; logd-a %v; logd-c %v; archives %d identical; timer after heal: cluster %+v node %+v",
		length, seenAfter.Round(time.Millisecond), conv.Round(time.Millisecond), leds[0], leds[1], shipped, cl, nd)
}

// timerDiag describes each node's view of the timer cluster.
func timerDiag(ls []*logd) string {
	var b strings.Builder
	for _, l := range ls {
		s, err := l.timerSnapshot()
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", l.name, err)
			continue
		}
		var peers []string
		for _, p := range s.Peers {
			peers = append(peers, p.ID)
		}
		fmt.Fprintf(&b, "%s: node %s leader %v timer peers %v\n", l.name, s.Node, s.Leader, peers)
	}
	return b.String()
}

// connectTime returns how long a TCP connect from host h to addr takes.
func connectTime(t *testing.T, h *netns.Host, addr string) time.Duration {
	t.Helper()
	var d time.Duration
	if err := h.Do(func() error {
		start := time.Now()
		c, err := net.DialTimeout("tcp4", addr, 10*time.Second)
		if err != nil {
			return err
		}
		d = time.Since(start)
		return c.Close()
	}); err != nil {
		t.Fatalf("connect from %s to %s: %v", h.NS, addr, err)
	}
	return d
}
