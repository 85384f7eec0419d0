package timer

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/mesh"
)

// holdProxy accepts TCP connections and forwards them to target only once
// heal is closed: until then the two sides of a mesh that meet through it
// are partitioned.
func holdProxy(t *testing.T, target string, heal <-chan struct{}) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				select {
				case <-heal:
				case <-done:
					return
				}
				u, err := net.Dial("tcp4", target)
				if err != nil {
					return
				}
				defer u.Close()
				stop := context.AfterFunc(ctxDone(done), func() { c.Close(); u.Close() })
				defer stop()
				go func() { io.Copy(u, c); u.Close() }()
				io.Copy(c, u)
			}()
		}
	}()
	return ln.Addr().String()
}

// ctxDone turns a channel into a context that ends when it closes.
func ctxDone(done <-chan struct{}) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-done; cancel() }()
	return ctx
}

// TestClusterHealedLeadersDoNotOverlap: two timer nodes that lead their
// own side of a partition meet when it heals. The higher one must stop at
// once, not after Settle, or occurrences in between fire twice.
func TestClusterHealedLeadersDoNotOverlap(t *testing.T) {
	t.Parallel()
	const settle = 1500 * time.Millisecond
	heal := make(chan struct{})
	start := func(cfg mesh.Config) *timerNode {
		nd, err := mesh.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := nd.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		tc := clusterConfig(nd, t.TempDir())
		tc.Settle = settle
		return startTimerNodeCfg(t, tc)
	}
	// No beacons: x is a gossip seed that y reaches only through the proxy.
	cx := meshtest.Config(t)
	cx.BeaconPort, cx.GossipBind = 0, "127.0.0.1:0"
	x := start(cx)
	cy := meshtest.Config(t)
	cy.BeaconPort, cy.Join = 0, []string{holdProxy(t, x.node.GossipAddr(), heal)}
	y := start(cy)
	eventually(t, 20*time.Second, "each side to lead alone", func() bool {
		return x.svc.Snapshot().Leader && y.svc.Snapshot().Leader
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var log fireLog
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	period := 100 * time.Millisecond
	for _, n := range []*timerNode{x, y} {
		log.watch(t, ctx, &wg, n, "job", true)
		if err := n.cli.Schedule(ctx, Spec{Name: "job", Every: Duration(period), Scope: ScopeCluster}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "both sides firing", func() bool {
		nodes := map[string]bool{}
		for _, f := range log.snapshot() {
			nodes[f.Node] = true
		}
		return len(nodes) == 2
	})

	close(heal)
	healed := time.Now()
	high := x
	if lessUUID(x.node.UUID(), y.node.UUID()) {
		high = y
	}
	eventually(t, 20*time.Second, "the sides to meet", func() bool {
		_, ok := x.node.PeerName(y.node.UUID())
		_, ok2 := y.node.PeerName(x.node.UUID())
		return ok && ok2
	})
	met := time.Now()
	eventually(t, 10*time.Second, "the higher node to stop leading", func() bool { return !high.svc.Snapshot().Leader })
	stopped := time.Now()
	eventually(t, 10*time.Second, "fires past Settle after the meeting", func() bool {
		fs := log.snapshot()
		return fs[len(fs)-1].At.After(met.Add(settle + 500*time.Millisecond))
	})
	cancel()
	wg.Wait()

	// Occurrences fired by both sides once they had met (with a margin
	// for the group join and the sync to cross) are the defect.
	seen := map[int64]Fire{}
	var dups int
	for _, f := range log.snapshot() {
		if g, dup := seen[f.At.UnixNano()]; dup && f.At.After(met.Add(300*time.Millisecond)) {
			dups++
			t.Errorf("occurrence %v fired by %s and %s after the sides met", f.At.Format("15:04:05.000"), g.Node, f.Node)
		}
		seen[f.At.UnixNano()] = f
	}
	t.Logf("healed at %s, met after %v, higher leader stopped %v after meeting; %d duplicates after meeting",
		healed.Format("15:04:05.000"), met.Sub(healed), stopped.Sub(met), dups)
}
