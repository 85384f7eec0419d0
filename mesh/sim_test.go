package mesh

import (
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// beaconHub is an in-memory broadcast network for beacons, so many nodes
// in one process can discover each other without UDP (as memberlist's mock
// transport). Mailboxes and connections stay real TCP on loopback.
type beaconHub struct {
	mu   sync.Mutex
	subs map[*memBeacons]bool
}

type memBeacons struct {
	hub *beaconHub
	ch  chan heard
}

func (h *beaconHub) attach() *memBeacons {
	m := &memBeacons{hub: h, ch: make(chan heard, 1024)}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*memBeacons]bool{}
	}
	h.subs[m] = true
	h.mu.Unlock()
	return m
}

func (m *memBeacons) send(p []byte) error {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	for s := range m.hub.subs {
		select {
		case s.ch <- heard{data: p, from: net.IPv4(127, 0, 0, 1)}:
		default: // a full receiver loses beacons, as UDP would
		}
	}
	return nil
}

func (m *memBeacons) run(ctx context.Context, out chan<- heard) {
	for {
		select {
		case h := <-m.ch:
			select {
			case out <- h:
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func (m *memBeacons) close() error {
	m.hub.mu.Lock()
	delete(m.hub.subs, m)
	m.hub.mu.Unlock()
	return nil
}

// raiseFileLimit lets one process hold the sockets of a big simulated mesh
// (two descriptors per connection, one connection per ordered pair of nodes).
func raiseFileLimit(tb testing.TB, want uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Fatal(err)
	}
	if lim.Cur >= want {
		return
	}
	lim.Cur = want
	if lim.Max < want {
		lim.Max = want // allowed for root
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Skipf("cannot raise RLIMIT_NOFILE to %d: %v", want, err)
	}
}

func simConfig(name string, beaconEvery time.Duration) Config {
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.BeaconPort = 1 // any non-zero port: the hub replaces UDP
	cfg.BeaconInterval = beaconEvery
	cfg.Interface, cfg.Bind = "lo", "127.0.0.1"
	cfg.EvasiveTimeout, cfg.ExpiredTimeout = 5*time.Second, 30*time.Second
	cfg.Logger = zerolog.Nop()
	return cfg
}

// simMesh starts n nodes on a beacon hub.
func simMesh(tb testing.TB, n int, beaconEvery time.Duration) []*Node {
	tb.Helper()
	raiseFileLimit(tb, uint64(4*n*n+1024))
	hub := &beaconHub{}
	nodes := make([]*Node, n)
	for i := range nodes {
		nd, err := New(simConfig(fmt.Sprintf("sim%03d", i), beaconEvery))
		if err != nil {
			tb.Fatal(err)
		}
		nd.beacons = hub.attach()
		nodes[i] = nd
	}
	tb.Cleanup(func() { closeAll(nodes) })
	for _, nd := range nodes {
		if err := nd.Start(context.Background()); err != nil {
			tb.Fatal(err)
		}
	}
	return nodes
}

func closeAll(nodes []*Node) {
	var wg sync.WaitGroup
	for _, nd := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); nd.Close() }()
	}
	wg.Wait()
}

// converged reports whether every node sees every other.
func converged(nodes []*Node) bool {
	for _, nd := range nodes {
		if len(nd.Peers()) < len(nodes)-1 {
			return false
		}
	}
	return true
}

func waitConverged(tb testing.TB, nodes []*Node, timeout time.Duration) time.Duration {
	tb.Helper()
	start := time.Now()
	for !converged(nodes) {
		if time.Since(start) > timeout {
			worst := len(nodes)
			for _, nd := range nodes {
				worst = min(worst, len(nd.Peers()))
			}
			tb.Fatalf("%d nodes not converged after %v: one sees only %d peers", len(nodes), timeout, worst)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	return time.Since(start)
}

// drainEvents reads each node's events into a channel of shouts per node.
func drainEvents(nodes []*Node) []chan Event {
	shouts := make([]chan Event, len(nodes))
	for i, nd := range nodes {
		shouts[i] = make(chan Event, 16)
		go func() {
			for ev := range nd.Events() {
				if ev.Type == EventShout {
					select {
					case shouts[i] <- ev:
					default:
					}
				}
			}
		}()
	}
	return shouts
}

func TestFiftyNodesConvergeAndShout(t *testing.T) {
	const n = 50
	nodes := simMesh(t, n, time.Second) // every node beacons at start; later beacons only add load
	shouts := drainEvents(nodes)
	took := waitConverged(t, nodes, 60*time.Second)
	t.Logf("%d nodes converged in %v", n, took.Round(time.Millisecond))

	for _, nd := range nodes {
		if err := nd.Join("all"); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < n; {
		if len(nodes[i].GroupPeers("all")) == n-1 {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d sees %d peers in the group", i, len(nodes[i].GroupPeers("all")))
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	if err := nodes[0].Shout("all", []byte("hello, fifty")); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(30 * time.Second)
	for i := 1; i < n; i++ {
		select {
		case ev := <-shouts[i]:
			if ev.Peer != nodes[0].UUID() || string(ev.Frames[0]) != "hello, fifty" {
				t.Fatalf("node %d got %+v", i, ev)
			}
		case <-timeout:
			t.Fatalf("node %d got no SHOUT", i)
		}
	}
	select {
	case ev := <-shouts[0]:
		t.Fatalf("the shouter heard its own shout: %+v", ev)
	default:
	}
	var ids = map[uuid.UUID]bool{}
	for _, nd := range nodes {
		ids[nd.UUID()] = true
	}
	if len(ids) != n {
		t.Fatalf("%d distinct UUIDs for %d nodes", len(ids), n)
	}
}
