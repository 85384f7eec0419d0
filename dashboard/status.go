package dashboard

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/logmesh/logmesh/mesh"
)

// status is the payload of a "status" SSE event: everything the page shows
// besides graphs and tail. A nil field means the source is not available.
type status struct {
	Peers    []mesh.PeerInfo `json:"peers"`
	Timers   *TimerStatus    `json:"timers"`
	Shipping *ShippingStatus `json:"shipping"`
	Batches  []Batch         `json:"batches"`
	Server   serverStatus    `json:"server"`
}

type serverStatus struct {
	Time          time.Time `json:"time"`
	Clients       int64     `json:"clients"`
	ClientDropped uint64    `json:"client_dropped"`
	Rejected      uint64    `json:"rejected"`
}

func (s *Server) peers() []mesh.PeerInfo {
	if s.cfg.Peers == nil {
		return nil
	}
	ps := s.cfg.Peers.Peers()
	if ps == nil {
		ps = []mesh.PeerInfo{} // a mesh with no peers, not "no mesh"
	}
	slices.SortFunc(ps, func(a, b mesh.PeerInfo) int { return strings.Compare(a.Name, b.Name) })
	return ps
}

func (s *Server) timers() *TimerStatus {
	if s.cfg.Timers == nil {
		return nil
	}
	ts := s.cfg.Timers.TimerStatus()
	return &ts
}

func (s *Server) shipping() *ShippingStatus {
	if s.cfg.Shipping == nil {
		return nil
	}
	st := s.cfg.Shipping.ShippingStatus()
	return &st
}

func (s *Server) batches() []Batch {
	if s.cfg.Batches == nil {
		return nil
	}
	if bs := s.cfg.Batches.Batches(); bs != nil {
		return bs
	}
	return []Batch{}
}

func (s *Server) status() status {
	return status{
		Peers: s.peers(), Timers: s.timers(), Shipping: s.shipping(), Batches: s.batches(),
		Server: serverStatus{
			Time:          time.Now(),
			Clients:       s.clients.Load(),
			ClientDropped: s.clientDropped.Load(),
			Rejected:      s.linesRejected.Load() + s.cfg.Logs.Stats().Rejected,
		},
	}
}

// handleStatus serves GET /api/v1/status: SSE with a "status" event now and
// every StatusPeriod.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	done, ok := s.addClient(w)
	if !ok {
		return
	}
	defer done()
	sw, err := startSSE(w)
	if err != nil {
		return
	}
	t := time.NewTicker(s.cfg.StatusPeriod)
	defer t.Stop()
	for {
		data, _ := json.Marshal(s.status())
		sw.event("status", data)
		if sw.flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done(): // Close, also when Handler is served by the caller
			return
		case <-t.C:
		}
	}
}
