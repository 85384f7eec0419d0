package logpub

import (
	"bytes"
	"slices"
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
	// MinLevel passes events at this level and above. DebugLevel (the zero
	// value) or TraceLevel pass every event, including trace and level-less
	// ones; InfoLevel and above pass only events of a level in
	// [MinLevel, PanicLevel].
	MinLevel zerolog.Level
	// Services, if not empty, passes only these services.
	Services []string
	// Nodes, if not empty, passes only events of these nodes (UUID or name).
	Nodes []string
}

// matchLevel reports whether level lvl passes the filter.
func (f *Filter) matchLevel(lvl zerolog.Level) bool {
	if f.MinLevel <= zerolog.DebugLevel {
		return true
	}
	return lvl >= f.MinLevel && lvl <= zerolog.PanicLevel
}

func (f *Filter) matchService(s string) bool {
	return len(f.Services) == 0 || slices.Contains(f.Services, s)
}

func (f *Filter) matchNode(id, name string) bool {
	return len(f.Nodes) == 0 || slices.Contains(f.Nodes, id) || (name != "" && slices.Contains(f.Nodes, name))
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
