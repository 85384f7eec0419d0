package mesh_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/mesh"
)

// waitEvent reads events until one matches or the timeout passes.
func waitEvent(t *testing.T, n *mesh.Node, timeout time.Duration, match func(mesh.Event) bool) mesh.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-n.Events():
			if !ok {
				t.Fatalf("events closed while waiting")
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no matching event within %v", timeout)
		}
	}
}

func is(typ mesh.EventType, peer uuid.UUID) func(mesh.Event) bool {
	return func(ev mesh.Event) bool { return ev.Type == typ && ev.Peer == peer }
}

func startNode(t *testing.T, cfg mesh.Config, headers map[string]string) *mesh.Node {
	t.Helper()
	n, err := mesh.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	for k, v := range headers {
		n.SetHeader(k, v)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTwoNodesTalk(t *testing.T) {
	cfgA, cfgB := meshtest.Config(t), meshtest.Config(t)
	cfgA.Name, cfgB.Name = "alpha", "beta"
	a := startNode(t, cfgA, map[string]string{"X-LOGD-PUB": "tcp://127.0.0.1:9999"})
	b := startNode(t, cfgB, nil)

	ev := waitEvent(t, b, 10*time.Second, is(mesh.EventEnter, a.UUID()))
	if ev.Name != "alpha" || ev.Headers["X-LOGD-PUB"] != "tcp://127.0.0.1:9999" || ev.Endpoint != a.Endpoint() {
		t.Fatalf("ENTER = %+v, want alpha with header, endpoint %s", ev, a.Endpoint())
	}
	waitEvent(t, a, 10*time.Second, is(mesh.EventEnter, b.UUID()))
	if name, ok := a.PeerName(b.UUID()); !ok || name != "beta" {
		t.Fatalf("PeerName = %q, %v", name, ok)
	}
	if v, ok := b.PeerHeader(a.UUID(), "X-LOGD-PUB"); !ok || v != "tcp://127.0.0.1:9999" {
		t.Fatalf("PeerHeader = %q, %v", v, ok)
	}
	if ep, ok := b.PeerEndpoint(a.UUID()); !ok || ep != a.Endpoint() {
		t.Fatalf("PeerEndpoint = %q, %v; want %s", ep, ok, a.Endpoint())
	}

	if err := a.Join("logs"); err != nil {
		t.Fatal(err)
	}
	if err := b.Join("logs"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, a, 5*time.Second, func(ev mesh.Event) bool {
		return ev.Type == mesh.EventJoin && ev.Peer == b.UUID() && ev.Group == "logs"
	})
	waitEvent(t, b, 5*time.Second, func(ev mesh.Event) bool {
		return ev.Type == mesh.EventJoin && ev.Peer == a.UUID() && ev.Group == "logs"
	})
	if got := a.GroupPeers("logs"); !slices.Equal(got, []uuid.UUID{b.UUID()}) {
		t.Fatalf("GroupPeers = %v", got)
	}
	if self := a.Self(); !slices.Equal(self.Groups, []string{"logs"}) || self.ID != a.UUID() || self.Headers["X-LOGD-PUB"] == "" {
		t.Fatalf("Self = %+v", self)
	}

	if err := a.Shout("logs", []byte("to all"), []byte("part 2")); err != nil {
		t.Fatal(err)
	}
	ev = waitEvent(t, b, 5*time.Second, is(mesh.EventShout, a.UUID()))
	if ev.Group != "logs" || len(ev.Frames) != 2 || string(ev.Frames[0]) != "to all" || string(ev.Frames[1]) != "part 2" {
		t.Fatalf("SHOUT = %+v", ev)
	}
	if err := b.Whisper(a.UUID(), []byte("just you")); err != nil {
		t.Fatal(err)
	}
	ev = waitEvent(t, a, 5*time.Second, is(mesh.EventWhisper, b.UUID()))
	if len(ev.Frames) != 1 || string(ev.Frames[0]) != "just you" {
		t.Fatalf("WHISPER = %+v", ev)
	}
	if err := b.Whisper(uuid.New(), []byte("nobody")); err != mesh.ErrUnknownPeer {
		t.Fatalf("whisper to unknown peer: %v", err)
	}

	if err := b.Leave("logs"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, a, 5*time.Second, func(ev mesh.Event) bool {
		return ev.Type == mesh.EventLeave && ev.Peer == b.UUID() && ev.Group == "logs"
	})
	if got := a.GroupPeers("logs"); len(got) != 0 {
		t.Fatalf("GroupPeers after LEAVE = %v", got)
	}

	// Close sends a port-0 beacon: the peer exits at once, not at expiry.
	start := time.Now()
	b.Close()
	waitEvent(t, a, 3*time.Second, is(mesh.EventExit, b.UUID()))
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("EXIT after %v", d)
	}
	if err := b.Shout("logs", []byte("x")); err != mesh.ErrClosed {
		t.Fatalf("Shout after Close: %v", err)
	}
}

func TestClusterHelper(t *testing.T) {
	nodes := meshtest.Cluster(t, 4)
	for _, n := range nodes {
		if got := len(n.Peers()); got != 3 {
			t.Fatalf("%s sees %d peers", n.Name(), got)
		}
	}
}

func TestEventsEndWithStop(t *testing.T) {
	n := startNode(t, meshtest.Config(t), nil)
	n.Close()
	var last mesh.Event
	for ev := range n.Events() {
		last = ev
	}
	if last.Type != mesh.EventStop {
		t.Fatalf("last event = %v, want STOP", last.Type)
	}
}
