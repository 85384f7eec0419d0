package main

import (
	"fmt"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/mesh"
)

// headerPublicKey is the HELLO header with a node's CURVE public key (Z85),
// as the mesh (and Zyre) sends it.
const headerPublicKey = "X-PUBLICKEY"

// admittedKey returns the CURVE public key a peer advertises in its
// X-PUBLICKEY header, if c (the daemon's --keys) admits it. The components
// dial a peer's timer, FileMQ or Harmony socket with that key as the
// server's: the mesh admits peers the same way, and checking again keeps a
// component from dialling a server whose key was never admitted.
func admittedKey(c *mesh.Curve, header string) (curve.PublicKey, error) {
	key, err := curve.ParsePublicKey(header)
	if err != nil {
		return curve.PublicKey{}, fmt.Errorf("peer's %s: %w", headerPublicKey, err)
	}
	if err := c.Authorize(key, nil); err != nil {
		return curve.PublicKey{}, err
	}
	return key, nil
}
