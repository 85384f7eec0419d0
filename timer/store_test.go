package timer

import (
	"testing"
	"time"
)

// TestMergeLastWriterWins applies the same concurrent changes in different
// orders, as nodes receive them: every order converges on the newest
// version, tombstones win over older adds, and LastFired only grows.
func TestMergeLastWriterWins(t *testing.T) {
	now := time.Now()
	add := func(v int64, origin string, every time.Duration) *record {
		return &record{Spec: Spec{Name: "job", Every: Duration(every), Scope: ScopeCluster}, Version: v, Origin: origin, Created: now}
	}
	del := &record{Spec: Spec{Name: "job"}, Version: 20, Origin: "a", Deleted: true}
	orders := [][]*record{
		{add(10, "a", time.Second), add(10, "b", 2*time.Second), add(5, "c", 3*time.Second)},
		{add(5, "c", 3*time.Second), add(10, "b", 2*time.Second), add(10, "a", time.Second)},
		{add(10, "b", 2*time.Second), add(5, "c", 3*time.Second), add(10, "a", time.Second)},
	}
	for i, order := range orders {
		s, err := NewService(DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range order {
			s.applyLocked(r, now)
		}
		e := s.entries["job"]
		if e.rec.Origin != "b" || e.rec.Spec.Every != Duration(2*time.Second) {
			t.Errorf("order %d: won %+v, want version 10 from b", i, e.rec)
		}
		fired := *e.rec
		fired.LastFired = now.Add(-time.Second)
		if !s.applyLocked(&fired, now) || !e.rec.LastFired.Equal(fired.LastFired) {
			t.Errorf("order %d: LastFired not merged", i)
		}
		older := fired
		older.LastFired = now.Add(-time.Hour)
		s.applyLocked(&older, now)
		if !s.entries["job"].rec.LastFired.Equal(fired.LastFired) {
			t.Errorf("order %d: LastFired went back", i)
		}
		s.applyLocked(del, now)
		if s.applyLocked(add(15, "z", time.Second), now) || !s.entries["job"].rec.Deleted {
			t.Errorf("order %d: an older add resurrected a removed schedule", i)
		}
		if len(s.List()) != 0 {
			t.Errorf("order %d: List shows a removed schedule", i)
		}
	}
}
