package harmony

import (
	"net"
	"net/url"
	"sort"

	"github.com/google/uuid"
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
		eps = append(eps, ResolveEndpoint(h, mailbox))
	}
	sort.Strings(eps)
	return eps
}

// ResolveEndpoint turns an advertised endpoint into one we can dial: a
// worker bound on every interface advertises "tcp://0.0.0.0:port" (it does
// not know which of its addresses peers reach), so the host is taken from
// the peer's mesh mailbox endpoint.
func ResolveEndpoint(advertised, mailbox string) string {
	u, err := url.Parse(advertised)
	if err != nil || u.Scheme != "tcp" {
		return advertised
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return advertised
	}
	if ip := net.ParseIP(host); host != "" && host != "*" && (ip == nil || !ip.IsUnspecified()) {
		return advertised
	}
	mu, err := url.Parse(mailbox)
	if err != nil {
		return advertised
	}
	mhost, _, err := net.SplitHostPort(mu.Host)
	if err != nil {
		return advertised
	}
	return "tcp://" + net.JoinHostPort(mhost, port)
}
