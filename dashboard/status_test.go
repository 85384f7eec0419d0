package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/logmesh/logmesh/internal/meshtest"
	"github.com/logmesh/logmesh/mesh"
)

// meshPeers starts a real three-node mesh (node-a, node-b, node-c, on an
// isolated loopback mesh) and returns node-a, whose peers the dashboard shows.
func meshPeers(t *testing.T) *mesh.Node {
	t.Helper()
	nodes := make([]*mesh.Node, 3)
	for i, name := range []string{"node-a", "node-b", "node-c"} {
		cfg := meshtest.Config(t)
		cfg.Name = name
		cfg.Groups = []string{"logd"}
		cfg.Headers = map[string]string{"X-HTTP": "127.0.0.1:7070", "X-TIMER": "tcp://127.0.0.1:4100" + strconv.Itoa(i)}
		n, err := mesh.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
	}
	meshtest.WaitPeers(t, 20*time.Second, 2, nodes...)
	return nodes[0]
}

// Fixed status sources feed the page's other tables with known rows, so
// the tests can check what the page and the API show. The timer, filemq
// and harmony services implement these interfaces through logd's wiring.
type fixedTimers struct{}

func (fixedTimers) TimerStatus() TimerStatus {
	return TimerStatus{TicksMissed: 3, Schedules: []Schedule{
		{Name: "tick-100ms", Kind: "tick", Spec: "100ms", Scope: "node", Fired: 1200},
		{Name: "rotate", Kind: "cron", Spec: "0 * * * *", Scope: "cluster", Owner: "node-b", Next: time.Now().Add(time.Hour), Fired: 4},
	}}
}

type fixedShipping struct{}

func (fixedShipping) ShippingStatus() ShippingStatus {
	return ShippingStatus{BytesShipped: 5 << 20, Transfers: []Transfer{
		{Path: "api-2026-11-27T04.log.gz", Peer: "node-b", Size: 4 << 20, Sent: 3 << 20},
		{Path: "api-2026-11-27T03.log.gz", Peer: "node-b", Size: 2 << 20, Sent: 2 << 20, Done: true},
	}}
}

type fixedBatches struct{}

func (fixedBatches) Batches() []Batch {
	return []Batch{{ID: "b-17", Tasks: 40, Done: 25, Resent: 2, Workers: 3, Started: time.Now().Add(-time.Minute)}}
}

func getJSON(t *testing.T, c *http.Client, url string, v any) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func TestStatusEndpoints(t *testing.T) {
	s, _ := startServer(t, Config{Peers: meshPeers(t), Timers: fixedTimers{}, Shipping: fixedShipping{}, Batches: fixedBatches{}})
	c := testClient(t)
	base := "http://" + s.Addr()

	var peers []mesh.PeerInfo
	getJSON(t, c, base+"/api/v1/peers", &peers)
	if len(peers) != 2 || peers[0].Name != "node-b" || peers[1].Name != "node-c" ||
		peers[0].Headers["X-TIMER"] != "tcp://127.0.0.1:41001" || len(peers[0].Groups) != 1 {
		t.Fatalf("peers (sorted by name) = %+v", peers)
	}
	var timers TimerStatus
	getJSON(t, c, base+"/api/v1/timers", &timers)
	if len(timers.Schedules) != 2 || timers.TicksMissed != 3 || timers.Schedules[1].Spec != "0 * * * *" {
		t.Fatalf("timers = %+v", timers)
	}
	var ship ShippingStatus
	getJSON(t, c, base+"/api/v1/shipping", &ship)
	if ship.BytesShipped != 5<<20 || len(ship.Transfers) != 2 {
		t.Fatalf("shipping = %+v", ship)
	}
	var batches []Batch
	getJSON(t, c, base+"/api/v1/batches", &batches)
	if len(batches) != 1 || batches[0].Done != 25 {
		t.Fatalf("batches = %+v", batches)
	}

	r := openStream(t, c, base+"/api/v1/status")
	ev := readSSE(t, r)
	var st status
	if err := json.Unmarshal([]byte(ev.data), &st); ev.name != "status" || err != nil {
		t.Fatalf("status event %q: %v", ev.name, err)
	}
	if len(st.Peers) != 2 || st.Timers == nil || st.Shipping == nil || len(st.Batches) != 1 || st.Server.Clients < 1 {
		t.Fatalf("status = %+v", st)
	}
}

func TestStatusWithoutOptionalSources(t *testing.T) {
	s, _ := startServer(t, Config{})
	c := testClient(t)
	var peers []mesh.PeerInfo
	getJSON(t, c, "http://"+s.Addr()+"/api/v1/peers", &peers)
	if peers != nil {
		t.Fatalf("peers without a source = %+v, want null", peers)
	}
	var timers *TimerStatus
	getJSON(t, c, "http://"+s.Addr()+"/api/v1/timers", &timers)
	if timers != nil {
		t.Fatalf("timers without a source = %+v", timers)
	}
}
