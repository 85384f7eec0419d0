package faults

import (
	"fmt"
	"github.com/logmesh/logmesh/logpub"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/internal/netns"
)

// TestKillRestart SIGKILLs a logd while an app logs into it and archives
// ship from it, and starts it again on the same data directory.
func TestKillRestart(t *testing.T) {
	t.Parallel()
	lan := netns.New(t, 2)
	port := meshtest.Config(t).BeaconPort
	collect := t.TempDir()
	a := newLogd(t, lan.Hosts[0], port, "logd-a", "--rotate-size", "16KiB", "--ship-poll", "200ms")
	a.args = append(a.args, "--ship-to", a.captureDir())
	b := newLogd(t, lan.Hosts[1], port, "logd-b", "--collect", collect)
	ls := []*logd{a, b}
	for _, l := range ls {
		l.start()
		l.waitUp(60 * time.Second)
	}
	waitConverged(t, 60*time.Second, ls...)
	addTimers(t, a)
	waitTimers(t, ls...)

	kills := pick(1, 5)
	app := newApp(t, a.writerEndpoint(), "crash")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		// The app logs all along, through the kills.
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				app.write(20, 0)
				time.Sleep(5 * time.Millisecond) // the app's pace
			}
		}
	}()
	var downFor time.Duration
	for range kills {
		waitFor(t, 30*time.Second, "events captured before the kill", func() bool {
			s, err := a.hubStats()
			return err == nil && s.Captured > 500
		}, nil)
		a.kill()
		down := time.Now()
		if a.running() {
			t.Fatal("logd-a survived SIGKILL")
		}
		a.start()
		a.waitUp(60 * time.Second)
		downFor += time.Since(down)
	}
	waitFor(t, 30*time.Second, "events captured after the restart", func() bool {
		s, err := a.hubStats()
		return err == nil && s.Captured > 500
	}, nil)
	close(stop)
	wg.Wait()
	st := app.close()

	conv := waitConverged(t, 60*time.Second, ls...)
	// The killed logd's old identity expires from b's view.
	waitFor(t, 30*time.Second, "logd-b to forget the killed instance", func() bool {
		r, err := b.peers()
		return err == nil && len(r.Peers) == 1
	}, nil)
	waitTimers(t, ls...) // the schedules survived the kills (persisted)
	cl, nd := checkTimersSettled(t, ls, 3*time.Second)

	var shipped, inboxes int
	var why string
	waitFor(t, 90*time.Second, "archives shipped byte-identical after the restarts", func() bool {
		var ok bool
		ok, shipped, why, inboxes = shippedIdentical(a.captureDir(), collect, a.name)
		return ok
	}, func() string { return "not identical: " + why })
	capt := readCapture(t, a.captureDir(), app.run)
	led := account(t, app, capt)
	if capt.corrupt != 0 {
		t.Errorf("%d torn lines in the capture files after SIGKILL", capt.corrupt)
	}
	report(t, "%d SIGKILL+restart (down %v in all); %v; writer reconnects %d; torn lines %d; reconverged in %v; archives %d identical (in %d inbox dirs); timer after restart: cluster %+v node %+v",
		kills, downFor.Round(time.Millisecond), led, st.Reconnects, capt.corrupt, conv.Round(time.Millisecond), shipped, inboxes, cl, nd)
}

// TestDiskFull captures onto a small tmpfs that fills up, then grows it.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	netns.Require(t) // root, for mount
	dir := t.TempDir()
	mnt := filepath.Join(dir, "capture")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "logmesh-faults", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	})
	port := meshtest.Config(t).BeaconPort
	a := newLogd(t, nil, port, "logd-full", "--capture-dir", mnt, "--no-compress")
	a.start()
	a.waitUp(60 * time.Second)
	live := followFrom(t, nil, pubEndpoint(t, a), "full")

	app := newApp(t, a.writerEndpoint(), "full")
	for {
		app.write(200, 0)
		s, err := a.hubStats()
		if err != nil {
			t.Fatal(err)
		}
		if s.CaptureErrors > 0 {
			break
		}
		if app.sent > 100000 {
			t.Fatalf("256 KiB tmpfs never filled after %d events: %+v", app.sent, s)
		}
	}
	app.write(500, 0)
	full, err := a.hubStats()
	if err != nil {
		t.Fatal(err)
	}
	if !a.running() {
		t.Fatal("logd exited on a full disk")
	}
	// Room again: the writer's held events are captured, and new ones.
	if out, err := exec.Command("mount", "-o", "remount,size=8m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v\n%s", err, out)
	}
	app.write(500, 0)
	waitFor(t, 60*time.Second, "every held event acknowledged once there is room", func() bool {
		s := app.w.Stats()
		return s.Queued == 0 && s.Acked+s.Dropped == s.Accepted
	}, func() string { s, _ := a.hubStats(); return fmt.Sprintf("writer %+v hub %+v", app.w.Stats(), s) })
	st := app.close()
	hs, err := a.hubStats()
	if err != nil {
		t.Fatal(err)
	}
	capt := readCapture(t, mnt, app.run)
	led := account(t, app, capt)
	// Only captured events are published; every one reaches the live
	// subscriber or is counted as dropped for it.
	captured := func(s logpub.HubStats) uint64 { return s.Captured }
	stuck := liveStuck(a, live, captured, 10*time.Second)
	if stuck != 0 {
		t.Errorf("%d captured events neither reached the live stream nor were counted as dropped", stuck)
	}
	hs, err = a.hubStats()
	if err != nil {
		t.Fatal(err)
	}
	recv, gaps, _ := live.counts()
	subDrops := hs.SubscriberDrops
	if recv+subDrops > hs.Captured || gaps > subDrops {
		t.Errorf("live stream: received %d, gaps %d, hub drops %d, captured %d", recv, gaps, subDrops, hs.Captured)
	}
	// A write that failed half way is cut back off the file: no torn
	// line, and the resent batch is not written twice.
	if capt.corrupt != 0 || led.Duplicates != 0 {
		t.Errorf("capture after a full disk: %d torn lines, %d duplicate events", capt.corrupt, led.Duplicates)
	}
	report(t, "%v; writer %+v; %d failed capture writes while full (hub captured %d of %d received by then); "+
		"%d torn lines (%d whole events after the fragment); live stream received %d, gaps seen %d, hub subscriber drops %d; captured but neither delivered nor counted %d (hub delivered %d)",
		led, st, hs.CaptureErrors, full.Captured, full.Received, capt.corrupt, capt.recovered, recv, gaps, subDrops, stuck, hs.Delivered)
}
