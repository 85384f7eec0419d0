package logpub

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// validEvent reports whether b is one JSON value (RFC 8259) surrounded by
// optional whitespace, is valid UTF-8 and holds no newline: exactly
// json.Valid(b) && utf8.Valid(b) && bytes.IndexByte(b, '\n') < 0 (a fuzz
// target compares them), in one pass over the bytes. Nesting deeper than
// maxJSONDepth is rejected.
//
// Why our own: encoding/json.Valid takes 5-6 times longer on a zerolog
// line (it runs a state function per byte) and needs separate UTF-8 and
// newline passes; none of the module's dependencies has a faster
// validator, and a new one is not worth these 250 lines.
func validEvent(b []byte) bool {
	if flatObject(b) {
		return true
	}
	s := jscan{b: b}
	s.ws()
	if !s.value(0) {
		return false
	}
	s.ws()
	return s.i == len(s.b)
}

// flatObject reports whether b is an object as zerolog writes it: no
// whitespace, string keys, scalar values. It walks such a line with no
// call per token besides strings and numbers; false means "not sure", and
// the general scanner decides.
func flatObject(b []byte) bool {
	n := len(b)
	if n < 2 || b[0] != '{' {
		return false
	}
	if b[1] == '}' {
		return n == 2
	}
	i := 1
	for {
		if b[i] != '"' {
			return false
		}
		if i = scanString(b, i+1); i < 0 || i >= n || b[i] != ':' {
			return false
		}
		if i++; i >= n {
			return false
		}
		switch c := b[i]; {
		case c == '"':
			i = scanString(b, i+1)
		case c == '-' || c >= '0' && c <= '9':
			i = scanNumber(b, i)
		case c == 't':
			i = scanLiteral(b, i, "true")
		case c == 'f':
			i = scanLiteral(b, i, "false")
		case c == 'n':
			i = scanLiteral(b, i, "null")
		default:
			return false
		}
		if i < 0 || i >= n {
			return false
		}
		switch b[i] {
		case ',':
			if i++; i >= n {
				return false
			}
		case '}':
			return i+1 == n
		default:
			return false
		}
	}
}

const maxJSONDepth = 10000

// strSpecial marks the bytes that end the fast path inside a string.
var strSpecial = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	for c := utf8.RuneSelf; c < 256; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return
}()

// strStop returns a word whose high bits mark the bytes of x (eight bytes,
// little-endian) that end the fast path in a string: '"', '\\', control
// characters and non-ASCII bytes. Only the lowest mark is exact (a borrow
// may mark bytes above it), which is all scanString needs.
func strStop(x uint64) uint64 {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	return ((x - lsb*0x20) | ((x ^ lsb*'"') - lsb) | ((x ^ lsb*'\\') - lsb) | x) & msb
}

// scanString checks the string whose opening quote is just before b[i]
// and returns the index after its closing quote, or -1 if it is invalid
// (bad escape, control character, bad UTF-8, unterminated).
func scanString(b []byte, i int) int {
	for {
		// Eight bytes at a time while no byte of the word needs a look.
		for i+8 <= len(b) {
			stop := strStop(binary.LittleEndian.Uint64(b[i:]))
			if stop != 0 {
				i += bits.TrailingZeros64(stop) >> 3
				break
			}
			i += 8
		}
		for i < len(b) && !strSpecial[b[i]] {
			i++
		}
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if len(b)-i < 5 {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return -1
					}
				}
				i += 5
			default:
				return -1
			}
		case c >= utf8.RuneSelf:
			// utf8.Valid's rules: a bad sequence, an overlong form or a
			// surrogate decodes as (RuneError, 1).
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return -1
			}
			i += n
		default: // control character
			return -1
		}
	}
}

// scanDigits returns the index after the run of digits starting at i.
func scanDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// scanNumber checks the number starting at b[i] and returns the index
// after it, or -1.
func scanNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return -1
	}
	if b[i] == '0' {
		i++
	} else if j := scanDigits(b, i); j == i {
		return -1
	} else {
		i = j
	}
	if i < len(b) && b[i] == '.' {
		j := scanDigits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := scanDigits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

// scanLiteral checks that w starts at b[i] and returns the index after it,
// or -1.
func scanLiteral(b []byte, i int, w string) int {
	if len(b)-i < len(w) || string(b[i:i+len(w)]) != w {
		return -1
	}
	return i + len(w)
}

// jscan is the general scanner: any JSON, with whitespace and nesting.
type jscan struct {
	b []byte
	i int
}

func (s *jscan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r': // no '\n': an event is one line
			s.i++
		default:
			return
		}
	}
}

// step records the result of a scan function; false if it failed.
func (s *jscan) step(i int) bool {
	if i < 0 {
		return false
	}
	s.i = i
	return true
}

func (s *jscan) value(depth int) bool {
	if s.i >= len(s.b) || depth > maxJSONDepth {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		return s.step(scanString(s.b, s.i+1))
	case c == 't':
		return s.step(scanLiteral(s.b, s.i, "true"))
	case c == 'f':
		return s.step(scanLiteral(s.b, s.i, "false"))
	case c == 'n':
		return s.step(scanLiteral(s.b, s.i, "null"))
	case c == '-' || (c >= '0' && c <= '9'):
		return s.step(scanNumber(s.b, s.i))
	}
	return false
}

func (s *jscan) object(depth int) bool {
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' || !s.step(scanString(s.b, s.i+1)) {
			return false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		if !s.value(depth) {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

func (s *jscan) array(depth int) bool {
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return true
	}
	for {
		s.ws()
		if !s.value(depth) {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}
