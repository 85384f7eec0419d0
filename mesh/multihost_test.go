package mesh_test

import (
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/netns"
)

// startHosts runs one child node per namespace, each with env(i).
func startHosts(t *testing.T, nw *netns.Net, env func(i int, h *netns.Host) map[string]string) []*child {
	t.Helper()
	var kids []*child
	for i, h := range nw.Hosts {
		kids = append(kids, startChild(t, env(i, h), "ip", "netns", "exec", h.NS))
	}
	return kids
}

// waitAllEnter checks that every child reports ENTER of every other, with
// the other's real address on the bridge.
func waitAllEnter(t *testing.T, kids []*child) {
	t.Helper()
	for _, k := range kids {
		seen := map[string]bool{}
		for len(seen) < len(kids)-1 {
			line := k.waitLine(t, "ENTER ", 30*time.Second)
			seen[line] = true
		}
		for _, other := range kids {
			if other != k && !seen["ENTER "+other.id.String()+" "+other.endpoint] {
				t.Fatalf("%s did not see %s at %s; saw %v", k.id, other.id, other.endpoint, seen)
			}
		}
	}
}

func TestMultiHostBeacons(t *testing.T) {
	nw := netns.New(t, 3)
	kids := startHosts(t, nw, func(_ int, h *netns.Host) map[string]string {
		// The real ZRE port: each namespace has its own.
		return map[string]string{"BEACON_PORT": "5670", "IFACE": h.Iface, "BIND": "0.0.0.0"}
	})
	for i, k := range kids {
		if want := "tcp://" + nw.Hosts[i].IP + ":"; len(k.endpoint) <= len(want) || k.endpoint[:len(want)] != want {
			t.Fatalf("host %d advertises %s, want its eth0 address %s", i, k.endpoint, nw.Hosts[i].IP)
		}
	}
	waitAllEnter(t, kids)
}

func TestMultiHostJoinWithoutBroadcast(t *testing.T) {
	nw := netns.New(t, 3)
	seed := nw.Hosts[0].IP + ":5671"
	kids := startHosts(t, nw, func(i int, h *netns.Host) map[string]string {
		env := map[string]string{"BEACON_PORT": "0", "IFACE": h.Iface, "BIND": "0.0.0.0"}
		if i == 0 {
			env["GOSSIP_BIND"] = "0.0.0.0:5671"
		} else {
			env["JOIN"] = seed
		}
		return env
	})
	waitAllEnter(t, kids)
}
