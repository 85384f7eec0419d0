package harmony

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// zerolog's levels, in order.
var levelRank = map[string]int{"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4, "fatal": 5, "panic": 6}

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }

type filterOp int

const (
	opEq filterOp = iota
	opNe
	opMatch
	opGe
	opGt
	opLe
	opLt
)

// filterTerm is one condition of a filter: field op value.
type filterTerm struct {
	field int // index into filterJob.fields
	op    filterOp
	value string
	rank  int            // level comparisons
	re    *regexp.Regexp // opMatch
}

// filterJob keeps the lines that match every term, unchanged.
type filterJob struct {
	spec   string
	fields []string // distinct field names the terms read
	alt    []string // alternative name per field ("msg" for "message"), or ""
	terms  []filterTerm
}

// parseFilter parses "level>=warn service=api msg~regex field=value ...".
// Operators: = != ~ (regexp) and, for level, >= > <= <.
func parseFilter(args string) (Job, error) {
	words, err := splitTerms(args)
	if err != nil {
		return nil, err
	}
	j := &filterJob{spec: strings.TrimSpace("filter " + args)}
	for _, w := range words {
		t, err := j.parseTerm(w)
		if err != nil {
			return nil, err
		}
		j.terms = append(j.terms, t)
	}
	return j, nil
}

func (j *filterJob) parseTerm(w string) (filterTerm, error) {
	i := strings.IndexAny(w, "=!~<>")
	if i <= 0 {
		return filterTerm{}, fmt.Errorf("term %q: want field=value, field!=value, field~regexp or level>=name", w)
	}
	name, rest := w[:i], w[i:]
	var t filterTerm
	switch {
	case strings.HasPrefix(rest, ">="):
		t.op, t.value = opGe, rest[2:]
	case strings.HasPrefix(rest, "<="):
		t.op, t.value = opLe, rest[2:]
	case strings.HasPrefix(rest, "!="):
		t.op, t.value = opNe, rest[2:]
	case rest[0] == '>':
		t.op, t.value = opGt, rest[1:]
	case rest[0] == '<':
		t.op, t.value = opLt, rest[1:]
	case rest[0] == '=':
		t.op, t.value = opEq, rest[1:]
	case rest[0] == '~':
		t.op, t.value = opMatch, rest[1:]
	default:
		return t, fmt.Errorf("term %q: bad operator", w)
	}
	if t.op >= opGe {
		if name != "level" {
			return t, fmt.Errorf("term %q: ordering works on level only", w)
		}
		r, ok := levelRank[t.value]
		if !ok {
			return t, fmt.Errorf("term %q: unknown level %q", w, t.value)
		}
		t.rank = r
	}
	if t.op == opMatch {
		re, err := regexp.Compile(t.value)
		if err != nil {
			return t, fmt.Errorf("term %q: %w", w, err)
		}
		t.re = re
	}
	field, alt := name, ""
	if name == "msg" || name == "message" {
		field, alt = "message", "msg" // zerolog writes "message"; accept "msg" too
	}
	t.field = j.fieldIndex(field, alt)
	return t, nil
}

func (j *filterJob) fieldIndex(name, alt string) int {
	for i, f := range j.fields {
		if f == name {
			return i
		}
	}
	j.fields = append(j.fields, name)
	j.alt = append(j.alt, alt)
	return len(j.fields) - 1
}

func (j *filterJob) Spec() string { return j.spec }

// Process keeps the matching lines, each followed by '\n'.
func (j *filterJob) Process(data []byte, bad func(int, string)) ([]byte, error) {
	out := make([]byte, 0, len(data)/4)
	vals := make([][]byte, len(j.fields))
	var cur []byte
	collect := func(key, val []byte) {
		for i, f := range j.fields {
			if string(key) == f || (j.alt[i] != "" && string(key) == j.alt[i] && vals[i] == nil) {
				vals[i] = val
			}
		}
	}
	forEachLine(data, func(n int, line []byte) {
		if len(line) == 0 {
			return // blank lines carry nothing
		}
		clear(vals)
		cur = line
		if err := scanObject(cur, collect); err != nil {
			bad(n, err.Error())
			return
		}
		if j.match(vals) {
			out = append(out, line...)
			out = append(out, '\n')
		}
	})
	return out, nil
}

func (j *filterJob) match(vals [][]byte) bool {
	for i := range j.terms {
		t := &j.terms[i]
		v := vals[t.field]
		switch t.op {
		case opEq:
			if v == nil || !rawTextEqual(v, t.value) {
				return false
			}
		case opNe:
			if v != nil && rawTextEqual(v, t.value) {
				return false
			}
		case opMatch:
			if v == nil {
				return false
			}
			if len(v) >= 2 && v[0] == '"' && !hasByte(v, '\\') {
				if !t.re.Match(v[1 : len(v)-1]) {
					return false
				}
			} else if !t.re.MatchString(textValue(v)) {
				return false
			}
		default:
			if v == nil {
				return false
			}
			r, ok := levelOf(v)
			if !ok || !compareRank(r, t.op, t.rank) {
				return false
			}
		}
	}
	return true
}

// levelOf returns the rank of a raw JSON level value, without allocating
// for a plain string.
func levelOf(raw []byte) (int, bool) {
	if len(raw) >= 2 && raw[0] == '"' && !hasByte(raw, '\\') {
		r, ok := levelRank[string(raw[1:len(raw)-1])]
		return r, ok
	}
	r, ok := levelRank[textValue(raw)]
	return r, ok
}

func compareRank(r int, op filterOp, want int) bool {
	switch op {
	case opGe:
		return r >= want
	case opGt:
		return r > want
	case opLe:
		return r <= want
	default:
		return r < want
	}
}

func (j *filterJob) NewMerger(w io.Writer) Merger { return &filterMerger{w: w} }

// filterMerger writes each result as it comes: results are lines already.
type filterMerger struct{ w io.Writer }

func (m *filterMerger) Add(result []byte) error {
	if len(result) > 0 && result[len(result)-1] != '\n' {
		return fmt.Errorf("%w: filter result does not end a line", ErrBadResult)
	}
	if _, err := m.w.Write(result); err != nil {
		return fmt.Errorf("harmony: write output: %w", err)
	}
	return nil
}

func (m *filterMerger) Close() error { return nil }
