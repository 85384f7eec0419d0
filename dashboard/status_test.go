package dashboard

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/mesh"
)

// Fixed status sources: they feed the page's tables with known rows so the
// tests can check what the page and the API show. The mesh, timer, filemq
// and harmony services implement these interfaces through logd's wiring.
type fixedPeers struct{}

func (fixedPeers) Peers() []mesh.PeerInfo {
	return []mesh.PeerInfo{
		{ID: uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), Name: "node-c", Endpoint: "tcp://10.0.0.3:49152",
			Groups: []string{"logd"}, Headers: map[string]string{"X-HTTP": "10.0.0.3:7070"}, LastSeen: time.Now()},
		{ID: uuid.MustParse("6ba7b811-9dad-11d1-80b4-00c04fd430c8"), Name: "node-b", Endpoint: "tcp://10.0.0.2:49152",
			Groups: []string{"logd", "harmony"}, Headers: map[string]string{"X-LOGD-PUB": "tcp://10.0.0.2:49153", "X-TIMER": "tcp://10.0.0.2:49154"}, LastSeen: time.Now()},
	}
}

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
	s, _ := startServer(t, Config{Peers: fixedPeers{}, Timers: fixedTimers{}, Shipping: fixedShipping{}, Batches: fixedBatches{}})
	c := testClient(t)
	base := "http://" + s.Addr()

	var peers []mesh.PeerInfo
	getJSON(t, c, base+"/api/v1/peers", &peers)
	if len(peers) != 2 || peers[0].Name != "node-b" || peers[0].Headers["X-TIMER"] == "" {
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
