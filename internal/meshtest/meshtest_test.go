package meshtest

import (
	"testing"
	"time"
)

// TestMeshesAreIsolated runs two clusters at once, as tests of different
// packages do: each node sees exactly its own cluster.
func TestMeshesAreIsolated(t *testing.T) {
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			nodes := Cluster(t, 3)
			// Beacons every 100 ms: a second is ten chances to hear the other mesh.
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) {
				for _, n := range nodes {
					if got := len(n.Peers()); got != 2 {
						t.Fatalf("%s sees %d peers, want 2", n.Name(), got)
					}
				}
				time.Sleep(50 * time.Millisecond) // sampling interval
			}
		})
	}
}
