package logpub

import "time"

// Sequence-based resume, the Hub's side. A subscriber that keeps its own
// copy of a hub's events (a Collector) asks for "everything after these
// (source, seq) cursors": the hub answers with the matching events of its
// ring that are newer than the cursors, then a SOURCES report of the last
// sequence it accepted of every source (taken under the same lock as the
// ring snapshot), then END, then live events. Whatever the report says
// exists beyond what the subscriber received is no longer available at
// the hub: the subscriber counts it as a gap instead of losing it silently.

// resumeState is the part of a subscription that only resume uses.
type resumeState struct {
	sources []SourceSeq
	cur     map[uint64]uint64 // the cursors
	files   []fileResume      // history older than the ring (resume_index.go)
}

// resumeSnapshotLocked takes the ring events after the cursors and the
// sources report; called under the Hub's lock at registration, like
// snapshotLocked, so nothing is missed or repeated before live events.
func (s *hubSub) resumeSnapshotLocked(after []SourceSeq) {
	h := s.h
	rs := &resumeState{}
	s.resume = rs
	if !s.nodeMatch {
		return
	}
	cur := make(map[uint64]uint64, len(after))
	for _, c := range after {
		cur[c.Source] = c.Seq
	}
	rs.cur = cur
	inRing := map[string]int{}
	h.ring.each(func(e *Event) {
		if h.capt != nil {
			inRing[h.capt.keyFor(e.Service)]++
		}
		if e.Seq > cur[e.Source] && s.match(e) {
			s.history = append(s.history, qent{ev: e, hist: true})
		}
	})
	if h.capt != nil {
		rs.files = s.planFilesLocked(cur, inRing)
	}
	for _, src := range h.sources {
		if src.lastSeq > 0 && s.filter.matchService(src.service) {
			rs.sources = append(rs.sources, SourceSeq{Source: src.id, Service: src.service, Seq: src.lastSeq})
		}
	}
}

// sourcesOut is implemented by outputs that can carry a SOURCES report
// (network connections; in-process subscriptions do not resume).
type sourcesOut interface {
	sources(l []SourceSeq) error
}

func (s *hubSub) sendSources() error {
	so, ok := s.out.(sourcesOut)
	if !ok {
		return nil
	}
	return so.sources(s.resume.sources)
}

func (o *connOut) sources(l []SourceSeq) error {
	o.buf = appendSources(o.buf[:0], l)
	o.c.SetWriteDeadline(time.Now().Add(o.timeout))
	_, err := o.c.Write(o.buf)
	if cap(o.buf) > 2*eventsFrameBytes {
		o.buf = nil
	}
	return err
}
