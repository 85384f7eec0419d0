package timer

import (
	"context"
	"slices"
	"strings"
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
	return startTimerNodeCfg(t, clusterConfig(node, dir))
}

func startTimerNodeCfg(t *testing.T, cfg Config) *timerNode {
	t.Helper()
	n := &timerNode{node: cfg.Mesh.(*mesh.Node), svc: startService(t, cfg)}
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

// watch collects the fires of name that n's client receives until ctx
// ends (wg counts the collector) and, with known, waits until n's service
// knows the watcher.
func (l *fireLog) watch(t *testing.T, ctx context.Context, wg *sync.WaitGroup, n *timerNode, name string, known bool) {
	t.Helper()
	ch, err := n.cli.Watch(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); l.collect(ch) }()
	if known {
		eventually(t, 5*time.Second, "watcher known", func() bool { return n.svc.Snapshot().Clients == 1 })
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
		log.watch(t, ctx, &wg, n, "job", false)
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

// TestClusterRestartAll replicates a schedule added on one node to all
// three, stops every node, starts three new mesh nodes on the same data
// directories: the schedules are all still there, on every node.
func TestClusterRestartAll(t *testing.T) {
	t.Parallel()
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	nodes := meshtest.Cluster(t, 3)
	var tn []*timerNode
	for i, nd := range nodes {
		tn = append(tn, startTimerNode(t, nd, dirs[i]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	specs := []Spec{
		{Name: "a", Every: Duration(time.Hour), Scope: ScopeCluster},
		{Name: "b", Cron: "0 30 2 * * *", TZ: "UTC"},
		{Name: "c", Every: Duration(time.Minute)},
	}
	for i, sp := range specs {
		if err := tn[i].cli.Schedule(ctx, sp); err != nil {
			t.Fatal(err)
		}
	}
	if err := tn[2].cli.Cancel(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	names := func(s *Service) string {
		var out []string
		for _, i := range s.List() {
			out = append(out, i.Spec.Name)
		}
		return strings.Join(out, ",")
	}
	// "a,b" alone also holds on a node that has not yet heard of c at
	// all; wait for c's tombstone too, so that what each node saves on
	// Close is the converged state.
	cancelled := func(s *Service) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		e := s.entries["c"]
		return e != nil && e.rec.Deleted
	}
	for _, n := range tn {
		eventually(t, 10*time.Second, "a,b and c's tombstone on every node", func() bool {
			return names(n.svc) == "a,b" && cancelled(n.svc)
		})
	}
	for _, n := range tn {
		n.close()
	}
	nodes = meshtest.Cluster(t, 3)
	for i, nd := range nodes {
		n := startTimerNode(t, nd, dirs[i])
		t.Logf("node %d (%s) after restart: %s; peers %d", i, nd.UUID(), names(n.svc), len(nd.Peers()))
		if got := names(n.svc); got != "a,b" {
			t.Errorf("node %d after restart: schedules %q, want a,b", i, got)
		}
	}
}

// TestClusterBadPeerMessages: malformed timer messages from a mesh peer are
// counted and dropped, other components' whispers are ignored, and the
// service goes on applying good messages.
func TestClusterBadPeerMessages(t *testing.T) {
	t.Parallel()
	nodes := meshtest.Cluster(t, 2)
	n := startTimerNode(t, nodes[0], t.TempDir())
	raw := nodes[1]
	if err := raw.Join("timer"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "raw peer in the timer group", func() bool {
		return len(nodes[0].GroupPeers("timer")) == 1
	})
	id := nodes[0].UUID()
	bad := [][][]byte{
		{peerTag, []byte("{not json")},
		{peerTag, []byte(`{"v":7,"t":"sync"}`)},
		{peerTag, []byte(`{"v":1,"t":"upsert","recs":[{"spec":{"name":"x","every":"-1s"}}]}`)},
		{peerTag},
		{[]byte("garbage")},
	}
	for _, frames := range bad {
		if err := raw.Shout("timer", frames...); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Whisper(id, []byte("logmesh-filemq"), []byte("not for the timer")); err != nil {
		t.Fatal(err)
	}
	if err := raw.Whisper(id, peerTag, []byte(`{"v":1,"t":"fired"}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "6 bad peer messages counted", func() bool {
		return n.svc.Snapshot().BadPeerMessages == 6
	})
	good, err := encodePeerMsg(&peerMsg{Type: "upsert", Records: []*record{{
		Spec: Spec{Name: "from-peer", Every: Duration(time.Hour), Scope: ScopeNode}, Version: time.Now().UnixNano(), Origin: raw.UUID().String(), Created: time.Now()}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Shout("timer", good...); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "good upsert applied", func() bool {
		l := n.svc.List()
		return len(l) == 1 && l[0].Spec.Name == "from-peer"
	})
	if got := n.svc.Snapshot().BadPeerMessages; got != 6 {
		t.Errorf("BadPeerMessages = %d, want 6 (the filemq whisper is not ours)", got)
	}
}

// TestClusterHandoverToLowerNode: a node with a lower UUID than the firing
// one joins; after it settles it takes over, and across the handover every
// occurrence is fired exactly once.
func TestClusterHandoverToLowerNode(t *testing.T) {
	t.Parallel()
	const settle = 1500 * time.Millisecond
	start := func(nd *mesh.Node) *timerNode {
		cfg := clusterConfig(nd, t.TempDir())
		cfg.Settle = settle
		return startTimerNodeCfg(t, cfg)
	}
	// Three nodes made at once, sorted by UUID (they are random): the two
	// higher ones start now, the lowest joins later.
	var made []*mesh.Node
	for i := 0; i < 3; i++ {
		nd, err := mesh.New(meshtest.Config(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		made = append(made, nd)
	}
	slices.SortFunc(made, func(x, y *mesh.Node) int {
		u, v := x.UUID(), y.UUID()
		return slices.Compare(u[:], v[:])
	})
	low := made[0]
	for _, nd := range made[1:] {
		if err := nd.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	meshtest.WaitPeers(t, 20*time.Second, 1, made[1:]...)
	a, b := start(made[1]), start(made[2])
	old := a
	eventually(t, 20*time.Second, "the lower of two to lead", func() bool { return old.svc.Snapshot().Leader })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var log fireLog
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	log.watch(t, ctx, &wg, a, "job", true)
	log.watch(t, ctx, &wg, b, "job", true)
	period := 200 * time.Millisecond
	if err := a.cli.Schedule(ctx, Spec{Name: "job", Every: Duration(period), Scope: ScopeCluster}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "3 fires", func() bool { return len(log.snapshot()) >= 3 })

	// The third node, whose UUID is below the leader's.
	if err := low.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := start(low)
	log.watch(t, ctx, &wg, c, "job", true)
	lowID := low.UUID().String()
	eventually(t, 20*time.Second, "fires from the new lowest node", func() bool {
		fs := log.snapshot()
		return fs[len(fs)-1].Node == lowID
	})
	after := time.Now()
	eventually(t, 10*time.Second, "a second of fires after the handover", func() bool {
		fs := log.snapshot()
		return fs[len(fs)-1].At.After(after.Add(time.Second))
	})
	cancel()
	wg.Wait()
	fs := log.snapshot()
	seen := map[int64]Fire{}
	first, last := fs[0].At, fs[0].At
	for _, f := range fs {
		if g, dup := seen[f.At.UnixNano()]; dup {
			t.Errorf("occurrence %v fired twice: by %s and %s", f.At.Format("15:04:05.000"), g.Node, f.Node)
		}
		seen[f.At.UnixNano()] = f
		first, last = minTime(first, f.At), maxTime(last, f.At)
	}
	for at := first; !at.After(last); at = at.Add(period) {
		if _, ok := seen[at.UnixNano()]; !ok {
			t.Errorf("occurrence %v never fired", at.Format("15:04:05.000"))
		}
	}
	if s := old.svc.Snapshot(); s.Leader {
		t.Errorf("the old leader still leads")
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// TestClusterAtFiresOnce: a cluster-scope one-shot fires once in the
// mesh, and every node then knows it is done.
func TestClusterAtFiresOnce(t *testing.T) {
	t.Parallel()
	nodes := meshtest.Cluster(t, 3)
	var tn []*timerNode
	for _, nd := range nodes {
		tn = append(tn, startTimerNode(t, nd, t.TempDir()))
	}
	eventually(t, 20*time.Second, "one leader", func() bool {
		leaders := 0
		for _, n := range tn {
			if n.svc.Snapshot().Leader {
				leaders++
			}
		}
		return leaders == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var log fireLog
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, n := range tn {
		log.watch(t, ctx, &wg, n, "once", true)
	}
	at := time.Now().Add(700 * time.Millisecond).Round(time.Millisecond)
	if err := tn[2].cli.Schedule(ctx, Spec{Name: "once", At: at, Scope: ScopeCluster, Payload: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range tn {
		eventually(t, 10*time.Second, "every node knows it fired", func() bool {
			l := n.svc.List()
			return len(l) == 1 && l[0].LastFired.Equal(at) && l[0].Next.IsZero()
		})
	}
	// The fire reaches the watcher after the peers have heard of it.
	eventually(t, 10*time.Second, "the fire at a watcher", func() bool { return len(log.snapshot()) > 0 })
	// Every node has recorded the fire: no one fires it again.
	cancel()
	wg.Wait()
	if fs := log.snapshot(); len(fs) != 1 || !fs[0].At.Equal(at) || fs[0].Payload != "x" {
		t.Fatalf("fires %+v, want one at %v", fs, at)
	}
}
