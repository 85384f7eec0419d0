package logpub

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// Event is one log event as the hub stamps and publishes it.
type Event struct {
	Node      uuid.UUID     // the logd that received it
	Service   string        // the service that wrote it
	Source    uint64        // the writer instance (random per Writer)
	Seq       uint64        // per-source sequence number, from 1
	StreamSeq uint64        // per subscription and source: a jump is a gap; 0 in history
	Received  time.Time     // when the hub received it
	Level     zerolog.Level // the zerolog level
	History   bool          // replayed from the ring or capture files (--since)
	Line      []byte        // zerolog's JSON line, byte-identical, ending in '\n'
}

// Filter selects events at the source: events it rejects never leave the hub.
// The zero Filter passes everything.
type Filter struct {
	// MinLevel, when the level filter is on, passes only events whose level
	// is in [MinLevel, PanicLevel]. The level filter is on when LevelSet is
	// true or MinLevel is not DebugLevel (its zero value, which alone
	// cannot tell "debug and above" from "no level filter"). Events without
	// a level (zerolog's Log()) or with a level zerolog does not know never
	// pass a level filter: asking for a level asks for events that have
	// one. With the level filter off every event passes, with a level or
	// without.
	MinLevel zerolog.Level
	// LevelSet turns the level filter on even when MinLevel is DebugLevel.
	// AtLeast sets it.
	LevelSet bool
	// Services, if not empty, passes only these services.
	Services []string
	// Nodes, if not empty, passes only events of these nodes, by name, by
	// UUID (any case, with or without dashes) or by its first 8 or more hex
	// digits.
	Nodes []string
}

// AtLeast returns f with the level filter on: only events of level min and
// above (up to PanicLevel) pass.
func (f Filter) AtLeast(min zerolog.Level) Filter {
	f.MinLevel, f.LevelSet = min, true
	return f
}

// levelOn reports whether the level filter is on.
func (f *Filter) levelOn() bool { return f.LevelSet || f.MinLevel != zerolog.DebugLevel }

// matchLevel reports whether level lvl passes the filter.
func (f *Filter) matchLevel(lvl zerolog.Level) bool {
	if !f.levelOn() {
		return true
	}
	return lvl >= f.MinLevel && lvl >= zerolog.TraceLevel && lvl <= zerolog.PanicLevel
}

func (f *Filter) matchService(s string) bool {
	return len(f.Services) == 0 || slices.Contains(f.Services, s)
}

// matchNode reports whether the node of UUID id and name passes. An entry
// matches the name exactly, or the UUID by value (any case, with or without
// dashes), or its first 8 or more hex digits (logtail prints the first 8
// for a node without a name).
func (f *Filter) matchNode(id uuid.UUID, name string) bool {
	if len(f.Nodes) == 0 {
		return true
	}
	hexID := strings.ReplaceAll(id.String(), "-", "")
	for _, n := range f.Nodes {
		if name != "" && n == name {
			return true
		}
		if u, err := uuid.Parse(n); err == nil && u == id {
			return true
		}
		if p := strings.ToLower(strings.ReplaceAll(n, "-", "")); len(p) >= 8 && strings.HasPrefix(hexID, p) {
			return true
		}
	}
	return false
}

// levelOf reads the zerolog "level" field of a JSON line without decoding
// it; lines without a known level are NoLevel.
func levelOf(line []byte) zerolog.Level {
	key := []byte(`"` + zerolog.LevelFieldName + `":"`)
	i := bytes.Index(line, key)
	if i < 0 {
		return zerolog.NoLevel
	}
	rest := line[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return zerolog.NoLevel
	}
	lvl, err := zerolog.ParseLevel(string(rest[:j]))
	if err != nil {
		return zerolog.NoLevel
	}
	return lvl
}

// timeOf reads the zerolog "time" field of a JSON line (RFC 3339 or unix
// seconds/ms as zerolog may be configured); ok is false when absent.
func timeOf(line []byte) (time.Time, bool) {
	key := []byte(`"` + zerolog.TimestampFieldName + `":`)
	i := bytes.Index(line, key)
	if i < 0 {
		return time.Time{}, false
	}
	rest := line[i+len(key):]
	if len(rest) > 0 && rest[0] == '"' {
		rest = rest[1:]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
		return t, err == nil
	}
	var n int64
	k := 0
	for k < len(rest) && rest[k] >= '0' && rest[k] <= '9' && k < 19 {
		n = n*10 + int64(rest[k]-'0')
		k++
	}
	switch {
	case k == 0:
		return time.Time{}, false
	case k <= 10:
		return time.Unix(n, 0), true
	case k <= 13:
		return time.UnixMilli(n), true
	case k <= 16:
		return time.UnixMicro(n), true
	}
	return time.Unix(0, n), true
}
