package mesh_test

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/mesh"
)

// One address holds mailbox connections that say nothing (the handshake
// deadline is 30 s). Past MaxPendingPerSource the node closes new ones at
// once and counts them; once they leave, a peer from that address joins.
func TestMailboxPendingLimitPerSource(t *testing.T) {
	t.Parallel()
	cfg := meshtest.Config(t)
	cfg.MaxPendingPerSource = 4
	a := startNode(t, cfg, nil)
	var flood []net.Conn
	for range 7 {
		c, err := net.Dial("tcp", strings.TrimPrefix(a.Endpoint(), "tcp://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		flood = append(flood, c)
	}
	waitStat(t, a, "Shed", func(s mesh.Stats) uint64 { return s.Shed }, 3)
	closed := 0
	for _, c := range flood {
		// The node may send its greeting to the ones it took: read past it.
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := io.Copy(io.Discard, c); !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	if s := a.Stats(); closed != 3 || s.Shed != 3 {
		t.Fatalf("%d of 7 silent connections closed, Shed = %d; want the 3 past the limit", closed, s.Shed)
	}
	for _, c := range flood {
		c.Close()
	}
	b := startNode(t, meshtest.Config(t), nil)
	meshtest.WaitPeers(t, 20*time.Second, 1, a, b)
	if s := a.Stats(); s.Shed != 3 {
		t.Fatalf("Shed = %d after the flood left, want 3: the peer from the same address was shed", s.Shed)
	}
}
