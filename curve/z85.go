package curve

import (
	"errors"
	"fmt"
)

// z85Alphabet is the Z85 character set of ZeroMQ RFC 32.
const z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

// ErrZ85 reports text or data that Z85 (ZeroMQ RFC 32) cannot encode or decode.
var ErrZ85 = errors.New("curve: invalid z85")

var z85Decoder = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for i := 0; i < len(z85Alphabet); i++ {
		t[z85Alphabet[i]] = byte(i)
	}
	return t
}()

// Z85Encode encodes data, whose length must be a multiple of 4, as Z85 text.
func Z85Encode(data []byte) (string, error) {
	if len(data)%4 != 0 {
		return "", fmt.Errorf("%w: encode %d bytes: length is not a multiple of 4", ErrZ85, len(data))
	}
	out := make([]byte, 0, len(data)/4*5)
	for i := 0; i < len(data); i += 4 {
		v := uint32(data[i])<<24 | uint32(data[i+1])<<16 | uint32(data[i+2])<<8 | uint32(data[i+3])
		var chunk [5]byte
		for j := 4; j >= 0; j-- {
			chunk[j] = z85Alphabet[v%85]
			v /= 85
		}
		out = append(out, chunk[:]...)
	}
	return string(out), nil
}

// Z85Decode decodes Z85 text, whose length must be a multiple of 5.
func Z85Decode(text string) ([]byte, error) {
	if len(text)%5 != 0 {
		return nil, fmt.Errorf("%w: decode %d characters: length is not a multiple of 5", ErrZ85, len(text))
	}
	out := make([]byte, 0, len(text)/5*4)
	for i := 0; i < len(text); i += 5 {
		var v uint64
		for j := 0; j < 5; j++ {
			d := z85Decoder[text[i+j]]
			if d == 0xFF {
				return nil, fmt.Errorf("%w: character %q at offset %d", ErrZ85, text[i+j], i+j)
			}
			v = v*85 + uint64(d)
		}
		if v > 0xFFFFFFFF {
			return nil, fmt.Errorf("%w: group at offset %d overflows 32 bits", ErrZ85, i)
		}
		out = append(out, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return out, nil
}
