package timer

import (
	"sort"
	"time"
)

// Snapshot is the state of a service for dashboards and `logd timer`.
type Snapshot struct {
	Node        string         `json:"node,omitempty"` // our mesh UUID
	Endpoint    string         `json:"endpoint"`
	Leader      bool           `json:"leader"` // fires cluster schedules now
	Clients     int            `json:"clients"`
	Schedules   []ScheduleInfo `json:"schedules"`
	RecentFires []Fire         `json:"recent_fires"`
	Ticks       []TickStats    `json:"ticks"`
	Peers       []PeerClock    `json:"peers"`
	// BadMessages counts malformed or unexpected client frames;
	// BadPeerMessages the same from timer peers.
	BadMessages     uint64 `json:"bad_messages"`
	BadPeerMessages uint64 `json:"bad_peer_messages"`
	// FiresDropped counts fires not sent to a watcher whose window was full;
	// FiresSkipped node-scope occurrences passed over because the node was late.
	FiresDropped uint64 `json:"fires_dropped"`
	FiresSkipped uint64 `json:"fires_skipped"`
	SendErrors   uint64 `json:"send_errors"`
	Rejected     uint64 `json:"rejected_clients"`
	// PublicKey is the service's CURVE public key (Z85) when it has Keys:
	// what a client needs as its ServerKey. Empty: an open socket.
	PublicKey string `json:"public_key,omitempty"`
	// Refused counts connections refused for their security: with Keys,
	// clients with no CURVE, an unadmitted key or a failed handshake;
	// without, CURVE clients.
	Refused uint64 `json:"refused"`
}

// TickStats counts the ticks of one period.
type TickStats struct {
	Period      time.Duration `json:"period_ns"`
	Subscribers int           `json:"subscribers"` // clients receiving this period
	Last        int64         `json:"last"`        // number of the latest tick
	Sent        uint64        `json:"sent"`        // tick messages sent to clients
	Dropped     uint64        `json:"dropped"`     // not sent: the client's window was full (it sees Missed)
	Skipped     uint64        `json:"skipped"`     // ticks the service itself woke too late for
}

// Snapshot returns the current state of the service.
func (s *Service) Snapshot() Snapshot {
	sched := s.List()
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{
		Node:            s.self,
		Endpoint:        s.ep,
		Leader:          s.leader,
		Clients:         len(s.clients),
		Schedules:       sched,
		RecentFires:     append([]Fire(nil), s.recent...),
		BadMessages:     s.stats.badMessages,
		BadPeerMessages: s.stats.badPeerMsgs,
		FiresDropped:    s.stats.firesDropped,
		FiresSkipped:    s.stats.firesSkipped,
		SendErrors:      s.stats.sendErrors,
		Rejected:        s.stats.rejected,
		Refused:         s.guard.Mechanism(),
	}
	if s.sec != nil {
		st := s.sec.Stats()
		snap.PublicKey = s.sec.PublicKey().String()
		snap.Refused += st.Failures + st.Unauthorized
	}
	for i, p := range Periods {
		t := s.ticks[i]
		snap.Ticks = append(snap.Ticks, TickStats{Period: p, Subscribers: t.subs, Last: t.last, Sent: t.sent, Dropped: t.dropped, Skipped: t.skipped})
	}
	for id, p := range s.peers {
		pc := PeerClock{ID: id.String()}
		if p.hasTime {
			pc.Offset, pc.RTT, pc.Updated = p.offset, p.rtt, p.probed
		}
		snap.Peers = append(snap.Peers, pc)
	}
	sort.Slice(snap.Peers, func(i, j int) bool { return snap.Peers[i].ID < snap.Peers[j].ID })
	return snap
}
