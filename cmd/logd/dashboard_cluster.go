package main

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/dashboard"
	"github.com/logmesh/logmesh/logpub"
	"github.com/logmesh/logmesh/mesh"
)

// clusterLogs is the dashboard's log source with --http-cluster: this
// node's hub plus the live events of every peer's hub (its X-LOGD-PUB
// endpoint, as logtail reads it), so the graphs show a line per node and
// the tail the whole mesh. Off by default: every such dashboard receives
// every event of the mesh.
type clusterLogs struct {
	local hubSource
	d     *daemon
	log   zerolog.Logger

	mu     sync.Mutex
	subs   map[int]clusterSub
	nextID int
	levels map[string]uint64 // peers' events received here, by level
	nodes  map[string]uint64 // and by node name
	follow map[uuid.UUID]context.CancelFunc

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type clusterSub struct {
	f       dashboard.Filter
	deliver func(*dashboard.Event)
}

// startClusterLogs follows the peers that advertise a log hub until close.
func startClusterLogs(d *daemon, local hubSource) *clusterLogs {
	ctx, cancel := context.WithCancel(context.Background())
	c := &clusterLogs{local: local, d: d, log: d.log.With().Str("room", "dashboard").Logger(),
		subs: map[int]clusterSub{}, levels: map[string]uint64{}, nodes: map[string]uint64{},
		follow: map[uuid.UUID]context.CancelFunc{}, cancel: cancel}
	c.wg.Add(1)
	go c.reconcile(ctx)
	return c
}

// reconcile starts a follower for each peer with a hub and stops those of
// peers that left, once a second.
func (c *clusterLogs) reconcile(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		present := map[uuid.UUID]bool{}
		for _, p := range c.d.node.Peers() {
			pub := p.Headers["X-LOGD-PUB"]
			if pub == "" {
				continue
			}
			present[p.ID] = true
			c.mu.Lock()
			if _, ok := c.follow[p.ID]; !ok {
				fctx, stop := context.WithCancel(ctx)
				c.follow[p.ID] = stop
				c.wg.Add(1)
				go c.followPeer(fctx, p.Name, mesh.ResolveEndpoint(pub, p.Endpoint), c.curveFor(p))
			}
			c.mu.Unlock()
		}
		c.mu.Lock()
		for id, stop := range c.follow {
			if !present[id] {
				stop()
				delete(c.follow, id)
			}
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// followPeer streams one peer's live events until ctx ends, reconnecting
// after an error.
func (c *clusterLogs) followPeer(ctx context.Context, name, endpoint string, cc *logpub.CurveClient) {
	defer c.wg.Done()
	for ctx.Err() == nil {
		st, err := logpub.Subscribe(ctx, endpoint, logpub.SubscribeOptions{Follow: true, Curve: cc})
		if err == nil {
			for {
				ev, err := st.Next()
				if err != nil {
					break
				}
				c.dispatch(name, &ev)
			}
			st.Close()
		} else {
			c.log.Debug().Err(err).Str("peer", name).Str("endpoint", endpoint).Msg("follow peer's log hub")
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second): // retry pace
		}
	}
}

// curveFor is how to subscribe to peer p's hub: with our mesh keys and its
// X-PUBLICKEY on a closed mesh, plaintext on an open one.
func (c *clusterLogs) curveFor(p mesh.PeerInfo) *logpub.CurveClient {
	if c.d.curve == nil {
		return nil
	}
	k, err := curve.ParsePublicKey(p.Headers["X-PUBLICKEY"])
	if err != nil {
		// The mesh admitted p by its key, so this does not happen; the
		// subscription then fails and is retried, never plaintext.
		return &logpub.CurveClient{Keys: c.d.curve.Keys}
	}
	return &logpub.CurveClient{Keys: c.d.curve.Keys, Server: k}
}

func (c *clusterLogs) dispatch(node string, ev *logpub.Event) {
	e := dashboard.Event{Time: ev.Received, Node: node, Service: ev.Service, Level: ev.Level.String(),
		Seq: ev.Seq, Line: bytes.TrimSuffix(ev.Line, []byte{'\n'})}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.levels[e.Level]++
	c.nodes[node]++
	for _, s := range c.subs {
		if s.f.Match(&e) {
			s.deliver(&e) // never blocks (LogSource contract)
		}
	}
}

// Subscribe delivers the local hub's events and the peers' events.
func (c *clusterLogs) Subscribe(f dashboard.Filter, deliver func(*dashboard.Event)) (cancel func()) {
	stopLocal := c.local.Subscribe(f, deliver)
	c.mu.Lock()
	id := c.nextID
	c.nextID++
	c.subs[id] = clusterSub{f: f, deliver: deliver}
	c.mu.Unlock()
	return func() {
		stopLocal()
		c.mu.Lock()
		delete(c.subs, id)
		c.mu.Unlock()
	}
}

func (c *clusterLogs) Ingest(service string, line []byte) error { return c.local.Ingest(service, line) }

// Stats adds the peers' events received here to the local hub's counters.
func (c *clusterLogs) Stats() dashboard.LogStats {
	st := c.local.Stats()
	c.mu.Lock()
	defer c.mu.Unlock()
	for l, n := range c.levels {
		ls := st.Levels[l]
		ls.In += n
		st.Levels[l] = ls
	}
	for node, n := range c.nodes {
		st.Nodes[node] += n
	}
	return st
}

// close stops every follower and waits for them.
func (c *clusterLogs) close() {
	c.cancel()
	c.wg.Wait()
}
