package mesh_test

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/logmesh/logmesh/mesh"
)

// requireCzmq skips unless python3 can load libczmq (Debian libczmq4).
func requireCzmq(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import ctypes; ctypes.CDLL('libczmq.so.4')").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI installs libczmq4 (make deps): zgossip interop must run: %v", err)
		}
		t.Skipf("skipping zgossip interop: libczmq.so.4 not loadable (apt-get install -y libczmq4): %v", err)
	}
}

// startCzgossip runs testdata/czgossip.py with args and waits for READY.
func startCzgossip(t *testing.T, args ...string) <-chan string {
	t.Helper()
	_, lines := startPython(t, append([]string{"testdata/czgossip.py"}, args...)...)
	select {
	case l := <-lines:
		if l != "READY" {
			t.Fatalf("czmq seed said %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("czmq seed did not start")
	}
	return lines
}

// gossipLine is how czmq prints a node's tuple: Zyre's key format
// (upper-case hex UUID) and the mailbox endpoint.
func gossipLine(n *mesh.Node) string {
	return "DELIVER " + strings.ToUpper(strings.ReplaceAll(n.UUID().String(), "-", "")) + " " + n.Endpoint()
}

func waitLines(t *testing.T, lines <-chan string, want map[string]bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case l := <-lines:
			delete(want, l)
		case <-deadline:
			t.Fatalf("czmq never delivered %v", want)
		}
	}
}

// TestInteropCzmqGossipSeed uses czmq's own zgossip server as the seed: two
// of our nodes without beacons join it and find each other through it, and
// it delivers their tuples.
func TestInteropCzmqGossipSeed(t *testing.T) {
	requireCzmq(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seed := ln.Addr().String()
	ln.Close() // czmq binds it next
	lines := startCzgossip(t, "bind", "tcp://"+seed)

	var nodes []*mesh.Node
	for range 2 {
		cfg := wanConfig(t)
		cfg.Join = []string{seed}
		nodes = append(nodes, startNode(t, cfg, nil))
	}
	waitEvent(t, nodes[0], 15*time.Second, is(mesh.EventEnter, nodes[1].UUID()))
	waitEvent(t, nodes[1], 15*time.Second, is(mesh.EventEnter, nodes[0].UUID()))

	waitLines(t, lines, map[string]bool{gossipLine(nodes[0]): true, gossipLine(nodes[1]): true})
}

// TestInteropCzmqGossipClient: a czmq zgossip client joins our seed and
// publishes the tuple of a node that knows no seed; the seed connects to
// that node, and the czmq client receives the seed's tuple.
func TestInteropCzmqGossipClient(t *testing.T) {
	requireCzmq(t)
	cfg := wanConfig(t)
	cfg.GossipBind = "127.0.0.1:0"
	seed := startNode(t, cfg, nil)
	lonely := startNode(t, wanConfig(t), nil)
	key := strings.ToUpper(strings.ReplaceAll(lonely.UUID().String(), "-", ""))
	lines := startCzgossip(t, "connect", "tcp://"+seed.GossipAddr(), key, lonely.Endpoint())
	waitEvent(t, lonely, 15*time.Second, is(mesh.EventEnter, seed.UUID()))
	waitEvent(t, seed, 15*time.Second, is(mesh.EventEnter, lonely.UUID()))
	waitLines(t, lines, map[string]bool{gossipLine(seed): true})
}
