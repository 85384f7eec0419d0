package harmony

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/mesh"
)

// TestBatchOverMeshWorkers finds the workers through real mesh nodes:
// each worker's node joins the harmony group and advertises X-HARMONY.
func TestBatchOverMeshWorkers(t *testing.T) {
	var nodes []*mesh.Node
	for i := range 3 {
		cfg := meshtest.Config(t)
		cfg.Name = fmt.Sprintf("h%d", i)
		node, err := mesh.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		if i > 0 { // node 0 only drives the batch
			w, err := NewWorker(WorkerConfig{Endpoint: "tcp://0.0.0.0:0"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			node.SetHeader(Header, w.Endpoint())
			if err := node.Join(Group); err != nil {
				t.Fatal(err)
			}
		}
		if err := node.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, node)
	}
	src := MeshWorkers{Dir: nodes[0]}
	waitFor(t, "two harmony workers on the mesh", 20*time.Second, func() bool {
		return len(src.WorkerEndpoints()) == 2
	})
	for _, ep := range src.WorkerEndpoints() {
		if !bytes.HasPrefix([]byte(ep), []byte("tcp://127.0.0.1:")) {
			t.Fatalf("endpoint %q not resolved to the peer's host", ep)
		}
	}
	tasks := cut(genLines(30_000, 41), "m.log", 1000)
	job := mustJob(t, "filter level>=warn")
	want, _ := localRun(t, job, tasks)
	got, _ := distRun(t, job, tasks, src, VentilatorConfig{})
	if !bytes.Equal(got, want) {
		t.Fatal("output over mesh workers differs from the local run")
	}
}
