package harmony

import (
	"sort"

	"github.com/google/uuid"

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
}

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
		eps = append(eps, mesh.ResolveEndpoint(h, mailbox))
	}
	sort.Strings(eps)
	return eps
}
