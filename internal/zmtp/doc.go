// Package zmtp holds the ZMTP 3 frame header codec (RFC 23/37) that
// several packages share: a flags byte, then the body size in one byte
// (short frame) or eight bytes big-endian (long frame, flag 0x02).
//
// It only frames: greetings, mechanisms and commands live with the code
// that speaks them. The mesh and curve read and write their frames with
// it; logpub uses it to carry its byte stream in the plaintext frames of a
// curve.Conn.
//
//	hdr := zmtp.AppendHeader(nil, 0, len(body))
//	flags, size, err := zmtp.ReadHeader(r, 1<<20)
package zmtp
