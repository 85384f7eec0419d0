package harmony

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// A small JSON object scanner for log lines: it validates a whole line as a
// JSON object and hands out the raw bytes of each top-level value, without
// allocating. encoding/json would do the job at several times the CPU cost,
// and a reprocessing run spends most of its time here.

const maxJSONDepth = 64

var errNotObject = errors.New("not a JSON object")

// scanObject validates line as one JSON object and calls fn with the raw key
// (without quotes, escapes untouched) and raw value of each top-level member.
func scanObject(line []byte, fn func(key, val []byte)) error {
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return errNotObject
	}
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		return trailing(line, i+1)
	}
	for {
		if i >= len(line) || line[i] != '"' {
			return fmt.Errorf("expected a key at byte %d", i)
		}
		end, err := scanString(line, i)
		if err != nil {
			return err
		}
		key := line[i+1 : end-1]
		i = skipWS(line, end)
		if i >= len(line) || line[i] != ':' {
			return fmt.Errorf("expected ':' at byte %d", i)
		}
		i = skipWS(line, i+1)
		vend, err := scanValue(line, i, 1)
		if err != nil {
			return err
		}
		fn(key, line[i:vend])
		i = skipWS(line, vend)
		if i >= len(line) {
			return fmt.Errorf("unterminated object")
		}
		switch line[i] {
		case ',':
			i = skipWS(line, i+1)
		case '}':
			return trailing(line, i+1)
		default:
			return fmt.Errorf("unexpected %q at byte %d", line[i], i)
		}
	}
}

func trailing(line []byte, i int) error {
	if i = skipWS(line, i); i != len(line) {
		return fmt.Errorf("trailing data at byte %d", i)
	}
	return nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// scanString returns the index just past the string that starts at b[i]=='"'.
// It jumps from quote to quote with bytes.IndexByte and only looks at the
// bytes in between for escapes and control characters.
func scanString(b []byte, i int) (int, error) {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, fmt.Errorf("unterminated string")
		}
		esc := -1
		for x, c := range b[j : j+k] {
			if c < 0x20 {
				return 0, fmt.Errorf("control character in string at byte %d", j+x)
			}
			if c == '\\' {
				esc = j + x
				break
			}
		}
		if esc < 0 {
			return j + k + 1, nil
		}
		n, err := escapeLen(b, esc)
		if err != nil {
			return 0, err
		}
		j = esc + n
	}
}

// escapeLen returns the length of the escape sequence at b[j]=='\\'.
func escapeLen(b []byte, j int) (int, error) {
	if j+1 >= len(b) {
		return 0, fmt.Errorf("unterminated string")
	}
	switch b[j+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
		if j+5 >= len(b) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) || !isHex(b[j+5]) {
			return 0, fmt.Errorf("bad \\u escape at byte %d", j)
		}
		return 6, nil
	default:
		return 0, fmt.Errorf("bad escape at byte %d", j)
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// scanValue returns the index just past the value that starts at b[i].
func scanValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, fmt.Errorf("missing value")
	}
	switch c := b[i]; {
	case c == '"':
		return scanString(b, i)
	case c == '{' || c == '[':
		if depth >= maxJSONDepth {
			return 0, fmt.Errorf("nested too deep")
		}
		return scanContainer(b, i, depth+1)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(b, i)
	default:
		return 0, fmt.Errorf("unexpected %q at byte %d", c, i)
	}
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, fmt.Errorf("bad literal at byte %d", i)
	}
	return i + len(lit), nil
}

func scanNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '0' {
		i++ // no leading zeros
	} else if digits() == 0 {
		return 0, fmt.Errorf("bad number at byte %d", start)
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0, fmt.Errorf("bad number at byte %d", start)
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, fmt.Errorf("bad number at byte %d", start)
		}
	}
	return i, nil
}

// scanContainer scans an object or array starting at b[i].
func scanContainer(b []byte, i, depth int) (int, error) {
	closer := byte(']')
	isObj := b[i] == '{'
	if isObj {
		closer = '}'
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, nil
	}
	for {
		if isObj {
			if i >= len(b) || b[i] != '"' {
				return 0, fmt.Errorf("expected a key at byte %d", i)
			}
			end, err := scanString(b, i)
			if err != nil {
				return 0, err
			}
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, fmt.Errorf("expected ':' at byte %d", i)
			}
			i = skipWS(b, i+1)
		}
		end, err := scanValue(b, i, depth)
		if err != nil {
			return 0, err
		}
		i = skipWS(b, end)
		if i >= len(b) {
			return 0, fmt.Errorf("unterminated container")
		}
		if b[i] == closer {
			return i + 1, nil
		}
		if b[i] != ',' {
			return 0, fmt.Errorf("unexpected %q at byte %d", b[i], i)
		}
		i = skipWS(b, i+1)
	}
}

// textValue returns the text of a raw JSON value: strings unquoted (with
// escapes decoded), anything else as written.
func textValue(raw []byte) string {
	if len(raw) >= 2 && raw[0] == '"' {
		inner := raw[1 : len(raw)-1]
		if !hasByte(inner, '\\') {
			return string(inner)
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return string(inner)
	}
	return string(raw)
}

// rawTextEqual reports whether the raw JSON value's text equals want, without
// allocating in the common unescaped case.
func rawTextEqual(raw []byte, want string) bool {
	if len(raw) >= 2 && raw[0] == '"' {
		inner := raw[1 : len(raw)-1]
		if !hasByte(inner, '\\') {
			return string(inner) == want
		}
		return textValue(raw) == want
	}
	return string(raw) == want
}

func hasByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}
