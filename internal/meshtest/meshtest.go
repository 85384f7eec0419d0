// Package meshtest gives tests isolated ZRE meshes on loopback: nodes of one
// test see each other and nothing else, even when the tests of several
// packages run at once.
//
//	nodes := meshtest.Cluster(t, 3) // started, each sees the other two
//	cfg := meshtest.Config(t)       // same mesh as nodes, for one more node
package meshtest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logmesh/logmesh/mesh"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

var (
	mu    sync.Mutex
	ports = map[testing.TB]int{}
)

// Config returns a mesh.Config for the test's own mesh on loopback: a beacon
// port reserved for this test (the same for every call with the same t; a
// subtest has its own t, so pass the parent's config down to share a mesh),
// beacons to 127.255.255.255 every 100 ms, mailbox on 127.0.0.1, evasive
// after 1 s and expired after 5 s, warnings logged to the test log.
func Config(t testing.TB) mesh.Config {
	t.Helper()
	cfg := mesh.DefaultConfig()
	cfg.Name = fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()%100000)
	if len(cfg.Name) > 200 {
		cfg.Name = cfg.Name[len(cfg.Name)-200:]
	}
	cfg.BeaconPort = beaconPort(t)
	cfg.BeaconInterval = 100 * time.Millisecond
	cfg.Interface = "lo"
	cfg.BroadcastAddr = "127.255.255.255"
	cfg.Bind = "127.0.0.1"
	cfg.EvasiveTimeout = time.Second
	cfg.ExpiredTimeout = 5 * time.Second
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	return cfg
}

// beaconPort reserves a UDP port for the test's beacons until it ends. The
// kernel picks a port nobody uses; a socket with SO_REUSEPORT then holds
// it, so the test's nodes can share it while other tests cannot get it.
func beaconPort(t testing.TB) int {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if p, ok := ports[t]; ok {
		return p
	}
	for range 20 {
		probe, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			t.Fatalf("meshtest: reserve beacon port: %v", err)
		}
		port := probe.LocalAddr().(*net.UDPAddr).Port
		probe.Close()
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}}
		hold, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
		if err != nil {
			continue // taken in between: try another
		}
		// Keep the hold socket's buffer small: it never reads.
		if uc, ok := hold.(*net.UDPConn); ok {
			_ = uc.SetReadBuffer(1024)
		}
		ports[t] = port
		t.Cleanup(func() {
			hold.Close()
			mu.Lock()
			delete(ports, t)
			mu.Unlock()
		})
		return port
	}
	t.Fatalf("meshtest: could not reserve a beacon port")
	return 0
}

// Cluster starts n nodes on the test's mesh and waits (up to 20 s) until
// each sees all the others. The nodes are closed when the test ends.
func Cluster(t testing.TB, n int) []*mesh.Node {
	t.Helper()
	nodes := make([]*mesh.Node, n)
	for i := range nodes {
		cfg := Config(t)
		cfg.Name = fmt.Sprintf("node%d", i)
		node, err := mesh.New(cfg)
		if err != nil {
			t.Fatalf("meshtest: new node: %v", err)
		}
		t.Cleanup(func() { node.Close() })
		if err := node.Start(context.Background()); err != nil {
			t.Fatalf("meshtest: start node: %v", err)
		}
		nodes[i] = node
	}
	WaitPeers(t, 20*time.Second, n-1, nodes...)
	return nodes
}

// WaitPeers waits until every node sees at least want peers, or fails the
// test after timeout.
func WaitPeers(t testing.TB, timeout time.Duration, want int, nodes ...*mesh.Node) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		short := -1
		for i, nd := range nodes {
			if len(nd.Peers()) < want {
				short = i
				break
			}
		}
		if short < 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("meshtest: node %d sees %d peers after %v, want %d", short, len(nodes[short].Peers()), timeout, want)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for a condition
	}
}
