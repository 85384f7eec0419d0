package harmony

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// convertJob rewrites each JSON line in another format. The only format so
// far is logfmt: key=value pairs in the line's order, or only the given
// fields in the given order ("convert logfmt time,level,message").
type convertJob struct {
	spec   string
	fields []string // nil: every field
}

func parseConvert(args string) (Job, error) {
	format, rest, _ := strings.Cut(args, " ")
	if format != "logfmt" {
		return nil, fmt.Errorf("convert: unknown format %q (have logfmt)", format)
	}
	j := &convertJob{spec: strings.TrimSpace("convert logfmt " + rest)}
	if rest = strings.TrimSpace(rest); rest != "" {
		for _, f := range strings.Split(rest, ",") {
			if f = strings.TrimSpace(f); f == "" {
				return nil, fmt.Errorf("convert: empty field in %q", rest)
			}
			j.fields = append(j.fields, f)
		}
	}
	return j, nil
}

func (j *convertJob) Spec() string { return j.spec }

// Process returns one logfmt line per JSON line.
func (j *convertJob) Process(data []byte, bad func(int, string)) ([]byte, error) {
	out := make([]byte, 0, len(data))
	vals := make([][]byte, len(j.fields))
	var line []byte
	all := func(k, v []byte) {
		if len(line) > 0 {
			line = append(line, ' ')
		}
		key := string(k)
		if hasByte(k, '\\') {
			key = textValue(append(append([]byte{'"'}, k...), '"'))
		}
		line = appendLogfmt(line, key, v)
	}
	pick := func(k, v []byte) {
		for i, f := range j.fields {
			if string(k) == f {
				vals[i] = v
			}
		}
	}
	forEachLine(data, func(n int, src []byte) {
		if len(src) == 0 {
			return
		}
		line = line[:0]
		clear(vals)
		fn := all
		if j.fields != nil {
			fn = pick
		}
		if err := scanObject(src, fn); err != nil {
			bad(n, err.Error())
			return
		}
		for i, f := range j.fields {
			if vals[i] == nil {
				continue
			}
			if len(line) > 0 {
				line = append(line, ' ')
			}
			line = appendLogfmt(line, f, vals[i])
		}
		out = append(out, line...)
		out = append(out, '\n')
	})
	return out, nil
}

// appendLogfmt appends key=value, quoting the value when it holds spaces,
// quotes, '=' or nothing.
func appendLogfmt(dst []byte, key string, raw []byte) []byte {
	dst = append(dst, key...)
	dst = append(dst, '=')
	v := textValue(raw)
	if v == "" || strings.ContainsAny(v, " \t\r\n\"=\\") {
		return strconv.AppendQuote(dst, v)
	}
	return append(dst, v...)
}

func (j *convertJob) NewMerger(w io.Writer) Merger { return &filterMerger{w: w} }
