package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/logpub"
	"github.com/logmesh/logmesh/mesh"
)

// loadKeys reads --keys: this logtail's key pair and the public keys it
// admits, as `logd --keys` reads them. nil without --keys.
func loadKeys(o *options) (*mesh.Curve, error) {
	if o.keys == "" {
		return nil, nil
	}
	kp, allow, err := curve.LoadKeyDir(o.keys)
	if err != nil {
		return nil, fmt.Errorf("--keys: %w", err)
	}
	return &mesh.Curve{Keys: kp, Authorize: allow.Authorize}, nil
}

// splitConnect reads a --connect value: an endpoint, with the logd's
// public key after a '|' (as the mesh's gossip writes "endpoint|key") when
// the mesh is closed with CURVE. Z85 has no '|'.
func splitConnect(v string) (endpoint string, key *curve.PublicKey, err error) {
	ep, k, ok := strings.Cut(v, "|")
	if !ok {
		return v, nil, nil
	}
	pk, err := curve.ParsePublicKey(k)
	if err != nil {
		return "", nil, fmt.Errorf("--connect %q: %w", v, err)
	}
	return ep, &pk, nil
}

// subscribe subscribes to peer's hub: in plaintext without --keys (the
// hub must then be plaintext too), with CURVE and the peer's public key
// with them, an error when that key is unknown.
func (t *tailer) subscribe(ctx context.Context, peer *logdPeer, opts logpub.SubscribeOptions) (*logpub.Stream, error) {
	if t.keys != nil {
		if peer.Key == nil {
			return nil, fmt.Errorf("%w: no public key for %s (on a closed mesh give --connect 'ENDPOINT|KEY')", errRefusedByHub, peer.Name)
		}
		opts.Curve = &logpub.CurveClient{Keys: t.keys.Keys, Server: *peer.Key}
	}
	return logpub.Subscribe(ctx, peer.Endpoint, opts)
}

// errRefusedByHub marks a subscription that no retry can fix: the hub and
// logtail disagree on security.
var errRefusedByHub = errors.New("security mismatch")

// refusedByHub reports a failure that retrying cannot fix: CURVE on one
// side only, a key not admitted, a hub that is not who its key says.
func refusedByHub(err error) bool {
	return errors.Is(err, logpub.ErrCurveRequired) || errors.Is(err, logpub.ErrNotCurve) ||
		errors.Is(err, curve.ErrRefused) || errors.Is(err, curve.ErrAuth) || errors.Is(err, errRefusedByHub)
}

// refusedPeers reports, with a warning, peers the mesh refused for
// security while no logd was found: a closed mesh this logtail cannot join.
func (t *tailer) refusedPeers(d discovery) bool {
	r, ok := d.(refusals)
	if !ok {
		return false
	}
	n := r.Refused()
	if n == 0 {
		return false
	}
	if t.keys == nil {
		t.warnf("no logd found: %d mesh peer(s) refused because they require CURVE; give --keys DIR with a key they admit", n)
	} else {
		t.warnf("no logd found: %d mesh peer(s) refused (CURVE: this logtail's key %s is not admitted, or theirs is not in --keys)", n, t.keys.Keys.Public)
	}
	return true
}

func (t *tailer) hasFailed() bool {
	t.errMu.Lock()
	defer t.errMu.Unlock()
	return t.failed
}
