package mesh_test

import (
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/mesh"
)

// countEvents counts events of one type from peer over d.
func countEvents(n *mesh.Node, typ mesh.EventType, d time.Duration) int {
	count := 0
	timeout := time.After(d)
	for {
		select {
		case ev := <-n.Events():
			if ev.Type == typ {
				count++
			}
		case <-timeout:
			return count
		}
	}
}

// TestPingOnlySilentPeers: peers heard by beacon are never pinged; with
// beacons off, an idle peer is pinged (Evasive) but answers, so it stays.
func TestPingOnlySilentPeers(t *testing.T) {
	for _, beacons := range []bool{true, false} {
		name := map[bool]string{true: "beacons", false: "no beacons"}[beacons]
		t.Run(name, func(t *testing.T) {
			cfg := meshtest.Config(t)
			cfg.EvasiveTimeout, cfg.ExpiredTimeout = 300*time.Millisecond, 3*time.Second
			if !beacons {
				cfg.BeaconPort = 0
				cfg.GossipBind = "127.0.0.1:0"
			}
			a := startNode(t, cfg, nil)
			if !beacons {
				cfg.GossipBind = ""
				cfg.Join = []string{a.GossipAddr()}
			}
			b := startNode(t, cfg, nil)
			waitEvent(t, a, 10*time.Second, is(mesh.EventEnter, b.UUID()))
			evasive := countEvents(a, mesh.EventEvasive, 1500*time.Millisecond)
			if beacons && evasive != 0 {
				t.Fatalf("%d EVASIVE events for a peer whose beacons arrive every 100 ms", evasive)
			}
			if !beacons && evasive == 0 {
				t.Fatal("an idle peer without beacons was never pinged")
			}
			if _, ok := a.PeerName(b.UUID()); !ok {
				t.Fatal("a peer that answers PINGs was removed")
			}
		})
	}
}

func TestAdvertise(t *testing.T) {
	cfg := meshtest.Config(t)
	cfg.Advertise = "node.example"
	n := startNode(t, cfg, nil)
	if ep := n.Endpoint(); len(ep) < len("tcp://node.example:1") || ep[:len("tcp://node.example:")] != "tcp://node.example:" {
		t.Fatalf("endpoint = %q, want tcp://node.example:<port>", ep)
	}
	cfg.Advertise = "10.9.8.7:4242"
	if n := startNode(t, cfg, nil); n.Endpoint() != "tcp://10.9.8.7:4242" {
		t.Fatalf("endpoint = %q", n.Endpoint())
	}
}
