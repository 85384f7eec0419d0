package timer

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/mesh"
)

type timerNode struct {
	node *mesh.Node
	svc  *Service
	cli  *Client
}

func (n *timerNode) close() {
	n.cli.Close()
	n.svc.Close()
	n.node.Close()
}

func clusterConfig(node *mesh.Node, dir string) Config {
	cfg := DefaultConfig()
	cfg.Mesh, cfg.Events = node, node.Events()
	cfg.DataDir = dir
	cfg.Settle = 500 * time.Millisecond
	cfg.ClockInterval = 200 * time.Millisecond
	return cfg
}

func startTimerNode(t *testing.T, node *mesh.Node, dir string) *timerNode {
	t.Helper()
	n := &timerNode{node: node, svc: startService(t, clusterConfig(node, dir))}
	n.cli = newClient(t, n.svc.Endpoint())
	t.Cleanup(n.close)
	return n
}

type fireLog struct {
	mu    sync.Mutex
	fires []Fire
}

func (l *fireLog) collect(ch <-chan Fire) {
	for f := range ch {
		l.mu.Lock()
		l.fires = append(l.fires, f)
		l.mu.Unlock()
	}
}

func (l *fireLog) snapshot() []Fire {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Fire(nil), l.fires...)
}

// TestClusterScopeTakeover runs three timer nodes on a real mesh: a
// cluster schedule fires on the node with the lowest UUID only; when that
// node dies another takes over, and across all watchers every occurrence
// is fired exactly once, the ones in the gap late.
func TestClusterScopeTakeover(t *testing.T) {
	t.Parallel()
	nodes := meshtest.Cluster(t, 3)
	var tn []*timerNode
	for _, nd := range nodes {
		tn = append(tn, startTimerNode(t, nd, t.TempDir()))
	}
	lowest := slices.MinFunc(tn, func(a, b *timerNode) int {
		x, y := a.node.UUID(), b.node.UUID()
		return slices.Compare(x[:], y[:])
	})
	eventually(t, 20*time.Second, "the lowest UUID to lead alone", func() bool {
		for _, n := range tn {
			if n.svc.Snapshot().Leader != (n == lowest) {
				return false
			}
		}
		return true
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var log fireLog
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, n := range tn {
		ch, err := n.cli.Watch(ctx, "job")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); log.collect(ch) }()
	}
	for _, n := range tn {
		eventually(t, 5*time.Second, "watchers known", func() bool { return n.svc.Snapshot().Clients == 1 })
	}
	// Added on a node that does not fire: replication brings it to all.
	var other *timerNode
	for _, n := range tn {
		if n != lowest {
			other = n
			break
		}
	}
	period := 200 * time.Millisecond
	if err := other.cli.Schedule(ctx, Spec{Name: "job", Every: Duration(period), Scope: ScopeCluster, Payload: "p"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range tn {
		eventually(t, 10*time.Second, "schedule replicated", func() bool { return len(n.svc.List()) == 1 })
	}
	leaderID := lowest.node.UUID().String()
	eventually(t, 10*time.Second, "5 fires from the leader", func() bool { return len(log.snapshot()) >= 5 })
	for _, f := range log.snapshot() {
		if f.Node != leaderID {
			t.Fatalf("fire from %s, want only the leader %s", f.Node, leaderID)
		}
	}
	// Peers measured each other's clocks (same host: offset ~0).
	eventually(t, 10*time.Second, "clock offsets measured", func() bool {
		ps := other.svc.Snapshot().Peers
		return len(ps) == 2 && !ps[0].Updated.IsZero() && !ps[1].Updated.IsZero()
	})
	for _, p := range other.svc.Snapshot().Peers {
		if p.Offset > 50*time.Millisecond || p.Offset < -50*time.Millisecond || p.RTT <= 0 {
			t.Errorf("peer %s on the same host: offset %v rtt %v", p.ID, p.Offset, p.RTT)
		}
	}

	// The leader's timer dies first while its mesh node stays up for a
	// second (a hung process): nobody fires then. When the node goes too,
	// the next lowest UUID takes over and fires that second's occurrences late.
	killed := time.Now()
	lowest.cli.Close()
	lowest.svc.Close()
	<-time.After(time.Second) // the outage itself, not a wait for a condition
	lowest.node.Close()
	gone := time.Now()
	var survivors []*timerNode
	for _, n := range tn {
		if n != lowest {
			survivors = append(survivors, n)
		}
	}
	eventually(t, 30*time.Second, "fires from a new leader", func() bool {
		fs := log.snapshot()
		return fs[len(fs)-1].Node != leaderID && fs[len(fs)-1].At.After(killed.Add(time.Second))
	})
	after := time.Now()
	eventually(t, 10*time.Second, "fires a second after takeover", func() bool {
		fs := log.snapshot()
		return fs[len(fs)-1].At.After(after.Add(time.Second))
	})
	cancel()
	wg.Wait()

	fs := log.snapshot()
	seen := map[int64]Fire{}
	first, last := fs[0].At, fs[0].At
	late := 0
	for _, f := range fs {
		if g, dup := seen[f.At.UnixNano()]; dup {
			t.Errorf("occurrence %v fired twice: by %s and %s", f.At, g.Node, f.Node)
		}
		seen[f.At.UnixNano()] = f
		if f.At.Before(first) {
			first = f.At
		}
		if f.At.After(last) {
			last = f.At
		}
		if f.Late {
			late++
		}
		if f.At.After(killed.Add(period)) && f.At.Before(gone) && !f.Late {
			t.Errorf("occurrence %v in the outage fired on time at %v, want late", f.At, f.FiredAt)
		}
	}
	for at := first; !at.After(last); at = at.Add(period) {
		if _, ok := seen[at.UnixNano()]; !ok {
			t.Errorf("occurrence %v never fired", at)
		}
	}
	newLeader := fs[len(fs)-1].Node
	for _, n := range survivors {
		if s := n.svc.Snapshot(); s.Leader != (s.Node == newLeader) {
			t.Errorf("node %s: leader %v, fires came from %s", s.Node, s.Leader, newLeader)
		}
	}
	if late == 0 {
		t.Errorf("no fire marked late across the takeover gap")
	}
	t.Logf("%d occurrences from %v to %v, %d late, takeover by %s", len(seen), first.Format("15:04:05.000"), last.Format("15:04:05.000"), late, newLeader)

	// A node that joins later, with an empty data dir, gets the schedule.
	cfg := meshtest.Config(t)
	nd, err := mesh.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	late4 := startTimerNode(t, nd, t.TempDir())
	eventually(t, 20*time.Second, "schedule synced to a new node", func() bool {
		l := late4.svc.List()
		return len(l) == 1 && l[0].Spec.Name == "job" && l[0].Spec.Scope == ScopeCluster
	})
}
