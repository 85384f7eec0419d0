package mesh

import (
	"net"
	"testing"
	"time"
)

// TestBeaconsFromOtherAddressesDoNotFlap: a host with several addresses may
// beacon from any of them; the peer keeps its first endpoint and neither
// exits nor re-enters.
func TestBeaconsFromOtherAddressesDoNotFlap(t *testing.T) {
	nodes := simMeshNoCleanup(t, 2, 50*time.Millisecond)
	defer closeAll(nodes)
	a, b := nodes[0], nodes[1]
	waitConverged(t, nodes, 20*time.Second)
	ep, _ := a.PeerEndpoint(b.UUID())
	probe := a.beacons.(*memBeacons)
	for i := range 20 {
		// Inject b's beacon as if it came from another address of its host.
		probe.hub.mu.Lock()
		probe.ch <- heard{data: beacon{ID: b.UUID(), Port: 1}.encode(), from: net.IPv4(127, 0, 0, byte(2+i))}
		probe.hub.mu.Unlock()
	}
	deadline := time.After(time.Second)
	for waiting := true; waiting; {
		select {
		case ev := <-a.Events():
			if ev.Type == EventExit || (ev.Type == EventEnter && ev.Peer == b.UUID() && ev.Endpoint != ep) {
				t.Fatalf("peer flapped: %v %s", ev.Type, ev.Endpoint)
			}
		case <-deadline:
			waiting = false
		}
	}
	if got, _ := a.PeerEndpoint(b.UUID()); got != ep {
		t.Fatalf("endpoint changed from %s to %s", ep, got)
	}
	if len(a.Peers()) != 1 {
		t.Fatalf("peers = %+v", a.Peers())
	}
}
