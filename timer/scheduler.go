package timer

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// entry is a schedule and its next occurrence on this node.
type entry struct {
	rec   *record
	sc    schedule
	next  time.Time // zero: nothing more to fire (deleted, or a past one-shot)
	fires uint64
}

func newEntry(r *record, now time.Time) *entry {
	e := &entry{rec: r}
	if r.Deleted {
		return e
	}
	sc, err := r.Spec.schedule()
	if err != nil { // records are validated before they get here
		e.rec.Deleted = true
		return e
	}
	e.sc = sc
	if !sc.at.IsZero() { // a one-shot fires once, late if its time has passed
		if r.LastFired.IsZero() {
			e.next = sc.at
		}
		return e
	}
	e.next = sc.next(now)
	return e
}

const maxRecent = 100

// Schedule adds or replaces the schedule sp.Name on this node and, with a
// mesh, on every timer node.
func (s *Service) Schedule(sp Spec) error {
	if err := sp.Validate(); err != nil {
		return err
	}
	if sp.Scope == "" {
		sp.Scope = ScopeNode
	}
	now := time.Now()
	if !sp.At.IsZero() && sp.At.Before(now.Add(-time.Second)) {
		return badSpec(sp.Name, "at %s is in the past", sp.At.Format(time.RFC3339))
	}
	s.mu.Lock()
	r := &record{Spec: sp, Version: s.versionLocked(now), Origin: s.self, Created: now}
	if old := s.entries[sp.Name]; old != nil && !old.rec.Deleted {
		r.Created = old.rec.Created
		if old.rec.Spec == sp {
			r.LastFired = old.rec.LastFired
		}
	}
	s.applyLocked(r, now)
	s.mu.Unlock()
	s.poke()
	s.shoutRecords(r)
	return nil
}

// Cancel removes schedule name everywhere. It returns an error wrapping
// ErrUnknownName if there is no such schedule.
func (s *Service) Cancel(name string) error {
	if err := validName(name); err != nil {
		return err
	}
	now := time.Now()
	s.mu.Lock()
	e := s.entries[name]
	if e == nil || e.rec.Deleted {
		s.mu.Unlock()
		return fmt.Errorf("%w %q", ErrUnknownName, name)
	}
	r := &record{Spec: Spec{Name: name}, Version: s.versionLocked(now), Origin: s.self, Deleted: true, Created: e.rec.Created}
	s.applyLocked(r, now)
	s.mu.Unlock()
	s.poke()
	s.shoutRecords(r)
	return nil
}

// versionLocked returns a version newer than every one we hold, even if
// the clock went back.
func (s *Service) versionLocked(now time.Time) int64 {
	v := now.UnixNano()
	for _, e := range s.entries {
		if e.rec.Version >= v {
			v = e.rec.Version + 1
		}
	}
	return v
}

// applyLocked installs r if it wins over what we hold (last writer wins);
// LastFired always merges by maximum. It reports whether anything changed.
func (s *Service) applyLocked(r *record, now time.Time) bool {
	old := s.entries[r.Spec.Name]
	if old != nil && !r.newer(old.rec) {
		if r.LastFired.After(old.rec.LastFired) && old.rec.Spec == r.Spec {
			old.rec.LastFired = r.LastFired
			s.dirty = true
			return true
		}
		return false
	}
	if old != nil && old.rec.LastFired.After(r.LastFired) && old.rec.Spec == r.Spec {
		r.LastFired = old.rec.LastFired
	}
	e := newEntry(r, now)
	if old != nil {
		e.fires = old.fires
	}
	s.entries[r.Spec.Name] = e
	s.dirty = true
	return true
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// List returns the live schedules, by name.
func (s *Service) List() []ScheduleInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ScheduleInfo, 0, len(s.entries))
	for _, e := range s.entries {
		if e.rec.Deleted {
			continue
		}
		out = append(out, ScheduleInfo{Spec: e.rec.Spec, Created: e.rec.Created, Next: e.next, LastFired: e.rec.LastFired, Fires: e.fires})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out
}

// schedLoop sleeps until the next occurrence of any schedule and fires it.
func (s *Service) schedLoop() {
	defer s.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		fires := s.fireDue(now)
		s.deliver(fires)
		s.mu.Lock()
		next := time.Time{}
		for _, e := range s.entries {
			if !e.next.IsZero() && (next.IsZero() || e.next.Before(next)) {
				next = e.next
			}
		}
		s.mu.Unlock()
		d := time.Second // also re-checks leadership now and then
		if !next.IsZero() {
			d = min(d, time.Until(next))
		}
		if d <= 0 {
			continue
		}
		t.Reset(d)
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

// maxBurst bounds the occurrences of one schedule fired per pass, so that a
// long catch-up never holds the lock for long.
const maxBurst = 1000

// fireDue returns the fires due at now and advances the schedules.
func (s *Service) fireDue(now time.Time) []Fire {
	s.mu.Lock()
	defer s.mu.Unlock()
	leader := s.isLeaderLocked(now)
	if leader && !s.leader {
		s.takeOverLocked(now)
	}
	s.leader = leader
	var fires []Fire
	for _, e := range s.entries {
		if e.next.IsZero() || e.next.After(now) {
			continue
		}
		cluster := e.rec.Spec.Scope == ScopeCluster
		for i := 0; i < maxBurst && !e.next.IsZero() && !e.next.After(now); i++ {
			occ := e.next
			e.next = e.sc.next(occ)
			if !cluster && !e.next.IsZero() && !e.next.After(now) {
				s.stats.firesSkipped++ // node scope: never bunch, fire the latest
				continue
			}
			if cluster && !leader {
				continue // the leader fires it; its FIRED tells us
			}
			late := now.Sub(occ) > s.cfg.LateAfter || (cluster && occ.Before(s.leaderSince))
			f := Fire{Name: e.rec.Spec.Name, At: occ, FiredAt: now, Late: late,
				Node: s.self, Scope: e.rec.Spec.Scope, Payload: e.rec.Spec.Payload}
			fires = append(fires, f)
			e.fires++
			if occ.After(e.rec.LastFired) {
				e.rec.LastFired = occ
				s.dirty = s.dirty || cluster || !e.sc.at.IsZero()
			}
		}
	}
	sort.Slice(fires, func(i, j int) bool { return fires[i].At.Before(fires[j].At) })
	for _, f := range fires {
		if len(s.recent) == maxRecent {
			copy(s.recent, s.recent[1:])
			s.recent = s.recent[:maxRecent-1]
		}
		s.recent = append(s.recent, f)
	}
	return fires
}

// takeOverLocked restarts every cluster schedule from its last occurrence
// fired in the mesh (at most CatchUp ago), so the gap is fired, late, once.
func (s *Service) takeOverLocked(now time.Time) {
	s.leaderSince = now
	for _, e := range s.entries {
		if e.rec.Deleted || e.rec.Spec.Scope != ScopeCluster {
			continue
		}
		from := e.rec.Created
		if e.rec.LastFired.After(from) {
			from = e.rec.LastFired
		}
		if floor := now.Add(-s.cfg.CatchUp); from.Before(floor) {
			from = floor
		}
		if !e.sc.at.IsZero() {
			if e.rec.LastFired.IsZero() && !e.sc.at.Before(from) {
				e.next = e.sc.at
			}
			continue
		}
		e.next = e.sc.next(from)
	}
	s.log.Info().Msg("timer: this node now fires cluster schedules")
}

// deliver sends fires to the watchers on this node and tells the other
// timer nodes which cluster occurrences went out.
func (s *Service) deliver(fires []Fire) {
	if len(fires) == 0 {
		return
	}
	type out struct {
		id string
		b  []byte
	}
	var batch []out
	var fired []Fire
	for _, f := range fires {
		if f.Scope == ScopeCluster {
			fired = append(fired, f)
		}
	}
	// Tell the peers first: if this node dies right after, the next one
	// knows these occurrences are done.
	s.shoutFired(fired)
	s.mu.Lock()
	for _, f := range fires {
		data, err := json.Marshal(f)
		if err != nil {
			continue
		}
		m := message{Type: msgFire, Name: f.Name, At: f.At.UnixNano(), Data: data}
		if f.Late {
			m.Flags |= flagLate
		}
		for id, c := range s.clients {
			if !c.watch[f.Name] && !c.watch["*"] {
				continue
			}
			if c.sent-c.acked >= uint64(s.cfg.Window) {
				s.stats.firesDropped++
				continue
			}
			c.sent++
			m.Seq = c.sent
			b, err := m.encode()
			if err != nil {
				continue
			}
			batch = append(batch, out{id, b})
		}
	}
	s.mu.Unlock()
	for _, o := range batch {
		s.sendRaw(o.id, o.b)
	}
}
