package mesh_test

import (
	"testing"
	"time"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/internal/curvetest"
	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/mesh"
)

// TestCurveMesh: nodes with keys admitted by each other's allow-list find
// each other (beacons v3) and talk encrypted; a node with a key that is not
// admitted and a node without keys stay out, and see no one.
func TestCurveMesh(t *testing.T) {
	ka, kb, kc := curvetest.KeyPair(t), curvetest.KeyPair(t), curvetest.KeyPair(t)
	allow := curve.NewAllowList(ka.Public, kb.Public) // c is not admitted
	base := meshtest.Config(t)
	secure := func(kp curve.KeyPair) mesh.Config {
		cfg := base
		cfg.Curve = &mesh.Curve{Keys: kp, Authorize: allow.Authorize}
		return cfg
	}
	a := startNode(t, secure(ka), nil)
	b := startNode(t, secure(kb), nil)
	c := startNode(t, secure(kc), nil)
	plain := startNode(t, base, nil)

	ev := waitEvent(t, a, 10*time.Second, is(mesh.EventEnter, b.UUID()))
	if ev.Headers["X-PUBLICKEY"] != kb.Public.String() {
		t.Fatalf("HELLO X-PUBLICKEY = %q, want %s", ev.Headers["X-PUBLICKEY"], kb.Public)
	}
	waitEvent(t, b, 10*time.Second, is(mesh.EventEnter, a.UUID()))
	if err := a.Whisper(b.UUID(), []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, b, 5*time.Second, is(mesh.EventWhisper, a.UUID())); string(ev.Frames[0]) != "sealed" {
		t.Fatalf("whisper = %q", ev.Frames)
	}

	// Beacons go every 100 ms: a second gives the outsiders ten chances.
	time.Sleep(time.Second) // observation window: nothing may happen
	for _, n := range []*mesh.Node{a, b} {
		if got := len(n.Peers()); got != 1 {
			t.Fatalf("%s sees %d peers, want only its admitted peer: %+v", n.Name(), got, n.Peers())
		}
		if n.Stats().Refused == 0 {
			t.Fatalf("%s refused no one: %+v", n.Name(), n.Stats())
		}
	}
	if got := len(c.Peers()); got != 0 {
		t.Fatalf("the node with a key not admitted sees %d peers", got)
	}
	if got := len(plain.Peers()); got != 0 {
		t.Fatalf("the node without keys sees %d peers", got)
	}
}

// TestCurveGossip: a CURVE mesh without beacons converges through a seed;
// the gossip tuples carry "endpoint|key" as Zyre's do.
func TestCurveGossip(t *testing.T) {
	ka, kb, kc := curvetest.KeyPair(t), curvetest.KeyPair(t), curvetest.KeyPair(t)
	allow := curve.NewAllowList(ka.Public, kb.Public, kc.Public)
	cfg := wanConfig(t)
	cfg.Curve = &mesh.Curve{Keys: ka, Authorize: allow.Authorize}
	cfg.GossipBind = "127.0.0.1:0"
	seed := startNode(t, cfg, nil)
	nodes := []*mesh.Node{seed}
	for _, kp := range []curve.KeyPair{kb, kc} {
		cfg := wanConfig(t)
		cfg.Curve = &mesh.Curve{Keys: kp, Authorize: allow.Authorize}
		cfg.Join = []string{seed.GossipAddr()}
		nodes = append(nodes, startNode(t, cfg, nil))
	}
	meshtest.WaitPeers(t, 20*time.Second, 2, nodes...)
}

func TestCurveNeedsAuthorize(t *testing.T) {
	cfg := meshtest.Config(t)
	cfg.Curve = &mesh.Curve{Keys: curvetest.KeyPair(t)}
	if _, err := mesh.New(cfg); err == nil {
		t.Fatal("New accepted CURVE keys without Authorize")
	}
}
