package mesh_test

import (
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/mesh"
)

// wanConfig is a loopback config with beacons off: gossip is the only way
// to find peers.
func wanConfig(t *testing.T) mesh.Config {
	cfg := meshtest.Config(t)
	cfg.BeaconPort = 0
	return cfg
}

func TestGossipOneSeed(t *testing.T) {
	seedCfg := wanConfig(t)
	seedCfg.GossipBind = "127.0.0.1:0"
	seed := startNode(t, seedCfg, nil)
	addr := seed.GossipAddr()
	if addr == "" {
		t.Fatal("seed has no gossip address")
	}
	nodes := []*mesh.Node{seed}
	for range 5 {
		cfg := wanConfig(t)
		cfg.Join = []string{addr}
		nodes = append(nodes, startNode(t, cfg, nil))
	}
	meshtest.WaitPeers(t, 20*time.Second, len(nodes)-1, nodes...)
}

// TestGossipChain joins two seeds: c joins b, b serves and joins a.
func TestGossipChain(t *testing.T) {
	cfgA := wanConfig(t)
	cfgA.GossipBind = "127.0.0.1:0"
	a := startNode(t, cfgA, nil)
	cfgB := wanConfig(t)
	cfgB.GossipBind = "127.0.0.1:0"
	cfgB.Join = []string{a.GossipAddr()}
	b := startNode(t, cfgB, nil)
	cfgC := wanConfig(t)
	cfgC.Join = []string{"tcp://" + b.GossipAddr()}
	c := startNode(t, cfgC, nil)
	cfgD := wanConfig(t)
	cfgD.Join = []string{a.GossipAddr()}
	d := startNode(t, cfgD, nil)
	meshtest.WaitPeers(t, 20*time.Second, 3, a, b, c, d)
}
