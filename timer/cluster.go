package timer

import (
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/logmesh/logmesh/mesh"
)

// peer is another timer node, as this one knows it.
type peer struct {
	since   time.Time     // when we saw it join the group (our start if it was there before)
	leads   bool          // its sync said it was firing cluster schedules
	offset  time.Duration // its clock minus ours, from the latest probe
	rtt     time.Duration
	probed  time.Time
	hasTime bool
}

// PeerClock is a timer peer's clock offset as measured from this node.
type PeerClock struct {
	ID      string        `json:"id"`
	Offset  time.Duration `json:"offset_ns"` // peer's clock minus ours
	RTT     time.Duration `json:"rtt_ns"`
	Updated time.Time     `json:"updated,omitzero"`
}

func (s *Service) startMesh() error {
	if err := s.cfg.Mesh.Join(s.cfg.Group); err != nil {
		return err
	}
	for _, id := range s.cfg.Mesh.GroupPeers(s.cfg.Group) {
		s.peers[id] = &peer{since: s.started}
	}
	s.wg.Add(1)
	go s.meshLoop()
	s.syncTo(uuid.Nil)
	return nil
}

func (s *Service) meshLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case ev, ok := <-s.cfg.Events:
			if !ok {
				return
			}
			s.meshEvent(ev)
		}
	}
}

func (s *Service) meshEvent(ev mesh.Event) {
	switch ev.Type {
	case mesh.EventJoin:
		if ev.Group != s.cfg.Group {
			return
		}
		s.mu.Lock()
		s.peers[ev.Peer] = &peer{since: time.Now()}
		s.mu.Unlock()
		s.syncTo(ev.Peer)
		s.poke()
	case mesh.EventLeave, mesh.EventExit:
		if ev.Type == mesh.EventLeave && ev.Group != s.cfg.Group {
			return
		}
		s.mu.Lock()
		delete(s.peers, ev.Peer)
		s.mu.Unlock()
		s.poke()
	case mesh.EventShout, mesh.EventWhisper:
		if ev.Type == mesh.EventShout && ev.Group != s.cfg.Group {
			return
		}
		if ev.Type == mesh.EventWhisper && !isPeerMsg(ev.Frames) {
			return // for another component of this logd
		}
		m, err := decodePeerMsg(ev.Frames)
		if err != nil {
			s.mu.Lock()
			s.stats.badPeerMsgs++
			s.mu.Unlock()
			s.log.Debug().Err(err).Str("peer", ev.Peer.String()).Msg("timer: bad peer message")
			return
		}
		s.peerMsg(ev.Peer, m)
	}
}

func (s *Service) peerMsg(from uuid.UUID, m *peerMsg) {
	now := time.Now()
	switch m.Type {
	case "upsert", "sync":
		s.mu.Lock()
		changed := false
		if p := s.peers[from]; p != nil && m.Type == "sync" && m.Leader && !p.leads {
			// A leader rejoining (a healed partition): if its UUID is
			// lower, we stop at once instead of after Settle.
			p.leads, changed = true, true
		}
		for _, r := range m.Records {
			if s.applyLocked(r, now) {
				changed = true
			}
		}
		s.mu.Unlock()
		if changed {
			s.poke()
		}
	case "fired":
		s.mu.Lock()
		if e := s.entries[m.Name]; e != nil && !e.rec.Deleted && m.At.After(e.rec.LastFired) {
			e.rec.LastFired = m.At
			s.dirty = true
		}
		s.mu.Unlock()
	case "clock-req":
		s.whisper(from, &peerMsg{Type: "clock-rep", T1: m.T1, T2: now.UnixNano()})
	case "clock-rep":
		t3 := now.UnixNano()
		if m.T1 <= 0 || m.T1 > t3 {
			return
		}
		s.mu.Lock()
		if p := s.peers[from]; p != nil {
			p.rtt = time.Duration(t3 - m.T1)
			p.offset = time.Duration(m.T2 - (m.T1+t3)/2)
			p.probed, p.hasTime = now, true
		}
		s.mu.Unlock()
	}
}

// isLeaderLocked reports whether this node fires cluster schedules: it has
// settled, and no settled live timer peer has a lower UUID. A peer counts
// once it has been in the group for Settle, so that it has the others'
// state, or at once if its sync said it leads: after a partition heals,
// both sides' leaders meet, and the higher one stops without an overlap
// that would fire occurrences twice. A node that is new (its peers joined after it started) waits half
// a Settle longer before it leads: the leader it replaces stops after
// Settle, so the handover leaves a short gap, fired late from LastFired,
// rather than an overlap that would fire an occurrence twice.
func (s *Service) isLeaderLocked(now time.Time) bool {
	if s.cfg.Mesh == nil {
		return true
	}
	if now.Sub(s.started) < s.cfg.Settle {
		return false
	}
	self := s.cfg.Mesh.UUID()
	for id, p := range s.peers {
		known := now.Sub(p.since)
		if lessUUID(id, self) {
			if known >= s.cfg.Settle || p.leads {
				return false
			}
			continue
		}
		if !s.leader && !p.since.Before(s.started) && known < s.cfg.Settle+s.cfg.Settle/2 {
			return false
		}
	}
	return true
}

func lessUUID(a, b uuid.UUID) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// syncTo sends our full set to one peer, or to the group if to is Nil.
func (s *Service) syncTo(to uuid.UUID) {
	s.mu.Lock()
	recs := s.recordsLocked()
	leader := s.leader
	s.mu.Unlock()
	m := &peerMsg{Type: "sync", Records: recs, Leader: leader}
	if to == uuid.Nil {
		s.shout(m)
	} else {
		s.whisper(to, m)
	}
}

func (s *Service) shoutRecords(r *record) {
	if s.cfg.Mesh == nil {
		return
	}
	c := *r
	s.shout(&peerMsg{Type: "upsert", Records: []*record{&c}})
}

func (s *Service) shoutFired(fires []Fire) {
	if s.cfg.Mesh == nil {
		return
	}
	for _, f := range fires {
		s.shout(&peerMsg{Type: "fired", Name: f.Name, At: f.At})
	}
}

func (s *Service) shout(m *peerMsg) {
	if s.cfg.Mesh == nil {
		return
	}
	frames, err := encodePeerMsg(m)
	if err == nil {
		err = s.cfg.Mesh.Shout(s.cfg.Group, frames...)
	}
	// Before the node starts there is nobody to tell: peers get the full
	// set when they see us join.
	if err != nil && s.ctx.Err() == nil && !errors.Is(err, mesh.ErrNotStarted) {
		s.log.Warn().Err(err).Str("type", m.Type).Msg("timer: shout")
	}
}

func (s *Service) whisper(to uuid.UUID, m *peerMsg) {
	frames, err := encodePeerMsg(m)
	if err == nil {
		err = s.cfg.Mesh.Whisper(to, frames...)
	}
	if err != nil && s.ctx.Err() == nil {
		s.log.Warn().Err(err).Str("type", m.Type).Msg("timer: whisper")
	}
}

// probeClocks asks every timer peer for its time (NTP-style: the offset is
// t2 - (t1+t3)/2, good to about half the round trip).
func (s *Service) probeClocks() {
	s.mu.Lock()
	ids := make([]uuid.UUID, 0, len(s.peers))
	for id := range s.peers {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.whisper(id, &peerMsg{Type: "clock-req", T1: time.Now().UnixNano()})
	}
}
