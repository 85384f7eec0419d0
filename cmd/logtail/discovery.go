package main

import (
	"context"

	"github.com/logmesh/logmesh/curve"
)

// logdPeer is one logd to tail.
type logdPeer struct {
	ID       string // mesh UUID, or the endpoint for --connect
	Name     string // for messages
	Endpoint string // its X-LOGD-PUB endpoint
	// Key is its CURVE public key (mesh header X-PUBLICKEY, or after '|'
	// in --connect), nil on an open mesh.
	Key *curve.PublicKey
}

// peerChange is a logd appearing or leaving.
type peerChange struct {
	Peer logdPeer
	Gone bool
}

// discovery finds the logds to tail. Watch sends every logd known or found
// later, and departures, until ctx ends; then it closes the channel.
type discovery interface {
	Watch(ctx context.Context) (<-chan peerChange, error)
	Close() error
}

// staticDiscovery is the fixed list of --connect endpoints.
type staticDiscovery struct{ endpoints []string }

func (s staticDiscovery) Watch(ctx context.Context) (<-chan peerChange, error) {
	ch := make(chan peerChange, len(s.endpoints))
	for _, v := range s.endpoints {
		ep, key, err := splitConnect(v)
		if err != nil {
			return nil, err
		}
		ch <- peerChange{Peer: logdPeer{ID: ep, Name: ep, Endpoint: ep, Key: key}}
	}
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return ch, nil
}

func (staticDiscovery) Close() error { return nil }

// refusals is implemented by a discovery that can tell how many peers it
// refused, or that refused it, for security (a closed mesh).
type refusals interface{ Refused() uint64 }
