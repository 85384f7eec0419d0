package faults

import (
	"fmt"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/internal/netns"
)

// cluster3 starts three logds on three namespace hosts: a ships its
// capture archives, b collects them, c is a plain node.
func cluster3(t *testing.T) (*netns.Net, []*logd, string) {
	t.Helper()
	lan := netns.New(t, 3)
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
	lan, ls, collect := cluster3(t)
	a := ls[0]
	addTimers(t, a)
	waitTimers(t, ls...)
	live := followFrom(t, lan.Hosts[1], pubEndpoint(t, a), "loss")

	var delayed bool
	for _, h := range lan.Hosts {
		delayed = impair(t, h, 5, 200*time.Millisecond)
	}
	if !delayed {
		t.Logf("200 ms delay not injected: %v; 5%% loss injected with nftables", netemAvailable(t))
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
	waitFor(t, 60*time.Second, "the live stream to account for every event", func() bool {
		r, g, _ := live.counts()
		return r+g >= hs.Received
	}, func() string {
		r, g, err := live.counts()
		return fmt.Sprintf("received %d gaps %d err %v hub %+v", r, g, err, hs)
	})
	recv, gaps, _ := live.counts()
	if recv+gaps != hs.Received {
		t.Errorf("live stream: received %d + gaps %d != hub received %d", recv, gaps, hs.Received)
	}
	if gaps > hs.SubscriberDrops {
		t.Errorf("live stream: %d gaps but the hub counted %d subscriber drops", gaps, hs.SubscriberDrops)
	}
	var shipped int
	var why string
	waitFor(t, 90*time.Second, "archives shipped byte-identical", func() bool {
		var ok bool
		ok, shipped, why = shippedIdentical(a.captureDir(), collect, a.name)
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
	if !delayed && lost == 0 {
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
	report(t, "delay injected %v; packets dropped by the fault %d; %v; writer %+v; live received %d, gaps %d (hub subscriber drops %d); archives %d identical; "+
		"timer cluster %+v node %+v; reconverged in %v", delayed, lost, led, st, recv, gaps, hs.SubscriberDrops, shipped, cl, nd, conv.Round(time.Millisecond))
}
