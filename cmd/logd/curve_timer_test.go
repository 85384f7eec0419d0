package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/timer"
)

// TestTimerWatchWithKeys: a logd with --keys closes its timer socket with
// CURVE. `logd timer watch --keys` with the node's key directory gets
// ticks; without keys, or with a key the node does not admit, it fails
// (exit 1) and the service counts the refusal.
func TestTimerWatchWithKeys(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	keys := keyDirs(t, bin, []string{"a", "x"}, "a")
	dir := t.TempDir()
	p := runLogd(t, bin, dir, "timer-a", port, "--keys", keys["a"])
	dd := "--data-dir=" + dir
	var snap timer.Snapshot
	pollUntil(t, 20*time.Second, "the timer status", func() bool {
		out, _, code := logdCmd(t, bin, "timer", "status", dd)
		return code == 0 && json.Unmarshal([]byte(out), &snap) == nil
	}, p.stderr.String)
	if snap.PublicKey == "" {
		t.Fatalf("a keyed timer service reports no public key: %+v", snap)
	}

	out, errOut, code := logdCmd(t, bin, "timer", "watch", "--tick", "100ms", "--count", "2", "--keys", keys["a"], dd)
	if code != 0 || strings.Count(out, "tick 100ms n=") != 2 {
		t.Fatalf("watch with the node's keys: exit %d, %q %q", code, out, errOut)
	}
	// Nothing in the logd itself (the dashboard follows the ticks) was
	// refused: its own clients use its keys.
	if out, _, code := logdCmd(t, bin, "timer", "status", dd); code != 0 || json.Unmarshal([]byte(out), &snap) != nil || snap.Refused != 0 {
		t.Fatalf("refusals before any bad client: %q\n%s", out, p.stderr)
	}
	if _, errOut, code := logdCmd(t, bin, "timer", "watch", "--tick", "100ms", "--count", "1", dd); code != 1 || !strings.Contains(errOut, "--keys") {
		t.Fatalf("watch without keys: exit %d, %q", code, errOut)
	}
	if _, errOut, code := logdCmd(t, bin, "timer", "watch", "--tick", "100ms", "--count", "1", "--keys", keys["x"], dd); code != 1 || !strings.Contains(errOut, "refused") {
		t.Fatalf("watch with an unadmitted key: exit %d, %q", code, errOut)
	}
	pollUntil(t, 10*time.Second, "the refusal counted", func() bool {
		out, _, code := logdCmd(t, bin, "timer", "status", dd)
		return code == 0 && json.Unmarshal([]byte(out), &snap) == nil && snap.Refused >= 1
	}, p.stderr.String)
	if !strings.Contains(p.stderr.String(), "curve client refused") {
		t.Errorf("the refused key was not logged\n%s", p.stderr)
	}
}

// TestTimerWatchKeysOnOpenLogd: `logd timer watch --keys` against a logd
// without keys stops with an error (no downgrade to an open socket).
func TestTimerWatchKeysOnOpenLogd(t *testing.T) {
	bin := buildLogd(t)
	port := meshtest.Config(t).BeaconPort
	keys := keyDirs(t, bin, []string{"a"}, "a")
	dir := t.TempDir()
	p := runLogd(t, bin, dir, "timer-a", port)
	dd := "--data-dir=" + dir
	pollUntil(t, 20*time.Second, "the timer status", func() bool {
		_, _, code := logdCmd(t, bin, "timer", "status", dd)
		return code == 0
	}, p.stderr.String)
	if _, errOut, code := logdCmd(t, bin, "timer", "watch", "--tick", "100ms", "--count", "1", "--keys", keys["a"], dd); code != 1 || !strings.Contains(errOut, "run without --keys") {
		t.Fatalf("watch --keys on an open logd: exit %d, %q", code, errOut)
	}
}
