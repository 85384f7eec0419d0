package mesh

import (
	"net"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/curve"
)

// headerPublicKey is the HELLO header with a node's CURVE public key (Z85),
// as Zyre sends it.
const headerPublicKey = "X-PUBLICKEY"

// admit decides whether to dial a peer learned by beacon, HELLO or gossip.
// A NULL node talks to NULL peers only (it cannot speak CURVE to a peer
// that requires it); a CURVE node talks only to peers with a key that
// Config.Curve.Authorize admits.
func (a *actor) admit(id uuid.UUID, key *curve.PublicKey, remote net.Addr, via string) bool {
	c := a.n.cfg.Curve
	if c == nil {
		if key != nil {
			a.n.stats.refused.Add(1)
			a.log.Debug().Str("peer", id.String()).Str("via", via).Msg("mesh: ignoring a CURVE peer: this node has no keys")
			return false
		}
		return true
	}
	if key == nil {
		a.n.stats.refused.Add(1)
		a.log.Debug().Str("peer", id.String()).Str("via", via).Msg("mesh: ignoring a peer without a CURVE key")
		return false
	}
	if err := c.Authorize(*key, remote); err != nil {
		a.n.stats.refused.Add(1)
		a.log.Warn().Err(err).Str("peer", id.String()).Str("via", via).Msg("mesh: peer's key is not admitted")
		return false
	}
	return true
}

// clientSecurity returns the CURVE client for a peer's key, or nil on a
// NULL mesh.
func (a *actor) clientSecurity(key *curve.PublicKey) *curve.Security {
	c := a.n.cfg.Curve
	if c == nil || key == nil {
		return nil
	}
	return curve.NewClient(c.Keys, *key, curve.WithLogger(a.log),
		curve.WithMaxMessageSize(int64(a.n.cfg.MaxMessageSize)))
}

// keyOf returns the key of a v3 beacon, or nil.
func keyOf(b beacon) *curve.PublicKey {
	if !b.HasKey {
		return nil
	}
	k := curve.PublicKey(b.Key)
	return &k
}
