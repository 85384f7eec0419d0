package main

import "context"

// logdPeer is one logd to tail.
type logdPeer struct {
	ID       string // mesh UUID, or the endpoint for --connect
	Name     string // for messages
	Endpoint string // its X-LOGD-PUB endpoint
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
	for _, ep := range s.endpoints {
		ch <- peerChange{Peer: logdPeer{ID: ep, Name: ep, Endpoint: ep}}
	}
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return ch, nil
}

func (staticDiscovery) Close() error { return nil }
