package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/mesh"
)

func init() { newDiscovery = newMeshDiscovery }

// meshDiscovery joins the mesh as a plain peer (no service headers, no
// groups) and reports every peer that advertises X-LOGD-PUB.
type meshDiscovery struct {
	node   *mesh.Node
	wg     sync.WaitGroup
	closed sync.Once
}

func newMeshDiscovery(o *options, stderr io.Writer) (discovery, error) {
	var err error
	cfg := mesh.DefaultConfig()
	host, _ := os.Hostname()
	cfg.Name = fmt.Sprintf("logtail-%s-%d", host, os.Getpid())
	cfg.BeaconPort = o.beaconPort
	if o.iface != "" {
		cfg.Interface = o.iface
	}
	if o.broadcast != "" {
		cfg.BroadcastAddr = o.broadcast
	}
	if o.bind != "" {
		cfg.Bind = o.bind
	}
	if o.join != "" {
		cfg.Join = strings.Split(o.join, ",")
	}
	if cfg.Curve, err = loadKeys(o); err != nil {
		return nil, err
	}
	n, err := mesh.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	return &meshDiscovery{node: n}, nil
}

func (m *meshDiscovery) Watch(ctx context.Context) (<-chan peerChange, error) {
	if err := m.node.Start(ctx); err != nil {
		return nil, fmt.Errorf("join mesh: %w", err)
	}
	out := make(chan peerChange, 64)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(out)
		events := m.node.Events()
		send := func(c peerChange) bool {
			select {
			case out <- c:
				return true
			case <-ctx.Done():
				return false
			}
		}
		known := map[string]bool{}
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-events:
				if !ok {
					return
				}
				id := ev.Peer.String()
				switch ev.Type {
				case mesh.EventEnter:
					pub := ev.Headers["X-LOGD-PUB"]
					if pub == "" {
						continue
					}
					known[id] = true
					var key *curve.PublicKey
					if k, err := curve.ParsePublicKey(ev.Headers["X-PUBLICKEY"]); err == nil {
						key = &k
					}
					if !send(peerChange{Peer: logdPeer{ID: id, Name: ev.Name, Endpoint: mesh.ResolveEndpoint(pub, ev.Endpoint), Key: key}}) {
						return
					}
				case mesh.EventExit:
					if known[id] {
						delete(known, id)
						if !send(peerChange{Gone: true, Peer: logdPeer{ID: id, Name: ev.Name}}) {
							return
						}
					}
				case mesh.EventStop:
					return
				}
			}
		}
	}()
	return out, nil
}

// Refused returns how many peers the mesh refused for security: CURVE
// peers of a logtail without keys, keys not admitted either way.
func (m *meshDiscovery) Refused() uint64 { return m.node.Stats().Refused }

func (m *meshDiscovery) Close() error {
	var err error
	m.closed.Do(func() {
		err = m.node.Close()
		m.wg.Wait()
	})
	return err
}
