package timer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/logmesh/logmesh/internal/atomicfile"
)

// record is a schedule as replicated and persisted: the spec, its version
// for last-writer-wins merging, a tombstone for removals, and for cluster
// scope the latest occurrence fired anywhere in the mesh.
type record struct {
	Spec      Spec      `json:"spec"`
	Version   int64     `json:"version"` // ns since the Unix epoch of the last change
	Origin    string    `json:"origin"`  // node that made the last change (tie-break)
	Deleted   bool      `json:"deleted,omitempty"`
	Created   time.Time `json:"created"`
	LastFired time.Time `json:"last_fired,omitzero"`
}

// newer reports whether r wins over o under last-writer-wins.
func (r *record) newer(o *record) bool {
	if r.Version != o.Version {
		return r.Version > o.Version
	}
	return r.Origin > o.Origin
}

// ScheduleInfo is a schedule as List and Snapshot report it.
type ScheduleInfo struct {
	Spec      Spec      `json:"spec"`
	Created   time.Time `json:"created"`
	Next      time.Time `json:"next,omitzero"`
	LastFired time.Time `json:"last_fired,omitzero"`
	Fires     uint64    `json:"fires"` // fired by this node
}

// stateFile is the on-disk form: versioned so a future format is refused clearly.
type stateFile struct {
	Version   int       `json:"version"`
	Schedules []*record `json:"schedules"`
}

const (
	stateVersion  = 1
	stateName     = "timer.json"
	maxStateBytes = 64 << 20
	tombstoneTTL  = 7 * 24 * time.Hour
)

// loadState reads the schedules in dir. A missing file is an empty set; a
// corrupt one is an error (the service refuses to start rather than forget).
func loadState(dir string) ([]*record, error) {
	if dir == "" {
		return nil, nil
	}
	path := filepath.Join(dir, stateName)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("timer: load %s: %w", path, err)
	}
	if fi.Size() > maxStateBytes {
		return nil, fmt.Errorf("timer: load %s: %d bytes (max %d)", path, fi.Size(), maxStateBytes)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("timer: load %s: %w", path, err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("timer: load %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("timer: load %s: format version %d, want %d", path, st.Version, stateVersion)
	}
	out := st.Schedules[:0]
	for _, r := range st.Schedules {
		if r == nil {
			continue
		}
		if !r.Deleted {
			if err := r.Spec.Validate(); err != nil {
				return nil, fmt.Errorf("timer: load %s: %w", path, err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// saveState writes the schedules to dir atomically (temp file, fsync, rename).
func saveState(dir string, recs []*record) error {
	if dir == "" {
		return nil
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Spec.Name < recs[j].Spec.Name })
	b, err := json.MarshalIndent(stateFile{Version: stateVersion, Schedules: recs}, "", "  ")
	if err != nil {
		return fmt.Errorf("timer: save schedules: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("timer: save schedules: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, stateName), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("timer: save schedules to %s: %w", dir, err)
	}
	return nil
}
