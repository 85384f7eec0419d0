package harmony

import (
	"sort"

	"github.com/google/uuid"

	"github.com/logmesh/logmesh/curve"
	"github.com/logmesh/logmesh/mesh"
)

// On the mesh, every Harmony worker's node joins Group and advertises its
// task endpoint in the Header of its HELLO.
const (
	Group  = "harmony"
	Header = "X-HARMONY"
)

// PeerDirectory is what MeshWorkers needs from a mesh node; *mesh.Node
// has these methods.
type PeerDirectory interface {
	GroupPeers(group string) []uuid.UUID
	PeerHeader(id uuid.UUID, key string) (string, bool)
	PeerEndpoint(id uuid.UUID) (string, bool)
}

// MeshWorkers yields the task endpoints of the mesh peers in Group, plus
// Self (this host's own worker) when set. It is a WorkerSource.
type MeshWorkers struct {
	Dir  PeerDirectory
	Self string
	// Authorize, on a mesh closed with CURVE, admits the workers' keys:
	// only peers whose X-PUBLICKEY header it admits are yielded, as
	// KeyedEndpoint(endpoint, key). Nil: plain endpoints (an open mesh).
	Authorize curve.AuthorizeFunc
}

// HeaderPublicKey is the HELLO header with a node's CURVE public key, as
// the mesh (and Zyre) advertises it.
const HeaderPublicKey = "X-PUBLICKEY"

// WorkerEndpoints returns the workers the node sees now, sorted.
func (m MeshWorkers) WorkerEndpoints() []string {
	var eps []string
	if m.Self != "" {
		eps = append(eps, m.Self)
	}
	for _, id := range m.Dir.GroupPeers(Group) {
		h, ok := m.Dir.PeerHeader(id, Header)
		if !ok || h == "" {
			continue
		}
		mailbox, _ := m.Dir.PeerEndpoint(id)
		ep := mesh.ResolveEndpoint(h, mailbox)
		if m.Authorize != nil {
			text, _ := m.Dir.PeerHeader(id, HeaderPublicKey)
			key, err := curve.ParsePublicKey(text)
			if err != nil || m.Authorize(key, nil) != nil {
				continue // not a worker of this closed mesh
			}
			ep = KeyedEndpoint(ep, key)
		}
		eps = append(eps, ep)
	}
	sort.Strings(eps)
	return eps
}
