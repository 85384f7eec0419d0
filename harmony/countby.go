package harmony

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// countByJob counts lines per distinct tuple of field values. The key
// "minute" is the line's "time" truncated to the minute, in UTC.
type countByJob struct {
	spec string
	keys []string
}

const missingValue = 0xFFFF // length marker of a field the line lacks

func parseCountBy(args string) (Job, error) {
	if args == "" {
		return nil, fmt.Errorf("count-by needs keys, e.g. level,service,minute")
	}
	keys := strings.Split(args, ",")
	if len(keys) > 16 {
		return nil, fmt.Errorf("count-by takes at most 16 keys, got %d", len(keys))
	}
	for i, k := range keys {
		keys[i] = strings.TrimSpace(k)
		if keys[i] == "" {
			return nil, fmt.Errorf("count-by: empty key in %q", args)
		}
	}
	return &countByJob{spec: "count-by " + strings.Join(keys, ","), keys: keys}, nil
}

func (j *countByJob) Spec() string { return j.spec }

// Process returns the task's counts: u32 entries, then per entry each key
// value (u16 length, 0xFFFF for missing, then bytes) and a u64 count, sorted
// by key.
func (j *countByJob) Process(data []byte, bad func(int, string)) ([]byte, error) {
	counts := map[string]*uint64{}
	vals := make([][]byte, len(j.keys))
	var key []byte
	collect := func(k, v []byte) {
		for i, name := range j.keys {
			if string(k) == name || (name == "minute" && string(k) == "time") {
				vals[i] = v
			}
		}
	}
	forEachLine(data, func(n int, line []byte) {
		if len(line) == 0 {
			return // blank lines carry nothing
		}
		clear(vals)
		if err := scanObject(line, collect); err != nil {
			bad(n, err.Error())
			return
		}
		key = key[:0]
		for i, name := range j.keys {
			key = appendKeyPart(key, name, vals[i])
		}
		if c := counts[string(key)]; c != nil { // a lookup allocates no string
			*c++
		} else {
			counts[string(key)] = new(uint64(1))
		}
	})
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := binary.BigEndian.AppendUint32(nil, uint32(len(keys)))
	for _, k := range keys {
		out = append(out, k...)
		out = binary.BigEndian.AppendUint64(out, *counts[k])
	}
	return out, nil
}

func appendKeyPart(dst []byte, name string, raw []byte) []byte {
	if raw == nil || string(raw) == "null" {
		return binary.BigEndian.AppendUint16(dst, missingValue)
	}
	if name == "minute" { // written in place: no allocation per line
		at := len(dst)
		dst = appendMinute(append(dst, 0, 0), raw)
		n := min(len(dst)-at-2, missingValue-1)
		dst = dst[:at+2+n]
		binary.BigEndian.PutUint16(dst[at:], uint16(n))
		return dst
	}
	var v []byte
	switch {
	case len(raw) >= 2 && raw[0] == '"' && !hasByte(raw, '\\'):
		v = raw[1 : len(raw)-1] // a plain string: no need to decode
	default:
		v = []byte(textValue(raw))
	}
	if len(v) >= missingValue {
		v = v[:missingValue-1]
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(v)))
	return append(dst, v...)
}

// appendMinute appends minuteOf(raw), without allocating for the common
// zerolog UTC time ("2026-11-27T04:36:07Z", fractions allowed).
func appendMinute(dst, raw []byte) []byte {
	if n := len(raw); n >= 19 && raw[0] == '"' && raw[n-2] == 'Z' && raw[11] == 'T' && raw[14] == ':' && !hasByte(raw, '\\') {
		dst = append(dst, raw[1:17]...)
		return append(dst, 'Z')
	}
	return append(dst, minuteOf(raw)...)
}

// minuteOf turns a zerolog time (RFC 3339 string, or Unix seconds or
// milliseconds) into "2006-01-02T15:04Z".
func minuteOf(raw []byte) string {
	const layout = "2006-01-02T15:04Z"
	if raw[0] == '"' {
		s := textValue(raw)
		// Fast path: already UTC, "2026-11-27T04:36:07Z" or with fractions.
		if len(s) >= 17 && s[len(s)-1] == 'Z' && s[10] == 'T' && s[13] == ':' {
			return s[:16] + "Z"
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return "invalid"
		}
		return t.UTC().Format(layout)
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return "invalid"
	}
	if f > 1e11 { // milliseconds
		f /= 1000
	}
	return time.Unix(int64(f), 0).UTC().Format(layout)
}

func (j *countByJob) NewMerger(w io.Writer) Merger {
	return &countByMerger{w: w, keys: j.keys, counts: map[string]uint64{}}
}

// countByMerger sums the task counts and writes one NDJSON line per key
// tuple, sorted, when closed: the same table whatever the task order.
type countByMerger struct {
	w      io.Writer
	keys   []string
	counts map[string]uint64
}

func (m *countByMerger) Add(result []byte) error {
	entries, err := decodeCounts(result, len(m.keys))
	if err != nil {
		return err
	}
	for _, e := range entries {
		m.counts[e.key] += e.n
	}
	return nil
}

type countEntry struct {
	key string
	n   uint64
}

func decodeCounts(b []byte, nkeys int) ([]countEntry, error) {
	r := reader{buf: b}
	n := int(r.u32())
	if r.err == nil && n > len(b)/(2*nkeys+8) {
		return nil, fmt.Errorf("%w: %d counts in %d bytes", ErrBadResult, n, len(b))
	}
	out := make([]countEntry, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		start := len(b) - len(r.buf)
		for k := 0; k < nkeys; k++ {
			if l := r.u16(); l != missingValue {
				r.take(int(l))
			}
		}
		end := len(b) - len(r.buf)
		c := r.u64()
		if r.err == nil {
			out = append(out, countEntry{key: string(b[start:end]), n: c})
		}
	}
	if r.err == nil && len(r.buf) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.buf))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: counts: %w", ErrBadResult, r.err)
	}
	return out, nil
}

func (m *countByMerger) Close() error {
	keys := make([]string, 0, len(m.counts))
	for k := range m.counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return lessParts(keys[a], keys[b], len(m.keys)) })
	var buf bytes.Buffer
	for _, k := range keys {
		buf.WriteByte('{')
		r := reader{buf: []byte(k)}
		for i, name := range m.keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeJSONString(&buf, name)
			buf.WriteByte(':')
			if l := r.u16(); l == missingValue {
				buf.WriteString("null")
			} else {
				writeJSONString(&buf, string(r.take(int(l))))
			}
		}
		fmt.Fprintf(&buf, `,"count":%d}`+"\n", m.counts[k])
		if buf.Len() > 64<<10 {
			if _, err := m.w.Write(buf.Bytes()); err != nil {
				return fmt.Errorf("harmony: write counts: %w", err)
			}
			buf.Reset()
		}
	}
	if _, err := m.w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("harmony: write counts: %w", err)
	}
	return nil
}

// lessParts orders encoded key tuples part by part, missing values first.
func lessParts(a, b string, n int) bool {
	ra, rb := reader{buf: []byte(a)}, reader{buf: []byte(b)}
	for i := 0; i < n; i++ {
		la, lb := ra.u16(), rb.u16()
		var pa, pb []byte
		if la != missingValue {
			pa = ra.take(int(la))
		}
		if lb != missingValue {
			pb = rb.take(int(lb))
		}
		if (la == missingValue) != (lb == missingValue) {
			return la == missingValue
		}
		if c := bytes.Compare(pa, pb); c != 0 {
			return c < 0
		}
	}
	return false
}

func writeJSONString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always marshals
	buf.Write(b)
}
